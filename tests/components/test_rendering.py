"""Shared renderer and occupancy grid: scene contraction, far content, occupancy growth."""

from __future__ import annotations

import math

import pytest
import torch

from nerfstudio_vvc.components.heads import RenderMLP, sh_basis
from nerfstudio_vvc.components.occupancy import OccupancyGrid
from nerfstudio_vvc.components.rendering import RenderSettings, distortion_loss, render_rays, to_unit_cube

AABB = torch.tensor([[-1.5] * 3, [1.5] * 3])


def test_contraction_keeps_the_box_and_squeezes_infinity_onto_the_faces():
    k = 0.5
    inside = torch.rand(1000, 3) * 3.0 - 1.5
    a = to_unit_cube(inside, AABB, k)
    torch.testing.assert_close(a, (inside / 1.5 / (1 + k) + 1) / 2)  # linear inside the box
    assert ((a - 0.5).abs().amax(-1) <= 0.5 / (1 + k) + 1e-6).all()
    far = torch.nn.functional.normalize(torch.randn(1000, 3), dim=-1) * 1e7
    b = to_unit_cube(far, AABB, k)
    assert torch.allclose((b - 0.5).abs().amax(-1), torch.full((1000,), 0.5), atol=1e-5)
    # monotone along a ray leaving the box
    t = torch.linspace(1.6, 100.0, 500)[:, None]
    d = to_unit_cube(t * torch.tensor([[1.0, 0.3, -0.2]]), AABB, k)[:, 0]
    assert (d[1:] > d[:-1]).all()
    torch.testing.assert_close(to_unit_cube(inside, AABB, 0.0), (inside + 1.5) / 3.0)


class _FarShell(torch.nn.Module):
    """Opaque green everywhere outside the scene box (contracted radius > box), empty inside."""

    def __init__(self, k: float) -> None:
        super().__init__()
        self.k = k

    def density(self, x01):
        r = (x01 - 0.5).abs().amax(-1) * 2 * (1 + self.k)  # |u|∞ after undoing the 1/(1+k) scale
        return torch.where(r > 1.02, torch.full_like(r, 50.0), torch.zeros_like(r))

    def forward(self, x01, dirs):
        rgb = torch.tensor([0.1, 0.8, 0.2]).expand(len(x01), 3)
        return self.density(x01), rgb


def _rays(n=256):
    torch.manual_seed(0)
    dirs = torch.nn.functional.normalize(torch.randn(n, 3), dim=-1)
    return -3.0 * dirs, dirs  # cameras on a sphere of radius 3 looking through the centre


def test_far_content_renders_behind_the_box_without_fog_inside():
    k = 0.5
    origins, dirs = _rays()
    # cameras sit outside the box: the shell also lies between camera and box; start rays past it
    out = render_rays(_FarShell(k), origins + dirs * 1.55, dirs, AABB, None, 32, 0.0, torch.ones(3), jitter=False,
                      contraction=k, num_outer_samples=32)
    torch.testing.assert_close(out["rgb"], torch.tensor([0.1, 0.8, 0.2]).expand(256, 3), atol=1e-3, rtol=0)
    assert (out["depth"][:, 0] > 3.0 - 1e-3).all()  # the far content is seen behind the box, not in it


def test_rays_missing_the_box_still_see_far_content():
    k = 1.0
    origins = torch.tensor([[0.0, 0.0, 5.0]] * 4)
    dirs = torch.nn.functional.normalize(
        torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.2], [-1.0, 0.0, 0.1], [0.0, -1.0, 0.3]]), dim=-1
    )
    out = render_rays(
        _FarShell(k),
        origins,
        dirs,
        AABB,
        None,
        16,
        0.0,
        torch.ones(3),
        jitter=False,
        contraction=k,
        num_outer_samples=32,
    )
    assert (out["accumulation"] > 0.99).all()


