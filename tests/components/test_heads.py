"""Field building blocks: the playback renderer's 2-D mosaic of a 3-D grid against the trilinear look-up."""

from __future__ import annotations

import pytest
import torch

from nerfstudio_vvc.components.heads import GridMosaic, sample_grid


def _points(n: int, generator: torch.Generator) -> torch.Tensor:
    """Random points in the unit cube, plus its corners, points on its faces and points outside it (clamped)."""
    inside = torch.rand(n, 3, generator=generator)
    corners = torch.tensor([[a, b, c] for a in (0.0, 1.0) for b in (0.0, 1.0) for c in (0.0, 1.0)])
    faces = torch.rand(60, 3, generator=generator)
    faces[torch.arange(60), torch.arange(60) % 3] = torch.tensor([0.0, 1.0]).repeat(30)
    outside = torch.rand(20, 3, generator=generator) * 1.6 - 0.3
    return torch.cat([inside, corners, faces, outside])


@pytest.mark.parametrize("shape", [(3, 1, 5, 7), (2, 2, 9, 4), (4, 40, 6, 9), (2, 13, 13, 13), (5, 7, 3, 11)])
def test_a_mosaic_looks_up_the_trilinear_values(shape):
    """Every point (inside, on faces, at corners, clamped from outside) gets `sample_grid`'s value to float
    rounding (white-noise grids; mosaics up to 56 px on a side: positions rounded to ~1e-5 of a cell): the slices,
    their order in the tiles, the z blend and the border all match."""
    gen = torch.Generator().manual_seed(sum(shape))
    grid = torch.randn(shape, generator=gen)
    x = _points(3000, gen)
    got, want = GridMosaic(grid).sample(x), sample_grid(grid, x)
    assert got.shape == want.shape == (x.shape[0], shape[0])
    torch.testing.assert_close(got, want, atol=5e-5, rtol=0)


def test_a_mosaic_tile_never_mixes_in_its_neighbour():
    """Slices of alternating constant values (0, 1e6, 0, ...), read exactly on a slice (z = k / 64) at the tiles' far
    edges and corners (x, y = 1): float rounding of a position in the mosaic may step past the tile's last pixel, and
    must then read the tile's repeated edge, never the next tile (a weight of 1e-6 of 1e6 would show)."""
    d = 65  # d - 1 = 64: z = k / 64 lands on slice k exactly
    z = torch.arange(d, dtype=torch.float32) / (d - 1)
    want = (torch.arange(d) % 2).float() * 1e6
    for h, w in ((3, 5), (6, 7), (7, 3), (11, 13)):
        grid = want[None, :, None, None].expand(1, d, h, w).contiguous()
        for x_, y_ in ((1.0, 1.0), (1.0, 0.5), (0.5, 1.0), (1.0, 0.0), (0.0, 1.0)):
            x = torch.stack([torch.full_like(z, x_), torch.full_like(z, y_), z], -1)
            got = GridMosaic(grid).sample(x)[:, 0]  # (bilinear weights summing to 1 - ulp: 0.06 off a 1e6)
            torch.testing.assert_close(got, want, atol=0.5, rtol=0, msg=lambda m: f"{(h, w, x_, y_)}: {m}")


def test_a_large_mosaic_stays_within_the_playback_tolerance():
    """The size vvc-rate-aware's finest basis grid has (128³, 1,419 × 1,548 px as a mosaic): float32 positions in an
    image that wide are rounded to ~1e-4 of a cell, so the values differ from `sample_grid`'s by about that times
    the difference between neighbouring cells — here well under the playback tolerance (2e-3 of RGB) for a
    smooth grid, and bounded for white noise."""
    gen = torch.Generator().manual_seed(3)
    noise = torch.randn(2, 128, 128, 128, generator=gen)
    smooth = torch.nn.functional.avg_pool3d(noise[None], 5, 1, 2)[0] * 5  # neighbouring cells differ by ~0.3
    x = torch.rand(20000, 3, generator=gen)
    for grid, bound in ((smooth, 2e-4), (noise, 2e-3)):
        err = (GridMosaic(grid).sample(x) - sample_grid(grid, x)).abs().max()
        assert err <= bound, float(err)
