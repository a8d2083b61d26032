"""vvc-grid field: one explicit 3D feature grid per frame and a tiny MLP."""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn


def sample_grid(grid: torch.Tensor, x01: torch.Tensor) -> torch.Tensor:
    """Trilinear lookup of a [C, D, H, W] grid at points [N, 3] in [0,1]^3 (x→W, y→H, z→D). Returns [N, C]."""
    coords = (x01 * 2.0 - 1.0).view(1, -1, 1, 1, 3)
    out = F.grid_sample(grid[None], coords, mode="bilinear", align_corners=True, padding_mode="border")
    return out.view(grid.shape[0], -1).t()


DENSITY_SHIFT = 5.0
"""Density = 10·softplus(h − DENSITY_SHIFT): a fresh field starts nearly transparent (~0.07 per
scene unit). Starting opaque lets each training view paint its own fog and novel views fail."""


class TinyMLP(nn.Module):
    """features → hidden → (density, rgb)."""

    def __init__(self, in_dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, 4))

    def forward(self, feats: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        h = self.net(feats)
        density = F.softplus(h[:, 0] - DENSITY_SHIFT) * 10.0
        return density, torch.sigmoid(h[:, 1:])


class GridField(nn.Module):
    """Feature grid [C, R, R, R] + TinyMLP."""

    def __init__(self, channels: int = 8, resolution: int = 48, hidden: int = 64) -> None:
        super().__init__()
        self.grid = nn.Parameter(torch.randn(channels, resolution, resolution, resolution) * 0.1)
        self.mlp = TinyMLP(channels, hidden)

    def forward(self, x01: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.mlp(sample_grid(self.grid, x01))