def test_distortion_loss_matches_its_definition_and_penalises_spread_weight():
    torch.manual_seed(0)
    w = torch.rand(5, 9) / 9
    s = torch.sort(torch.rand(5, 9), -1).values
    pairwise = (w[:, :, None] * w[:, None, :] * (s[:, :, None] - s[:, None, :]).abs()).sum((1, 2))
    torch.testing.assert_close(distortion_loss(w, s, 0.1)[:, 0], pairwise + (w**2).sum(-1) * 0.1 / 3)
    s = torch.linspace(0.05, 0.95, 10)[None]
    compact = torch.zeros(1, 10)
    compact[0, 6] = 0.9
    floater = compact.clone()
    floater[0, 1], floater[0, 6] = 0.3, 0.6  # same opacity, a third of it in front of the surface
    assert float(distortion_loss(floater, s, 0.1)) > 5 * float(distortion_loss(compact, s, 0.1))


def test_renderer_returns_distortion_only_when_asked():
    origins, dirs = _rays(16)
    kw = dict(contraction=0.5, num_outer_samples=16)
    plain = render_rays(_FarShell(0.5), origins, dirs, AABB, None, 8, 0.0, torch.ones(3), jitter=True, **kw)
    assert "distortion" not in plain
    out = render_rays(
        _FarShell(0.5), origins, dirs, AABB, None, 8, 0.0, torch.ones(3), jitter=True, distortion=True, **kw
    )
    assert out["distortion"].shape == (16, 1) and (out["distortion"] >= 0).all() and float(out["distortion"].sum()) > 0


def test_a_fresh_field_is_not_opaque_behind_the_box():
    """Opacity outside the box is measured per contracted length: a field with the same small density everywhere
    (a fresh one) stays transparent over the renderer's long steps behind the box. With world lengths
    (`world_opacity`, for captures enclosed by a wall) every ray is opaque at its far end from the first step."""

    class Uniform(torch.nn.Module):
        def forward(self, x01, dirs):
            return torch.full((len(x01),), 0.07), torch.ones(len(x01), 3)

    origins, dirs = _rays(64)
    out = render_rays(
        Uniform(),
        origins,
        dirs,
        AABB,
        None,
        32,
        0.0,
        torch.zeros(3),
        jitter=True,
        contraction=0.5,
        num_outer_samples=32,
    )
    through_box = 1.0 - math.exp(-0.07 * 3.0)
    # at least the box's 3 units; far from opaque (with world lengths every ray reached 1.0)
    assert (out["accumulation"] > through_box).all() and (out["accumulation"] < 0.5).all()
    world = render_rays(
        Uniform(),
        origins,
        dirs,
        AABB,
        None,
        32,
        0.0,
        torch.zeros(3),
        jitter=True,
        contraction=0.5,
        num_outer_samples=32,
        world_opacity=True,
    )
    assert (world["accumulation"] > 0.99).all()
    bounded = dict(contraction=0.0, num_outer_samples=32, jitter=False)  # no outside: the option changes nothing
    assert torch.equal(
        render_rays(Uniform(), origins, dirs, AABB, None, 32, 0.0, torch.zeros(3), **bounded)["rgb"],
        render_rays(Uniform(), origins, dirs, AABB, None, 32, 0.0, torch.zeros(3), world_opacity=True, **bounded)[
            "rgb"
        ],
    )


