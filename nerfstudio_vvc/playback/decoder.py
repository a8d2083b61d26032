"""Standalone decoder for vvc-rate-aware files: bitstream → decoded frames → renders.

Needs only the file (no checkpoint, no nerfstudio): the method-config chunk carries the DiF
architecture, the scene box and the render settings. Frames decode in order; a P-frame is decoded
only after its reference (the previous frame), and seeking starts at the GOP's I-frame.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import torch

from nerfstudio_vvc.codec.bitstream.container import ChunkType, ContainerReader
from nerfstudio_vvc.codec.errors import BitstreamError, CorruptChunkError
from nerfstudio_vvc.components.frame_store import FrameStore
from nerfstudio_vvc.components.occupancy import OccupancyGrid
from nerfstudio_vvc.components.rendering import render_rays
from nerfstudio_vvc.methods.rate_aware.codec import DecodedFrame, decode_frame, parse_method_config
from nerfstudio_vvc.methods.rate_aware.field import DiFFrameField


class Decoder:
    """Reads a `.vvc` file and rebuilds frames (and renders them)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.reader = ContainerReader(self.path)
        cfg = dict(self.reader.global_chunks).get(ChunkType.METHOD_CONFIG)
        if self.reader.header.method_id != "vvc-rate-aware" or cfg is None:
            raise CorruptChunkError(f"not a vvc-rate-aware stream (method {self.reader.header.method_id!r})",
                                    source=str(self.path), where="METHOD_CONFIG")
        self.config = parse_method_config(cfg, source=str(self.path))  # validated: types, ranges, sizes
        self.spec, self.render_cfg = self.config.spec, self.config.render
        self.decode_seconds: Dict[int, float] = {}

    def frames(self) -> List[int]:
        return self.reader.frame_indices()

    def iter_decoded(self, start: Optional[int] = None) -> Iterator[DecodedFrame]:
        """Decode frames in order, from the I-frame of `start`'s GOP (or the first frame)."""
        frames = self.frames()
        first = self.reader.iframe_of(start) if start is not None else (frames[0] if frames else 0)
        prev: Optional[DecodedFrame] = None
        for idx in frames:
            if idx < first:
                continue
            t0 = time.perf_counter()
            rec = self.reader.read_frame(idx)
            try:
                prev = decode_frame(rec, None if rec.is_iframe else prev, self.spec, where=f"frame {idx}",
                                    occupancy_shape=self.config.occupancy_shape)
            except BitstreamError:
                raise
            except (ValueError, RuntimeError, KeyError, IndexError) as exc:
                raise CorruptChunkError(f"frame {idx} does not decode ({exc})", source=str(self.path),
                                        where=f"frame {idx}") from None
            self.decode_seconds[idx] = time.perf_counter() - t0
            yield prev

    def decode_frame(self, frame: int) -> DecodedFrame:
        """One frame, decoding its GOP from the I-frame up to it."""
        for d in self.iter_decoded(start=frame):
            if d.frame_idx == frame:
                return d
        raise KeyError(f"{self.path}: frame {frame} is not in the stream")

    def decode_to_store(self, root: Path) -> FrameStore:
        """Decode every frame into a FrameStore (what playback and evaluation render from)."""
        store = FrameStore(root)
        for d in self.iter_decoded():
            store.save(d.frame_idx, d.to_state())
        return store

    def frame_bytes(self, frame: int) -> int:
        return self.reader.frame_nbytes(frame)

    def field_for(self, decoded: DecodedFrame) -> Tuple[DiFFrameField, OccupancyGrid]:
        field = DiFFrameField(self.spec)
        field.mlp.load_state_dict(decoded.mlp_state)
        field.set_grids(decoded.grids)
        occ = OccupancyGrid(int(self.render_cfg["occupancy_resolution"]))
        occ.set_binary(decoded.occupancy)
        return field, occ

    @torch.no_grad()
    def render(self, decoded: DecodedFrame, c2w: torch.Tensor, fx: float, fy: float, cx: float, cy: float,
               width: int, height: int, chunk: int = 8192) -> torch.Tensor:
        """Render an OpenGL-convention camera (c2w [3, 4], scene units) → RGB [H, W, 3]."""
        field, occ = self.field_for(decoded)
        ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
        dirs_cam = torch.stack([(xs - cx) / fx, -(ys - cy) / fy, -torch.ones_like(xs)], -1)
        dirs = dirs_cam.reshape(-1, 3) @ c2w[:3, :3].T
        dirs = dirs / dirs.norm(dim=-1, keepdim=True)
        origins = c2w[:3, 3].expand_as(dirs)
        aabb = torch.tensor(self.render_cfg["aabb"], dtype=torch.float32)
        bg = torch.tensor(self.render_cfg["background"], dtype=torch.float32)
        out = [render_rays(field, origins[i : i + chunk], dirs[i : i + chunk], aabb, occ,
                           int(self.render_cfg["num_samples"]), float(self.render_cfg["near_plane"]), bg, jitter=False)["rgb"]
               for i in range(0, len(dirs), chunk)]
        return torch.cat(out).reshape(height, width, 3)
