"""The method-agnostic decoder interface: bitstream → decoded frames → renders.

A `.vvc` file names its method in the container header (`method_id`); `open_decoder(path)`
(`nerfstudio_vvc.playback.registry`) picks that method's `MethodDecoder` subclass from the one
registry table. Everything that plays or measures a file (`ns-vvc decode / eval / play`,
`ns-export vvc-bitstream`, rd-sweep, the viewer) goes through it, so none of them knows a method.

What the base class does for every method (container level): list frames, I/P flags and bytes per
frame, find a frame's GOP I-frame, decode in order (a P-frame only after its reference), seek
(decode from the GOP's I-frame), time each frame's decode, wrap every failure in the typed
`BitstreamError` naming the file and the frame, render a pinhole camera ray by ray.

What a method implements (`docs/adding_a_method.md`):

    configure(method_config)           parse the METHOD_CONFIG chunk (architecture, render settings)
    decode_record(record, prev)        FrameRecord (+ previous decoded frame for P-frames) → decoded frame
    render_rays(decoded, origins, dirs)  → {"rgb" [R, 3], "accumulation" [R, 1], "depth" [R, 1]}
    render_rays_playback(...)          optional: the same for viewers, faster (default: render_rays)
    to_state(decoded)                  → dict for a FrameStore / the training model's `load_state_into`

A decoded frame is any object with `frame_idx` and `is_iframe` attributes.
"""

from __future__ import annotations

import abc
import time
from pathlib import Path
from typing import Any, ClassVar, Dict, Iterator, List, Optional, Protocol, Union, runtime_checkable

import torch

from nerfstudio_vvc.codec.bitstream.container import ChunkType, ContainerReader, FrameRecord
from nerfstudio_vvc.codec.errors import BitstreamError, CorruptChunkError
from nerfstudio_vvc.components.frame_store import FrameStore


@runtime_checkable
class DecodedFrameLike(Protocol):
    """What the player needs from a method's decoded frame."""

    frame_idx: int
    is_iframe: bool


