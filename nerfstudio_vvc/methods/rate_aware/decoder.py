"""vvc-rate-aware decoder (for method_id "vvc-rate-aware"; the method spec, methods/rate_aware/spec.py, names it).

Needs only the file: the METHOD_CONFIG chunk carries the DiF architecture, the scene box and the
render settings. No nerfstudio import, so a player can ship without the training stack.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import torch

from nerfstudio_vvc.codec.bitstream.container import FrameRecord
from nerfstudio_vvc.codec.errors import CorruptChunkError
from nerfstudio_vvc.components.heads import GridMosaic, RenderMLP, sample_grid, sh_basis
from nerfstudio_vvc.components.occupancy import OccupancyGrid
from nerfstudio_vvc.components.rendering import RenderSettings
from nerfstudio_vvc.methods.rate_aware.codec import METHOD_ID, DecodedFrame, decode_frame, parse_method_config
from nerfstudio_vvc.methods.rate_aware.field import DiFFrameField, dif_features
from nerfstudio_vvc.playback.decoder import MethodDecoder


class DiFSplit:
    """The playback renderer's two passes over a DiF frame (`SplitField`): features and the density MLP once per
    sample, keeping the MLP's geometry code; the colour MLP later, only for samples that show. Same operations as
    `DiFFrameField.forward`, split in two, except that on a CPU the grids are looked up through 2-D mosaics baked
    here (`GridMosaic`: the same trilinear values up to float rounding, within the playback tolerance; a view of the
    sample scene ×0.87–0.90, of paper-size grids ×0.67–0.80, bench/bench_dif_mosaic_ab.py). Baked once per decoded
    frame: the decoder keeps the split with the frame's field."""

    def __init__(self, field: DiFFrameField, mosaics: bool = True) -> None:
        self.field = field
        self.source_grids = list(field.grids)
        if mosaics and not field.grids[0].is_cuda:
            self.grids, self.sample = [GridMosaic(g) for g in field.grids], GridMosaic.sample
        else:
            self.grids, self.sample = list(field.grids), sample_grid

    def density_state(self, x01: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        h = self.field.mlp.net(dif_features(self.field.spec, self.grids, x01, self.sample))
        return RenderMLP._density(h[:, 0]), h

    def rgb_of(self, h: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
        mlp = self.field.mlp
        if mlp.geo_dim == 0:
            return torch.sigmoid(h[:, 1:])
        return torch.sigmoid(mlp.color(torch.cat([h[:, 1:], sh_basis(dirs)], -1)))


class RateAwareDecoder(MethodDecoder):
    method_id = METHOD_ID

    def configure(self, method_config: Optional[bytes]) -> None:
        if method_config is None:
            raise CorruptChunkError("no METHOD_CONFIG chunk", source=str(self.path), where="METHOD_CONFIG")
        self.config = parse_method_config(method_config, source=str(self.path))  # validated: types, ranges, sizes
        self.spec = self.config.spec
        self.render_settings = RenderSettings.from_json(self.config.render)
        self._field_cache: Tuple[Optional[DecodedFrame], Optional[Tuple[DiFFrameField, OccupancyGrid]]] = (None, None)
        self._split_cache: Tuple[Optional[DiFFrameField], Optional[DiFSplit]] = (None, None)

    def decode_record(self, record: FrameRecord, prev: Optional[DecodedFrame]) -> DecodedFrame:
        return decode_frame(record, prev, self.spec, where=f"frame {record.frame_idx}",
                            occupancy_shape=self.config.occupancy_shape)

    def to_state(self, decoded: DecodedFrame) -> Dict[str, Any]:
        return decoded.to_state()

    def field_for(self, decoded: DecodedFrame,
                  device: Optional[torch.device] = None) -> Tuple[DiFFrameField, OccupancyGrid]:
        """Field + occupancy grid of a decoded frame, on `device` (default: the CPU, or where the last one is); the
        last one is kept: a render calls this per chunk."""
        key, cached = self._field_cache
        if key is not decoded or cached is None:
            field = DiFFrameField(self.spec)
            field.mlp.load_state_dict(decoded.mlp_state)
            field.set_grids(decoded.grids)
            occ = OccupancyGrid(self.render_settings.occupancy_resolution)
            occ.set_binary(decoded.occupancy)
            cached = (field, occ)
            self._field_cache = (decoded, cached)
        field, occ = cached
        if device is not None and next(field.mlp.parameters()).device != torch.device(device):
            field = field.to(device)
            field.set_grids(decoded.grids)
            occ = occ.to(device)
            self._field_cache = (decoded, (field, occ))
        return field, occ

    @torch.no_grad()
    def render_rays(self, decoded: DecodedFrame, origins: torch.Tensor, dirs: torch.Tensor) -> Dict[str, torch.Tensor]:
        field, occ = self.field_for(decoded, origins.device)
        out = self.render_settings.render(field, origins, dirs, occ)
        return {k: out[k] for k in ("rgb", "accumulation", "depth")}

    def playback_split(self, field: DiFFrameField) -> DiFSplit:
        """The field as the playback renderer asks it (`SplitField`); the last one is kept (its baked grids)."""
        key, split = self._split_cache
        if key is not field or split is None or any(a is not b for a, b in zip(split.source_grids, field.grids)):
            split = DiFSplit(field)
            self._split_cache = (field, split)
        return split

    @torch.no_grad()
    def render_rays_playback(self, decoded: DecodedFrame, origins: torch.Tensor,
                             dirs: torch.Tensor) -> Dict[str, torch.Tensor]:
        field, occ = self.field_for(decoded, origins.device)
        out = self.render_settings.render_playback(self.playback_split(field), origins, dirs, occ)
        return {k: out[k] for k in ("rgb", "accumulation", "depth")}