def test_render_settings_round_trip_and_render_like_the_training_call():
    """What a model writes into the METHOD_CONFIG is what its decoder renders with: every setting survives the JSON
    round trip, `world_opacity` is written only when set (older streams stay byte-identical), and `render` is the
    training renderer without jitter."""
    import json

    s = RenderSettings(
        aabb=((-1.5, -1.5, -1.5), (1.5, 1.5, 1.5)),
        near_plane=0.05,
        background=(1.0, 0.5, 0.0),
        num_samples=24,
        occupancy_resolution=72,
        contraction=0.5,
        num_outer_samples=16,
    )
    assert "world_opacity" not in s.to_json()
    for settings in (s, RenderSettings(**{**s.__dict__, "world_opacity": True})):
        back = RenderSettings.from_json(json.loads(json.dumps({**settings.to_json(), "lambda_rate": 1e-3})))
        assert back == settings
    old = RenderSettings.from_json(
        {
            "aabb": [[-1, -1, -1], [1, 1, 1]],
            "near_plane": 0,
            "background": [1, 1, 1],
            "num_samples": 8,
            "occupancy_resolution": 16,
        }
    )  # a stream from before contraction
    assert (old.contraction, old.num_outer_samples, old.world_opacity) == (0.0, 0, False)
    origins, dirs = _rays(32)
    for world in (False, True):
        settings = RenderSettings(**{**s.__dict__, "world_opacity": world})
        want = render_rays(
            _FarShell(0.5),
            origins,
            dirs,
            torch.tensor(settings.aabb),
            None,
            24,
            0.05,
            torch.tensor([1.0, 0.5, 0.0]),
            jitter=False,
            contraction=0.5,
            num_outer_samples=16,
            world_opacity=world,
        )
        got = settings.render(_FarShell(0.5), origins, dirs, None)
        assert all(torch.equal(got[k], want[k]) for k in ("rgb", "accumulation", "depth"))


def test_render_settings_json_is_validated_in_one_place():
    """Both 3D codecs check their METHOD_CONFIG's ``render`` object with `RenderSettings.validate_json`: every setting
    a model writes passes and reads back unchanged; a method's own keys need a rule; a crafted value is a typed error
    naming the field."""
    import json

    s = RenderSettings(
        aabb=((-1.5, -1.5, -1.5), (1.5, 1.5, 1.5)),
        near_plane=0.05,
        background=(1.0, 0.5, 0.0),
        num_samples=24,
        occupancy_resolution=72,
        contraction=0.5,
        num_outer_samples=16,
        world_opacity=True,
    )
    written = json.loads(json.dumps({**s.to_json(), "lambda_rate": 1e-3}))
    checked = RenderSettings.validate_json(written, {"lambda_rate": (float, 0.0, 1.0)})
    assert checked == written and RenderSettings.from_json(checked) == s
    with pytest.raises(ValueError, match=r"unknown render field\(s\) \['lambda_rate'\]"):
        RenderSettings.validate_json(written)  # a method key without a rule
    old = {
        "aabb": [[-1, -1, -1], [1, 1, 1]],
        "near_plane": 0,
        "background": [1, 1, 1],
        "num_samples": 8,
        "occupancy_resolution": 16,
    }  # a stream from before contraction: optional settings may be absent
    assert RenderSettings.validate_json(old) == old
    cases = [
        ({"num_samples": None}, TypeError, "render.num_samples must be an integer"),
        ({"num_samples": True}, TypeError, "render.num_samples must be an integer"),
        ({"occupancy_resolution": 10**6}, ValueError, "render.occupancy_resolution = 1000000 outside"),
        ({"near_plane": float("nan")}, ValueError, "render.near_plane = nan outside"),
        ({"world_opacity": 1}, TypeError, "render.world_opacity must be true/false"),
        ({"aabb": [[0, 0, 0], [1, 0, 1]]}, ValueError, "render.aabb is empty"),
        ({"aabb": [[0, 0], [1, 1]]}, TypeError, "render.aabb must be"),
        ({"background": [1, 1]}, TypeError, "render.background must be a list of 3 values"),
        ({"background": [1, 1, 2]}, ValueError, "render.background = 2 outside"),
    ]
    for change, exc, match in cases:
        with pytest.raises(exc, match=match.replace("(", r"\(").replace("[", r"\[")):
            RenderSettings.validate_json({**old, **change})
    with pytest.raises(KeyError, match="render.num_samples missing"):
        RenderSettings.validate_json({k: v for k, v in old.items() if k != "num_samples"})
    with pytest.raises(TypeError, match="render must be an object"):
        RenderSettings.validate_json([])


