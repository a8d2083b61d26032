"""vvc-grid field: one explicit 3D feature grid per frame and the shared render MLP."""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import nn

from nerfstudio_vvc.components.heads import RenderMLP, sample_grid


class GridField(nn.Module):
    """Feature grid [C, R, R, R] + RenderMLP."""

    def __init__(self, channels: int = 8, resolution: int = 48, hidden: int = 64, geo_dim: int = 15) -> None:
        super().__init__()
        self.grid = nn.Parameter(torch.randn(channels, resolution, resolution, resolution) * 0.1)
        self.mlp = RenderMLP(channels, hidden, geo_dim)

    def density(self, x01: torch.Tensor) -> torch.Tensor:
        return self.mlp.density(sample_grid(self.grid, x01))

    def forward(self, x01: torch.Tensor, dirs: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.mlp(sample_grid(self.grid, x01), dirs)
