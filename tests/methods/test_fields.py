"""Fresh fields start nearly transparent.

A field that starts opaque fills the scene box with fog; each training view then paints its own colours
on it and novel views fail (the demo measured 7 dB test vs 17 dB train PSNR before this was fixed).
"""

from __future__ import annotations

import torch

from nerfstudio_vvc.components.rendering import render_rays
from nerfstudio_vvc.methods.rate_aware.field import DiFFrameField, DiFSpec, init_grids
from nerfstudio_vvc.methods.vvc_grid.field import GridField

AABB = torch.tensor([[-1.5] * 3, [1.5] * 3])


def _opacity_through_box(field) -> float:
    torch.manual_seed(0)
    dirs = torch.nn.functional.normalize(torch.randn(512, 3), dim=-1)
    origins = -3.0 * dirs  # every ray crosses the box through its centre
    out = render_rays(field, origins, dirs, AABB, None, 64, 0.0, torch.ones(3), jitter=False)
    return float(out["accumulation"].mean())


def test_fresh_grid_field_is_nearly_transparent():
    torch.manual_seed(0)
    assert _opacity_through_box(GridField()) < 0.5


def test_fresh_dif_field_is_nearly_transparent():
    spec = DiFSpec(basis_resolutions=(8, 8, 8, 8, 8, 8), coeff_resolution=8)
    field = DiFFrameField(spec)
    field.set_grids(init_grids(spec, torch.Generator().manual_seed(0)))
    assert _opacity_through_box(field) < 0.5


def test_cpu_grid_lookup_split_over_threads_gives_the_same_floats_in_the_same_layout():
    """`sample_grid` without autograd on 2 threads: one batch entry per thread (a point count that does not divide,
    points outside the cube), the same floats and [C, N]ᵀ layout as one entry; with autograd it stays one entry."""
    from nerfstudio_vvc.components import heads

    g = torch.randn(5, 9, 11, 13, generator=torch.Generator().manual_seed(0))
    x = torch.rand(2 * heads.SPLIT_MIN_POINTS + 3, 3, generator=torch.Generator().manual_seed(1)) * 1.4 - 0.2
    calls = []
    real = heads.F.grid_sample
    threads = torch.get_num_threads()
    try:
        heads.F.grid_sample = lambda inp, *a, **k: calls.append(inp.shape[0]) or real(inp, *a, **k)
        torch.set_num_threads(2)
        with torch.no_grad():
            split = heads.sample_grid(g, x)
        torch.set_num_threads(1)
        with torch.no_grad():
            one = heads.sample_grid(g, x)
        torch.set_num_threads(2)
        gr = g.clone().requires_grad_(True)
        with_grad = heads.sample_grid(gr, x)
    finally:
        heads.F.grid_sample = real
        torch.set_num_threads(threads)
    assert calls == [2, 1, 1]  # split on 2 threads; one entry on 1 thread and under autograd
    assert split.shape == one.shape == (x.shape[0], 5) and torch.equal(split, one)
    assert torch.equal(with_grad.detach(), one)
    assert split.stride() == one.stride() == (1, x.shape[0])  # both a [C, N] matrix transposed