def test_dilate_grows_occupancy_by_one_cell():
    occ = OccupancyGrid(8)
    occ.binary.zero_()
    occ.binary[3, 4, 5] = True
    occ.dilate()
    assert int(occ.binary.sum()) == 27
    assert bool(occ.binary[2:5, 3:6, 4:7].all())


def test_recompute_forgets_history():
    occ = OccupancyGrid(8)  # fresh grid: all occupied, EMA high
    occ.recompute(lambda x: torch.where(x[:, 0] < 0.5, 100.0, 0.0), step_size=0.05)
    assert bool(occ.binary[:4].all()) and not bool(occ.binary[4:].any())


def test_render_mlp_colour_depends_on_view_direction_only_with_geo_code():
    torch.manual_seed(0)
    feats = torch.randn(64, 8)
    d1 = torch.nn.functional.normalize(torch.randn(64, 3), dim=-1)
    vd, vi = RenderMLP(8, 16, geo_dim=7), RenderMLP(8, 16, geo_dim=0)
    assert not torch.allclose(vd(feats, d1)[1], vd(feats, -d1)[1])
    torch.testing.assert_close(vd(feats, d1)[0], vd.density(feats))
    torch.testing.assert_close(vi(feats, d1)[1], vi(feats, -d1)[1])
    assert torch.allclose(sh_basis(d1)[:, 0], torch.full((64,), 0.28209479177387814))


# ------------------------------------------------------------------------------------------ playback renderer
PLAYBACK_TOLERANCE = 2e-3
"""The playback renderer against the exact one: max |RGB difference| (half an 8-bit level)."""


class _Ball(torch.nn.Module):
    """An opaque ball in thin fog; colour depends on position and view direction (a `SplitField` too)."""

    def density(self, x01):
        r = (x01 - 0.5).norm(dim=-1)
        return torch.where(r < 0.25, torch.full_like(r, 80.0), torch.full_like(r, 0.3))

    def color(self, x01, dirs):
        return torch.sigmoid(torch.cat([x01 * 4 - 2, dirs[:, :1] * 3], -1) @ torch.randn(4, 3, generator=self.gen))

    def __init__(self):
        super().__init__()
        self.gen = torch.Generator().manual_seed(0)

    def forward(self, x01, dirs):
        self.gen.manual_seed(0)
        return self.density(x01), self.color(x01, dirs)

    def density_state(self, x01):
        return self.density(x01), x01

    def rgb_of(self, x01, dirs):
        self.gen.manual_seed(0)
        return self.color(x01, dirs)


def test_playback_renderer_matches_render_and_skips_hidden_samples():
    """`render_rays_playback`: the exact renderer's picture within PLAYBACK_TOLERANCE while the field sees far fewer
    samples (rays stop inside the ball); with both thresholds at 0 it is the exact renderer up to float rounding."""
    from nerfstudio_vvc.components.rendering import render_rays_playback

    origins, dirs = _rays(512)
    occ = OccupancyGrid(16)
    args = (origins, dirs, AABB, occ, 64, 0.0, torch.tensor([1.0, 1.0, 0.0]))
    want = render_rays(_Ball(), *args, jitter=False)
    got = render_rays_playback(_Ball(), *args)
    for key in ("rgb", "accumulation", "depth"):
        tol = PLAYBACK_TOLERANCE * (3.0 if key == "depth" else 1.0)  # depth in scene units (box side 3)
        assert (got[key] - want[key]).abs().max() <= tol, key
    assert got["num_samples"].sum() < 0.6 * want["num_samples"].sum()
    lossless = render_rays_playback(_Ball(), *args, termination=0.0, min_weight=0.0)
    torch.testing.assert_close(lossless["rgb"], want["rgb"], atol=1e-6, rtol=0)
    assert torch.equal(lossless["num_samples"], want["num_samples"])


