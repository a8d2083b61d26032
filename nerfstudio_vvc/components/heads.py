"""Field building blocks shared by the methods: grid lookup, view-direction encoding, render MLP.

No nerfstudio import: the standalone decoders render with this same code.

A field maps points ``x01`` [N, 3] in the unit cube (scene box, or the contracted scene, see
``components/rendering.py``) and unit view directions ``dirs`` [N, 3] to ``(density [N], rgb [N, 3])``
and exposes ``density(x01)`` for the occupancy grid.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

SPLIT_MIN_POINTS = 8192
"""`sample_grid` splits a CPU look-up of at least this many points per thread into one batch entry per thread."""


def sample_grid(grid: torch.Tensor, x01: torch.Tensor) -> torch.Tensor:
    """Trilinear lookup of a [C, D, H, W] grid at points [N, 3] in [0,1]^3 (x→W, y→H, z→D). Returns [N, C].

    torch's CPU 3-D `grid_sample` runs its batch entries in parallel and the points of one entry on one thread, so
    without autograd a large CPU look-up goes in as one batch entry per torch thread (the grid expanded, not copied):
    every point gets the same floats as in one entry (tested), in the same [C, N]ᵀ layout; a 640×360 render of a
    decoded frame takes ×0.7 of the time on 2 cores. With autograd it stays one entry (the grid's gradient would be
    summed over the entries in another order)."""
    threads = torch.get_num_threads()
    n = x01.shape[0]
    coords = x01 * 2.0 - 1.0
    if (threads < 2 or grid.is_cuda or n < SPLIT_MIN_POINTS * threads
            or (torch.is_grad_enabled() and (grid.requires_grad or x01.requires_grad))):
        out = F.grid_sample(grid[None], coords.view(1, -1, 1, 1, 3), mode="bilinear", align_corners=True,
                            padding_mode="border")
        return out.view(grid.shape[0], -1).t()
    per = -(-n // threads)
    if per * threads != n:
        coords = torch.cat([coords, coords.new_zeros(per * threads - n, 3)])
    out = F.grid_sample(grid[None].expand(threads, -1, -1, -1, -1), coords.view(threads, per, 1, 1, 3),
                        mode="bilinear", align_corners=True, padding_mode="border")  # [threads, C, per, 1, 1]
    # into a fresh [C, N] then transposed: the one-entry path's memory layout (stride and alignment), so the MLP after
    # it multiplies the same matrix the same way
    res = out.new_empty(grid.shape[0], n)
    for i in range(threads):
        res[:, i * per : min(n, (i + 1) * per)] = out[i, :, : min(per, n - i * per), 0, 0]
    return res.t()


SH_DIM = 9
"""Real spherical harmonics up to degree 2."""


def sh_basis(dirs: torch.Tensor) -> torch.Tensor:
    """Degree-2 real spherical harmonics [N, 9] of unit directions [N, 3] (the usual NeRF constants)."""
    x, y, z = dirs.unbind(-1)
    return torch.stack([
        torch.full_like(x, 0.28209479177387814),
        -0.4886025119029199 * y, 0.4886025119029199 * z, -0.4886025119029199 * x,
        1.0925484305920792 * x * y, -1.0925484305920792 * y * z, 0.31539156525252005 * (3 * z * z - 1),
        -1.0925484305920792 * x * z, 0.5462742152960396 * (x * x - y * y),
    ], -1)


DENSITY_SHIFT = 5.0
"""Density = 10·softplus(h − DENSITY_SHIFT): a fresh field starts nearly transparent (~0.07 per
scene unit). Starting opaque lets each training view paint its own fog and novel views fail."""


class RenderMLP(nn.Module):
    """features → density + geometry code; (geometry code, SH(view direction)) → rgb.

    The colour branch sees the view direction (specular highlights, view-dependent shading), as in
    DiF / nerfacto; ``geo_dim = 0`` gives the view-independent one-MLP head.
    """

    def __init__(self, in_dim: int, hidden: int = 64, geo_dim: int = 15, color_hidden: Optional[int] = None) -> None:
        super().__init__()
        self.geo_dim = geo_dim
        if geo_dim == 0:
            self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, 4))
            return
        ch = color_hidden or hidden
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1 + geo_dim))
        self.color = nn.Sequential(nn.Linear(geo_dim + SH_DIM, ch), nn.ReLU(), nn.Linear(ch, 3))

    @staticmethod
    def _density(h0: torch.Tensor) -> torch.Tensor:
        return F.softplus(h0 - DENSITY_SHIFT) * 10.0

    def density(self, feats: torch.Tensor) -> torch.Tensor:
        return self._density(self.net(feats)[:, 0])

    def forward(self, feats: torch.Tensor, dirs: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        h = self.net(feats)
        if self.geo_dim == 0:
            return self._density(h[:, 0]), torch.sigmoid(h[:, 1:])
        if dirs is None:
            dirs = torch.zeros_like(feats[:, :3])
        rgb = torch.sigmoid(self.color(torch.cat([h[:, 1:], sh_basis(dirs)], -1)))
        return self._density(h[:, 0]), rgb
