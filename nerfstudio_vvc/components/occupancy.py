"""Occupancy grid for empty-space skipping, in plain torch.

nerfacc's OccGridEstimator does the same on CUDA; this torch version runs everywhere and gives
identical results on CPU and GPU because it only thresholds an EMA of densities on a fixed grid.
The binary grid is part of each frame's coded state (the rate-aware bitstream stores it).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def occupancy_cells(box_cells: int, contraction: float = 0.0, num_outer_samples: int = 1, limit: int = 512) -> int:
    """Cells per side of an occupancy grid whose scene box has ``box_cells`` cells per side: contracted scenes
    (the grid covers all space, the box 1 / (1 + k) of it) get round(box_cells · (1 + k)), at most ``limit``."""
    if contraction <= 0 or num_outer_samples <= 0:
        return box_cells
    return min(int(round(box_cells * (1.0 + contraction))), limit)


class OccupancyGrid(nn.Module):
    """A [R, R, R] grid over the unit cube [0, 1]^3 marking cells that may hold density."""

    def __init__(self, resolution: int = 64, threshold: float = 0.01, decay: float = 0.95) -> None:
        super().__init__()
        self.resolution = resolution
        self.threshold = threshold
        self.decay = decay
        self.register_buffer("density_ema", torch.zeros((resolution,) * 3))
        self.register_buffer("binary", torch.ones((resolution,) * 3, dtype=torch.bool))

    def reset(self) -> None:
        """Mark every cell occupied with no density history (start of an I-frame): the first update
        prunes by the field's density alone, as nerfacc's grid does (an EMA started high would keep
        every cell for hundreds of updates)."""
        self.density_ema.zero_()
        self.binary.fill_(True)

    def cell_index(self, x01: torch.Tensor) -> torch.Tensor:
        """Integer cell coordinates [N, 3] of points in [0, 1]^3 (clamped)."""
        return (x01 * self.resolution).long().clamp_(0, self.resolution - 1)

    def query(self, x01: torch.Tensor) -> torch.Tensor:
        """Boolean occupancy of points [..., 3] in the unit cube."""
        idx = self.cell_index(x01.reshape(-1, 3))
        occ = self.binary[idx[:, 0], idx[:, 1], idx[:, 2]]
        return occ.reshape(x01.shape[:-1])

    @torch.no_grad()
    def update(self, density_fn: Callable[[torch.Tensor], torch.Tensor], step_size: float, chunk: int = 65536) -> None:
        """Re-evaluate density at jittered cell centres; keep cells whose opacity exceeds the threshold."""
        r = self.resolution
        grid = torch.stack(torch.meshgrid(*[torch.arange(r, device=self.binary.device)] * 3, indexing="ij"), -1)
        pts = (grid.reshape(-1, 3).float() + torch.rand(r**3, 3, device=grid.device)) / r
        dens = torch.cat([density_fn(pts[i : i + chunk]) for i in range(0, len(pts), chunk)]).reshape(r, r, r)
        self.density_ema.copy_(torch.maximum(self.density_ema * self.decay, dens))
        # opacity of one step through the cell, as nerfacc does
        alpha = 1.0 - torch.exp(-self.density_ema * step_size)
        thresh = min(self.threshold, float(alpha.mean()))
        self.binary.copy_(alpha > thresh)

    @torch.no_grad()
    def dilate(self, cells: int = 1) -> None:
        """Mark every cell within `cells` (L∞) of an occupied one occupied too (the EMA is left as it is)."""
        k = 2 * cells + 1
        grown = torch.nn.functional.max_pool3d(self.binary[None, None].float(), k, stride=1, padding=cells)[0, 0] > 0
        self.binary.copy_(grown)

    @torch.no_grad()
    def recompute(self, density_fn: Callable[[torch.Tensor], torch.Tensor], step_size: float, passes: int = 2) -> None:
        """Occupancy of `density_fn` alone (no history): the max over `passes` jittered evaluations."""
        self.density_ema.zero_()
        for _ in range(passes):
            self.update(density_fn, step_size)

    def set_binary(self, binary: torch.Tensor) -> None:
        """Install a decoded binary grid (playback or P-frame reference)."""
        self.binary.copy_(binary.to(self.binary.device).bool())
        self.density_ema.copy_(torch.where(self.binary, 1e3, 0.0))