def _decoder_fields(device: str = "cpu"):
    """(render settings, occupancy, rays, [(field, its SplitField)]) for the two 3D methods' decoded-frame fields
    (DiF: features + density MLP, colour MLP later; HexPlane: density planes, appearance planes later), random but
    dense enough that rays stop early, on `device`."""
    from nerfstudio_vvc.methods.codebook.decoder import HexSplit
    from nerfstudio_vvc.methods.codebook.field import HexField, HexHead, HexSpec, init_planes
    from nerfstudio_vvc.methods.rate_aware.decoder import DiFSplit
    from nerfstudio_vvc.methods.rate_aware.field import DiFFrameField, DiFSpec, init_grids

    torch.manual_seed(0)
    settings = RenderSettings(aabb=((-1.5,) * 3, (1.5,) * 3), near_plane=0.0, background=(1.0, 1.0, 1.0),
                              num_samples=48, occupancy_resolution=16)
    occ = OccupancyGrid(16)
    occ.binary.copy_(torch.rand(16, 16, 16) < 0.4)
    origins, dirs = _rays(400)
    hspec = HexSpec(density_resolution=16, appearance_resolutions=(8, 16), time_resolution=4, density_dim=4,
                    appearance_dim=6, hidden_dim=16)
    head = HexHead(hspec)
    with torch.no_grad():
        head.sigma[2].bias.fill_(7.0)  # dense enough that rays stop early
    planes = [(p + 0.3 * torch.randn_like(p)).to(device) for p in init_planes(hspec)]
    hex_field = HexField(hspec, head.to(device), planes, 0.37)
    dspec = DiFSpec(basis_resolutions=(6, 8, 8, 10, 10, 12), coeff_resolution=8, hidden_dim=16)
    dif = DiFFrameField(dspec)
    with torch.no_grad():
        dif.mlp.net[2].bias[0] = 7.0
    dif = dif.to(device)
    dif.set_grids([g * 3 for g in init_grids(dspec)])  # (onto the MLP's device, as the decoder does)
    occ = occ.to(device)
    fields = [(hex_field, HexSplit(hex_field)), (dif, DiFSplit(dif))]
    return settings, occ, (origins.to(device), dirs.to(device)), fields


def test_decoder_fields_split_for_the_playback_renderer_give_the_same_picture():
    """The two 3D methods' `SplitField`s on random frames: the exact renderer's picture within PLAYBACK_TOLERANCE."""
    settings, occ, (origins, dirs), fields = _decoder_fields()
    for field, split in fields:
        with torch.no_grad():
            want = settings.render(field, origins, dirs, occ)
            got = settings.render_playback(split, origins, dirs, occ)
        assert want["accumulation"].mean() > 0.5  # the comparison sees surfaces, not only background
        assert (got["rgb"] - want["rgb"]).abs().max() <= PLAYBACK_TOLERANCE, type(field).__name__
        assert got["num_samples"].sum() < want["num_samples"].sum()


class _Recording:
    """A `SplitField` that notes the threads it ran on (and can fail on demand)."""

    def __init__(self, split, fail: bool = False):
        self.split, self.fail, self.threads = split, fail, set()

    def density_state(self, x01):
        import threading

        self.threads.add(threading.current_thread().name)
        if self.fail:
            raise RuntimeError("field failed")
        return self.split.density_state(x01)

    def rgb_of(self, state, dirs):
        return self.split.rgb_of(state, dirs)


