"""vvc-grid: an uncompressed per-frame grid model that exercises the frame-sequential trainer.

I-frames start from a fresh grid; P-frames warm-start from the previous frame's state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Type

from torch import nn

from nerfstudio_vvc.components.occupancy import OccupancyGrid
from nerfstudio_vvc.methods.base import FrameModel, FrameModelConfig
from nerfstudio_vvc.methods.vvc_grid.field import GridField


@dataclass
class VvcGridModelConfig(FrameModelConfig):
    """Per-frame feature grid + tiny MLP, no compression."""

    _target: Type = field(default_factory=lambda: VvcGridModel)
    grid_channels: int = 8
    """Feature channels of the grid."""
    grid_resolution: int = 48
    """Grid cells per side."""
    hidden_dim: int = 64
    """Hidden width of the MLP."""
    warm_start: bool = True
    """P-frames start from the previous frame's state (False: every frame from scratch)."""


class VvcGridModel(FrameModel):
    config: VvcGridModelConfig

    def make_field(self) -> nn.Module:
        c = self.config
        return GridField(c.grid_channels, c.grid_resolution, c.hidden_dim)

    def begin_frame(self, frame: int, is_iframe: bool) -> None:
        self.current_frame = frame
        self.frame_step = 0
        prev = self.store.load(frame - 1) if (self.store is not None and frame > 0) else None
        if is_iframe or not self.config.warm_start or prev is None:
            fresh = self.make_field().to(self.aabb.device)
            self.field.load_state_dict(fresh.state_dict())
            self.occupancy.reset()
        else:
            self.load_state_into(self.field, self.occupancy, prev)
            self.frame_step = self.config.occupancy_warmup  # the reference grid is already pruned

    def end_frame(self, frame: int, is_iframe: bool) -> Dict[str, Any]:
        state = {f"field.{k}": v for k, v in self.field.state_dict().items()}
        state["occupancy"] = self.occupancy.binary.clone()
        if self.store is not None:
            self.store.save(frame, state)
        nbytes = sum(v.numel() * v.element_size() for v in self.field.state_dict().values())
        return {"frame": frame, "is_iframe": is_iframe, "state_bytes_uncompressed": nbytes}

    def load_state_into(self, field_module: nn.Module, occupancy: OccupancyGrid, state: Dict[str, Any]) -> None:
        field_module.load_state_dict({k[len("field."):]: v for k, v in state.items() if k.startswith("field.")})
        occupancy.set_binary(state["occupancy"])

    def get_param_groups(self) -> Dict[str, List[nn.Parameter]]:
        return {"grid": [self.field.grid], "mlp": list(self.field.mlp.parameters())}
