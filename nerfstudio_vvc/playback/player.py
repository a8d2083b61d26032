"""On-demand, frame-accurate access to a `.vvc` file: seek + a small LRU cache of decoded frames.

`FramePlayer.get(f)` returns frame f decoded from the file. A cache hit costs nothing; otherwise
decoding starts from the latest cached frame of f's GOP before f (a P-frame needs its reference),
else from the GOP's I-frame, and every frame decoded on the way is cached. Thread-safe: the
viewer's render thread and the play thread share one player.

`BitstreamSource` is the playback object a training model holds (`FrameModel.playback_source`,
`play_file`): frames of the file and their pixels through its decoder.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import torch

from nerfstudio_vvc.playback.decoder import MethodDecoder
from nerfstudio_vvc.units import format_kb


@dataclass(frozen=True)
class FrameInfo:
    """What the viewer's read-out shows for a frame."""

    frame: int
    is_iframe: bool
    nbytes: int
    decode_ms: Optional[float]

    def line(self, last: int) -> str:
        """Compact (the viewer's text fields are narrow): "12/299 · P · 2.31 KB · 14 ms"."""
        ms = "n/a" if self.decode_ms is None else f"{self.decode_ms:.0f} ms"
        return f"{self.frame}/{last} · {'I' if self.is_iframe else 'P'} · {format_kb(self.nbytes)} · {ms}"


class FramePlayer:
    """Decoded frames of one file, by frame index, with a small LRU cache."""

    def __init__(self, decoder: MethodDecoder, cache_size: int = 8, refresh_interval_s: float = 1.0) -> None:
        self.decoder = decoder
        self.cache_size = max(int(cache_size), 2)
        self.refresh_interval_s = refresh_interval_s
        self._cache: "OrderedDict[int, Any]" = OrderedDict()
        self._lock = threading.RLock()  # decoding (one chain at a time)
        self._cache_lock = threading.Lock()  # the cache only: a hit never waits for a decode in another thread
        self._last_refresh = time.monotonic()
        self.last_decoded: List[int] = []
        """Frames decoded to serve the latest `get` (empty on a cache hit)."""

    @classmethod
    def open(cls, path: Union[str, Path], cache_size: int = 8) -> "FramePlayer":
        from nerfstudio_vvc.playback.registry import open_decoder

        return cls(open_decoder(path), cache_size=cache_size)

    # ------------------------------------------------------------------ frame list
    def frames(self) -> List[int]:
        return self.decoder.frames()

    def has(self, frame: int) -> bool:
        """True when the file holds `frame`; a file still being written is re-read (at most once a second)."""
        with self._lock:
            if self.decoder.reader.has_frame(frame):
                return True
            if time.monotonic() - self._last_refresh >= self.refresh_interval_s:
                self._last_refresh = time.monotonic()
                self.decoder.refresh()
            return self.decoder.reader.has_frame(frame)

    def info(self, frame: int) -> FrameInfo:
        s = self.decoder.decode_seconds.get(frame)
        return FrameInfo(frame, self.decoder.is_iframe(frame), self.decoder.frame_bytes(frame),
                         None if s is None else 1000.0 * s)

    # ------------------------------------------------------------------ decoding
    def cached(self, frame: int) -> bool:
        with self._cache_lock:
            return frame in self._cache

    def _hit(self, frame: int) -> Optional[Any]:
        with self._cache_lock:
            if frame not in self._cache:
                return None
            self._cache.move_to_end(frame)
            self.last_decoded = []
            return self._cache[frame]

    def get(self, frame: int) -> Any:
        """Decoded `frame` (KeyError when the file does not hold it; BitstreamError on a bad file). A cached frame is
        returned at once, even while another thread decodes (e.g. the viewer prefetching the next frame)."""
        hit = self._hit(frame)
        if hit is not None:
            return hit
        with self._lock:
            hit = self._hit(frame)  # decoded by another thread meanwhile
            if hit is not None:
                return hit
            if not self.has(frame):
                raise KeyError(f"{self.decoder.path}: frame {frame} is not in the stream")
            frames = self.decoder.frames()
            start = self.decoder.iframe_of(frame)
            # resume from the latest cached frame of this GOP before `frame` (its decode chain is complete)
            prev = None
            with self._cache_lock:
                for f in frames:
                    if start <= f < frame and f in self._cache:
                        prev, start = self._cache[f], f
            todo = [f for f in frames if (start < f <= frame if prev is not None else start <= f <= frame)]
            decoded = []
            for f in todo:
                prev = self.decoder.decode_step(f, prev)
                self._put(f, prev)
                decoded.append(f)
            self.last_decoded = decoded
            return prev

    def _put(self, frame: int, decoded: Any) -> None:
        with self._cache_lock:
            self._cache[frame] = decoded
            self._cache.move_to_end(frame)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)


class BitstreamSource:
    """The playback object a training model holds for a `.vvc` file: which frames it has, and pixels of any of them
    through the file's decoder (`decoder.render_rays(player.get(frame), ...)`, the file's METHOD_CONFIG)."""

    def __init__(self, path: Union[str, Path], cache_size: int = 8) -> None:
        self.path = Path(path)
        self.player = FramePlayer.open(self.path, cache_size=cache_size)

    @property
    def root(self) -> Path:
        return self.path

    @property
    def decoder(self) -> MethodDecoder:
        return self.player.decoder

    def frames(self) -> List[int]:
        return self.player.frames()

    def has(self, frame: int) -> bool:
        return self.player.has(frame)

    def render_rays(self, frame: int, origins: torch.Tensor, dirs: torch.Tensor,
                    renderer: str = "exact") -> Dict[str, torch.Tensor]:
        """rgb / accumulation / depth of rays [R, 3] at `frame`: ``exact`` = `MethodDecoder.render_rays` (metrics),
        ``playback`` = `render_rays_playback` (viewers)."""
        decoded = self.player.get(frame)
        if renderer == "playback":
            return self.decoder.render_rays_playback(decoded, origins, dirs)
        if renderer != "exact":
            raise ValueError(f"renderer must be 'exact' or 'playback', not {renderer!r}")
        return self.decoder.render_rays(decoded, origins, dirs)

    def field_for(self, frame: int, device: Any = None) -> Any:
        """The decoder's (field, occupancy) of `frame` (3D methods with a `field_for`), e.g. for inspection."""
        field_for = getattr(self.decoder, "field_for", None)
        if field_for is None:
            raise TypeError(f"{self.decoder.header.method_id} renders no field (its decoder has no field_for)")
        return field_for(self.player.get(frame), device)