class MethodDecoder(abc.ABC):
    """Decoder of one method's `.vvc` files. Construct through `open_decoder(path)`."""

    method_id: ClassVar[str] = ""
    """The container header's `method_id` this class decodes (the registry key)."""

    def __init__(self, path: Union[str, Path], reader: Optional[ContainerReader] = None) -> None:
        self.path = Path(path)
        self.reader = reader if reader is not None else ContainerReader(self.path)
        self.header = self.reader.header
        if self.method_id and self.header.method_id != self.method_id:
            raise CorruptChunkError(f"method {self.header.method_id!r} is not {self.method_id!r}",
                                    source=str(self.path), where="header")
        cfg = self.reader.global_chunks.get(ChunkType.METHOD_CONFIG)
        try:
            self.configure(cfg)
        except BitstreamError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError, IndexError, OverflowError) as exc:
            raise CorruptChunkError(f"bad method config ({type(exc).__name__}: {exc})", source=str(self.path),
                                    where="METHOD_CONFIG") from None
        self.decode_seconds: Dict[int, float] = {}

    # ------------------------------------------------------------------ to implement per method
    @abc.abstractmethod
    def configure(self, method_config: Optional[bytes]) -> None:
        """Parse the METHOD_CONFIG global chunk (None when the file has none). Raise on bad content."""

    @abc.abstractmethod
    def decode_record(self, record: FrameRecord, prev: Optional[Any]) -> Any:
        """Rebuild one frame from its record; `prev` is the previous decoded frame (None for an I-frame)."""

    @abc.abstractmethod
    def render_rays(self, decoded: Any, origins: torch.Tensor, dirs: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Volume-render rays [R, 3] (scene units) of a decoded frame: rgb [R, 3], accumulation, depth [R, 1]."""

    def render_rays_playback(self, decoded: Any, origins: torch.Tensor, dirs: torch.Tensor) -> Dict[str, torch.Tensor]:
        """`render_rays` for showing a frame (the viewers): may trade a stated, tested pixel tolerance for speed (3D
        methods: `RenderSettings.render_playback`). Metrics (`ns-vvc eval`, rd-sweep) use `render_rays`."""
        return self.render_rays(decoded, origins, dirs)

    @abc.abstractmethod
    def to_state(self, decoded: Any) -> Dict[str, Any]:
        """The decoded frame as a FrameStore state (what the method's model `load_state_into` reads)."""

    # ------------------------------------------------------------------ container level (shared)
    @property
    def fps(self) -> float:
        return float(self.header.fps) if self.header.fps > 0 else 30.0

    def frames(self) -> List[int]:
        return self.reader.frame_indices()

    def is_iframe(self, frame: int) -> bool:
        return self.reader._entry(frame).is_iframe

    def frame_bytes(self, frame: int) -> int:
        return self.reader.frame_nbytes(frame)

    def iframe_of(self, frame: int) -> int:
        return self.reader.iframe_of(frame)

    def refresh(self) -> bool:
        """Re-read the frame list of a file that is still being written; True when frames were added."""
        before = self.reader.num_frames_written
        reader = ContainerReader(self.path)
        if reader.header.method_id != self.header.method_id or reader.frames_start != self.reader.frames_start:
            reader.close()
            raise CorruptChunkError("the file changed its header while open", source=str(self.path), where="header")
        old, self.reader = self.reader, reader
        old.close()
        return reader.num_frames_written > before

    def decode_step(self, frame: int, prev: Optional[Any]) -> Any:
        """Decode `frame` given the decoded previous frame (ignored for an I-frame); typed errors only."""
        t0 = time.perf_counter()
        where = f"frame {frame}"
        try:
            rec = self.reader.read_frame(frame)
            decoded = self.decode_record(rec, None if rec.is_iframe else prev)
        except BitstreamError as exc:
            if exc.source == "<bytes>":  # payload decoders do not know the file: name it
                raise _with_source(exc, str(self.path), where) from None
            raise
        except (ValueError, RuntimeError, KeyError, IndexError, TypeError, OverflowError, AssertionError) as exc:
            raise CorruptChunkError(f"frame {frame} does not decode ({type(exc).__name__}: {exc})",
                                    source=str(self.path), where=where) from None
        self.decode_seconds[frame] = time.perf_counter() - t0
        return decoded

    def iter_decoded(self, start: Optional[int] = None, stop: Optional[int] = None) -> Iterator[Any]:
        """Decode frames in order from the I-frame of `start`'s GOP (or the first frame) up to `stop` (incl.)."""
        frames = self.frames()
        first = self.iframe_of(start) if start is not None else (frames[0] if frames else 0)
        prev: Optional[Any] = None
        for idx in frames:
            if idx < first:
                continue
            if stop is not None and idx > stop:
                return
            prev = self.decode_step(idx, prev)
            yield prev

    def decode_frame(self, frame: int) -> Any:
        """One frame, decoding its GOP from the I-frame up to it (seek)."""
        if not self.reader.has_frame(frame):
            raise KeyError(f"{self.path}: frame {frame} is not in the stream")
        out = None
        for out in self.iter_decoded(start=frame, stop=frame):
            pass
        return out

    def decode_to_store(self, root: Path) -> FrameStore:
        """Decode every frame into a FrameStore (what `ns-vvc eval` and rd-sweep render from)."""
        store = FrameStore(root)
        for d in self.iter_decoded():
            store.save(d.frame_idx, self.to_state(d))
        return store

    @torch.no_grad()
    def render(self, decoded: Any, c2w: torch.Tensor, fx: float, fy: float, cx: float, cy: float,
               width: int, height: int, chunk: int = 8192, playback: bool = False,
               device: Optional[Union[str, torch.device]] = None) -> torch.Tensor:
        """Render an OpenGL-convention pinhole camera (c2w [3, 4], scene units) → RGB [H, W, 3] (on `device`, default
        c2w's), with `render_rays`, or with `render_rays_playback` when ``playback``."""
        c2w = c2w.float() if device is None else c2w.float().to(device)
        origins, dirs = self.camera_rays(c2w, fx, fy, cx, cy, width, height)
        render_rays = self.render_rays_playback if playback else self.render_rays
        out = [render_rays(decoded, origins[i : i + chunk], dirs[i : i + chunk])["rgb"]
               for i in range(0, len(dirs), chunk)]
        return torch.cat(out).reshape(height, width, 3)

    @staticmethod
    def camera_rays(c2w: torch.Tensor, fx: float, fy: float, cx: float, cy: float, width: int,
                    height: int) -> "tuple[torch.Tensor, torch.Tensor]":
        """(origins, unit directions) [H·W, 3], row-major, of an OpenGL pinhole camera (c2w [3, 4]) on c2w's device."""
        c2w = c2w.float()
        dev = c2w.device
        ys, xs = torch.meshgrid(torch.arange(height, device=dev) + 0.5, torch.arange(width, device=dev) + 0.5,
                                indexing="ij")
        dirs_cam = torch.stack([(xs - cx) / fx, -(ys - cy) / fy, -torch.ones_like(xs)], -1)
        dirs = dirs_cam.reshape(-1, 3) @ c2w[:3, :3].T
        dirs = dirs / dirs.norm(dim=-1, keepdim=True)
        return c2w[:3, 3].expand_as(dirs), dirs

    def close(self) -> None:
        self.reader.close()

    def describe(self) -> str:
        n = self.reader.num_frames_written
        return f"{self.path.name}: {self.header.method_id}, {n} frame{'s' * (n != 1)}, {self.fps:g} fps"


def _with_source(exc: BitstreamError, source: str, where: str) -> BitstreamError:
    """The same error, naming the file (payload decoders raise with source `<bytes>`)."""
    parts = [exc.source] + ([exc.where] if exc.where else [])
    parts += [f"byte offset {exc.offset}"] if exc.offset is not None else []
    prefix = ": ".join(parts) + ": "
    msg = str(exc)[len(prefix) :] if str(exc).startswith(prefix) else str(exc)
    where = f"{where} {exc.where}" if exc.where and not exc.where.startswith(where) else (exc.where or where)
    return type(exc)(msg, source=source, where=where, offset=exc.offset)


def Decoder(path: Union[str, Path]) -> MethodDecoder:  # noqa: N802 (kept for callers of the old class)
    """Open `path` with the decoder its header's method_id selects (= `registry.open_decoder`)."""
    from nerfstudio_vvc.playback.registry import open_decoder

    return open_decoder(path)