def test_playback_render_split_over_worker_threads_gives_the_one_call_picture(monkeypatch):
    """On a CPU `render_playback` splits a call's rays over worker threads (`render_pieces`): the same picture as one
    call on the caller's thread (each ray renders alone; a matrix product over fewer rows may round differently), the
    same samples; a field's error reaches the caller; a render started inside a worker does not split again."""
    import nerfstudio_vvc.components.rendering as rendering

    monkeypatch.setattr(rendering, "PLAYBACK_PIECE_RAYS", 64)  # (400 rays: pieces of 64 at least)
    settings, occ, (origins, dirs), fields = _decoder_fields()
    for _, split in fields:
        outs = {}
        for workers in (1, 2, 3):
            rendering.set_playback_workers(workers)
            rec = _Recording(split)
            with torch.no_grad():
                outs[workers] = settings.render_playback(rec, origins, dirs, occ)
            on_workers = {t for t in rec.threads if t.startswith("vvc-playback")}
            assert bool(on_workers) == (workers > 1), (workers, rec.threads)
            assert len(on_workers) <= workers
        rendering.set_playback_workers(0)
        for workers in (2, 3):
            assert torch.equal(outs[workers]["num_samples"], outs[1]["num_samples"])
            for key in ("rgb", "accumulation", "depth"):
                torch.testing.assert_close(outs[workers][key], outs[1][key], atol=1e-6, rtol=0)
        assert not outs[2]["rgb"].requires_grad
    rendering.set_playback_workers(2)
    try:
        with pytest.raises(RuntimeError, match="field failed"):
            settings.render_playback(_Recording(fields[1][1], fail=True), origins, dirs, occ)

        def outer(field, o, d, *args, **kwargs):  # a renderer that itself renders through the pool (on a worker: it
            # must render there, not queue pieces behind the busy workers and wait for them forever)
            return rendering.render_pieces(rendering.render_rays_playback, field, o, d, *args, **kwargs)

        rec = _Recording(fields[1][1])
        got = rendering.render_pieces(outer, *settings._ray_args(rec, origins, dirs, occ), **settings._scene_kwargs())
        assert rec.threads and all(t.startswith("vvc-playback") for t in rec.threads), rec.threads
        torch.testing.assert_close(got["rgb"], outs[1]["rgb"], atol=1e-6, rtol=0)
    finally:
        rendering.set_playback_workers(0)
    with pytest.raises(ValueError, match="workers"):
        rendering.set_playback_workers(-1)


@pytest.mark.cuda
def test_playback_renderer_on_cuda_gives_the_cpu_picture():
    """On a GPU the playback renderer keeps its bound to the exact renderer (same device), and both give the CPU's
    picture up to float rounding across devices (a sample on an occupancy cell's face may fall on the other side:
    checked on 99 % of the rays, the rest within the playback tolerance of the CPU's exact picture on average)."""
    cpu_settings, cpu_occ, (o, d), cpu_fields = _decoder_fields("cpu")
    settings, occ, (o_gpu, d_gpu), fields = _decoder_fields("cuda")
    for (cpu_field, _), (field, split) in zip(cpu_fields, fields):
        with torch.no_grad():
            want = cpu_settings.render(cpu_field, o, d, cpu_occ)["rgb"]
            exact = settings.render(field, o_gpu, d_gpu, occ)["rgb"]
            fast = settings.render_playback(split, o_gpu, d_gpu, occ)["rgb"]
        assert exact.device.type == fast.device.type == "cuda"
        assert (fast - exact).abs().max() <= PLAYBACK_TOLERANCE, type(field).__name__
        err = (exact.cpu() - want).abs().amax(-1)
        assert torch.quantile(err, 0.99) <= 1e-4, type(field).__name__
        assert (fast.cpu() - want).abs().mean() <= PLAYBACK_TOLERANCE, type(field).__name__


