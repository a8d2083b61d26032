"""Field building blocks shared by the methods: grid lookup, view-direction encoding, render MLP.

No nerfstudio import: the standalone decoders render with this same code.

A field maps points ``x01`` [N, 3] in the unit cube (scene box, or the contracted scene, see
``components/rendering.py``) and unit view directions ``dirs`` [N, 3] to ``(density [N], rgb [N, 3])``
and exposes ``density(x01)`` for the occupancy grid.
"""

from __future__ import annotations

import math
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


class GridMosaic:
    """A [C, D, H, W] grid baked for trilinear look-ups by 2-D bilinear sampling (playback, CPU).

    torch's CPU 2-D `grid_sample` is vectorised, its 3-D one is not. The D slices are laid out as tiles of a 2-D
    image (about √D × √D tiles, each (H+2) × (W+2): the slice with its edge rows and columns repeated, so a read
    that float rounding puts just past a slice's edge never mixes in the next tile); a look-up reads the two slices
    around the point's z in one 2-D call and blends them. Mathematically `sample_grid` (border padding, corners
    aligned); the floats differ by rounding (a position in an image ~1,500 px wide is rounded to ~1e-4 of a cell),
    which is why only the playback renderer uses it (tests/components/test_heads.py bounds the difference)."""

    def __init__(self, grid: torch.Tensor) -> None:
        c, d, h, w = grid.shape
        self.shape = (c, d, h, w)
        self.tiles_x = max(1, math.ceil(math.sqrt(d)))
        tiles_y = -(-d // self.tiles_x)
        padded = F.pad(grid[None], (1, 1, 1, 1, 0, tiles_y * self.tiles_x - d), mode="replicate")[0]
        self.image = (padded.view(c, tiles_y, self.tiles_x, h + 2, w + 2).permute(0, 1, 3, 2, 4)
                      .reshape(1, c, tiles_y * (h + 2), self.tiles_x * (w + 2)).contiguous())

    def sample(self, x01: torch.Tensor) -> torch.Tensor:
        """Trilinear look-up at points [N, 3] in [0,1]^3 (x→W, y→H, z→D; outside: clamped). Returns [N, C]."""
        c, d, h, w = self.shape
        x01 = x01.clamp(0.0, 1.0)
        ix, iy, iz = (x01 * x01.new_tensor([w - 1, h - 1, d - 1])).unbind(-1)
        z0 = iz.floor().clamp(max=max(d - 2, 0))
        wz = (iz - z0)[None]
        tile = torch.stack([z0, (z0 + 1).clamp(max=d - 1)])  # [2, N]: the slices below and above
        row = torch.div(tile, self.tiles_x, rounding_mode="floor")
        px = ix + 1.0 + (tile - row * self.tiles_x) * (w + 2)
        py = iy + 1.0 + row * (h + 2)
        img_h, img_w = self.image.shape[-2:]
        g = torch.stack([px * (2.0 / max(img_w - 1, 1)) - 1.0, py * (2.0 / max(img_h - 1, 1)) - 1.0], -1)
        out = F.grid_sample(self.image, g[None], mode="bilinear", align_corners=True, padding_mode="border")[0]
        return torch.lerp(out[:, 0], out[:, 1], wz).t()  # [C, 2, N] -> [N, C]


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
