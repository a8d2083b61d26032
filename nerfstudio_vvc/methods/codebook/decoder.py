"""vvc-codebook decoder (for method_id "vvc-codebook"; the method spec, methods/codebook/spec.py, names it).

Needs only the file: METHOD_CONFIG (architecture, fragments, render settings) and the GLOBALS
(shared codebooks, index planes, MLP) are read once when the file is opened; a frame then costs
its fragment's dynamic codes (I-frame) or nothing (P-frame). No nerfstudio import.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import torch

from nerfstudio_vvc.codec.bitstream.container import FrameRecord
from nerfstudio_vvc.components.occupancy import OccupancyGrid
from nerfstudio_vvc.components.rendering import RenderSettings
from nerfstudio_vvc.methods.codebook.codec import DecodedFrame, decode_frame, decode_globals, parse_method_config
from nerfstudio_vvc.methods.codebook.field import PAIRS, HexField, HexHead, plane_coords, sample_plane
from nerfstudio_vvc.playback.decoder import MethodDecoder


def frame_field(spec, decoded: DecodedFrame, device: torch.device) -> Tuple[HexField, OccupancyGrid]:
    """Field (planes gathered from the fragment's codebooks, at the frame's time) + occupancy grid."""
    head = HexHead(spec)
    head.load_state_dict(decoded.mlp_state)
    head = head.to(device)
    planes = [p.to(device) for p in decoded.planes(spec)]
    occ = OccupancyGrid(decoded.occupancy.shape[0]).to(device)
    occ.set_binary(decoded.occupancy)
    return HexField(spec, head, planes, decoded.time), occ


class HexSplit:
    """The playback renderer's two passes over a HexPlane frame (`SplitField`): the density planes for every sample,
    the appearance planes and the colour MLP only for samples that show. The same lookups as `hex_features`, split by
    group. (Baking the frame's time slice into dense 3D feature grids is exact too, but torch's CPU 3D `grid_sample`
    made it slower than the six plane lookups: measured, not kept.)"""

    def __init__(self, field: HexField) -> None:
        self.field = field

    def _group(self, x01: torch.Tensor, sets: range) -> torch.Tensor:
        f, out = self.field, []
        for s in sets:
            g = [sample_plane(f.planes[6 * s + p], plane_coords(x01, f.time, p)) for p in range(6)]
            out.append(sum(g[a] * g[b] for a, b in PAIRS))
        return torch.cat(out, -1)

    def density_state(self, x01: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.field.head.density(self._group(x01, range(1))), x01

    def rgb_of(self, x01: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
        return self.field.head.rgb(self._group(x01, range(1, len(self.field.spec.set_resolutions()))), dirs)


class CodebookDecoder(MethodDecoder):
    method_id = "vvc-codebook"

    def configure(self, method_config: Optional[bytes]) -> None:
        self.config = parse_method_config(method_config, source=str(self.path))  # validated: types, ranges, sizes
        self.spec = self.config.spec
        self.shared = decode_globals(self.reader.global_chunk_list, self.config, source=str(self.path))
        self.render_settings = RenderSettings.from_json(self.config.render)
        self._cache: Tuple[Optional[DecodedFrame], str, Optional[Tuple[HexField, OccupancyGrid]]] = (None, "", None)

    def decode_record(self, record: FrameRecord, prev: Optional[DecodedFrame]) -> DecodedFrame:
        return decode_frame(record, prev, self.config, self.shared, source=str(self.path))

    def to_state(self, decoded: DecodedFrame) -> Dict[str, Any]:
        return decoded.to_state()

    def field_for(self, decoded: DecodedFrame, device: Optional[torch.device] = None) -> Tuple[HexField, OccupancyGrid]:
        """Field + occupancy grid of a decoded frame on `device` (default CPU; the last one is kept: a render calls
        this per chunk)."""
        device = torch.device("cpu") if device is None else torch.device(device)
        last, last_device, cached = self._cache
        if last is not decoded or last_device != str(device) or cached is None:
            cached = frame_field(self.spec, decoded, device)
            self._cache = (decoded, str(device), cached)
        return cached

    @torch.no_grad()
    def render_rays(self, decoded: DecodedFrame, origins: torch.Tensor, dirs: torch.Tensor) -> Dict[str, torch.Tensor]:
        field, occ = self.field_for(decoded, origins.device)
        out = self.render_settings.render(field, origins, dirs, occ)
        return {k: out[k] for k in ("rgb", "accumulation", "depth")}

    def playback_split(self, field: HexField) -> HexSplit:
        """The field as the playback renderer asks it (`SplitField`)."""
        return HexSplit(field)

    @torch.no_grad()
    def render_rays_playback(self, decoded: DecodedFrame, origins: torch.Tensor,
                             dirs: torch.Tensor) -> Dict[str, torch.Tensor]:
        field, occ = self.field_for(decoded, origins.device)
        split = self.playback_split(field)
        out = self.render_settings.render_playback(split, origins, dirs, occ)
        return {k: out[k] for k in ("rgb", "accumulation", "depth")}