@pytest.mark.parametrize("res", [16, 48, 300])
def test_per_axis_sample_positions_and_cells_are_the_same_floats(res):
    """The playback march's per-axis positions and occupancy (`_unit_coords`, `_field_mask_axes`) are bit for bit those
    of `to_unit_cube` and `_field_mask`, on cell faces, the box's faces and just outside it too."""
    from nerfstudio_vvc.components.rendering import _field_mask, _field_mask_axes, _unit_coords

    torch.manual_seed(res)
    origins, dirs = _rays(300)
    origins = origins + 0.01 * torch.randn_like(origins)
    t = 1.3 + 3.4 * torch.rand(300, 40)
    t[:, 0] = 0.0  # (outside the box: the cameras)
    want = to_unit_cube(origins[:, None, :] + dirs[:, None, :] * t[..., None], AABB)
    xs = _unit_coords(origins, dirs, t, AABB)
    for c in range(3):
        assert torch.equal(xs[c], want[..., c])
    # points exactly on cell faces and on the cube's faces, and a hair outside: built per axis
    grid = torch.tensor([0.0, 1.0, 1.0 + 2**-23, -(2**-24), 0.5, 7 / res, 1 - 1 / res, 1 - 2**-24])
    pts = torch.cartesian_prod(grid, grid, grid).reshape(64, 8, 3)
    pts = torch.cat([pts, want[:64, :8]], 1)
    occ = OccupancyGrid(res)
    occ.binary.copy_(torch.rand(res, res, res) < 0.5)
    delta = torch.rand(pts.shape[:2]) - 0.1
    got = _field_mask_axes(delta, [pts[..., c].contiguous() for c in range(3)], occ)
    assert torch.equal(got, _field_mask(delta, pts, occ))
    assert 0 < int(got.sum()) < got.numel()


@pytest.mark.parametrize("res", [16, 48, 50])
def test_playback_ray_culling_misses_no_occupied_sample(res):
    """Bounded scenes: the playback renderer marches only the rays and the stretch of each ray that a coarse grid
    says may pass an occupied cell. On sparse occupancy (small clusters, one lone cell, cameras outside and inside the
    box, rays grazing the box, a grid side not divisible by the coarse factor) it must find every occupied sample:
    with both thresholds at 0 it is the exact renderer — the same sample count per ray, the same picture."""
    from nerfstudio_vvc.components.rendering import render_rays_playback

    torch.manual_seed(res)
    occ = OccupancyGrid(res)
    occ.binary.zero_()
    for _ in range(6):  # small clusters
        c = torch.randint(0, res - 2, (3,))
        occ.binary[c[0] : c[0] + 2, c[1] : c[1] + 2, c[2] : c[2] + 2] = True
    occ.binary[res - 1, 0, res // 2] = True  # a lone cell on the box's edge
    far_o, far_d = _rays(1500)
    inner_o = (torch.rand(300, 3) - 0.5) * 2.0  # cameras inside the box
    inner_d = torch.nn.functional.normalize(torch.randn(300, 3), dim=-1)
    graze_d = torch.nn.functional.normalize(torch.tensor([[1.0, 1e-4, 0.0]]).expand(200, 3), dim=-1)
    graze_o = torch.stack([torch.full((200,), -3.0), torch.linspace(-1.5, 1.5, 200), torch.full((200,), 1.499)], -1)
    origins, dirs = torch.cat([far_o, inner_o, graze_o]), torch.cat([far_d, inner_d, graze_d])
    args = (origins, dirs, AABB, occ, 96, 0.1, torch.tensor([1.0, 1.0, 0.0]))
    want = render_rays(_Ball(), *args, jitter=False)
    assert 0 < int((want["num_samples"] > 0).sum()) < 0.5 * len(origins)  # sparse: most rays see nothing
    got = render_rays_playback(_Ball(), *args, termination=0.0, min_weight=0.0)
    assert torch.equal(got["num_samples"], want["num_samples"])
    torch.testing.assert_close(got["rgb"], want["rgb"], atol=1e-6, rtol=0)
    torch.testing.assert_close(got["depth"], want["depth"], atol=1e-5, rtol=0)
    fast = render_rays_playback(_Ball(), *args)
    assert (fast["rgb"] - want["rgb"]).abs().max() <= PLAYBACK_TOLERANCE
