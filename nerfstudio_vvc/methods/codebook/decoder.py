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
from nerfstudio_vvc.methods.codebook.field import HexField, HexHead
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

    @torch.no_grad()
    def render_rays(self, decoded: DecodedFrame, origins: torch.Tensor, dirs: torch.Tensor) -> Dict[str, torch.Tensor]:
        device = origins.device
        last, last_device, cached = self._cache  # the last frame's field (a render calls this per chunk)
        if last is not decoded or last_device != str(device) or cached is None:
            cached = frame_field(self.spec, decoded, device)
            self._cache = (decoded, str(device), cached)
        field, occ = cached
        out = self.render_settings.render(field, origins, dirs, occ)
        return {k: out[k] for k in ("rgb", "accumulation", "depth")}
