"""Ray marching with occupancy skipping and optional scene contraction, in plain torch.

Only samples in occupied cells are sent to the field (packed), which is what makes grid models
trainable on a CPU. The same function renders during training, in the viewer and in the decoders.

Bounded scenes (``contraction = 0``): ``num_samples`` uniform samples between the ray's entry into
and exit from the scene box; the field's unit cube is the box.

Unbounded scenes (``contraction = k > 0``): the field's unit cube holds the whole space, squeezed
with an L∞ contraction (mip-NeRF 360 style): box-normalised coordinates u (the box is |u|∞ ≤ 1) map
to u for |u|∞ ≤ 1 and to (1 + k − k/|u|∞) u/|u|∞ outside, then everything is divided by 1 + k. The
box keeps 1/(1 + k) of the grid resolution and infinity lands on the cube's faces. Rays get three
segments: from the near plane to the box (``num_outer_samples // 4`` uniform samples), through the
box (``num_samples`` uniform), and from the box to ``far`` (the rest, uniform in disparity, which is
uniform in contracted space). Rays that miss the box get the first and the last segment, split at
the point closest to the box centre.
"""

from __future__ import annotations

import functools
import math
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Protocol, Tuple

import torch

from nerfstudio_vvc.components.occupancy import OccupancyGrid
from nerfstudio_vvc.cores import usable_cores

FieldFn = Callable[[torch.Tensor, torch.Tensor], Tuple[torch.Tensor, torch.Tensor]]
"""Maps points in [0,1]^3 [N, 3] and unit view directions [N, 3] to (density [N], rgb [N, 3])."""

FAR_FACTOR = 1000.0
"""Unbounded scenes are marched to FAR_FACTOR box half-sizes from the box centre."""


def ray_aabb(origins: torch.Tensor, dirs: torch.Tensor, aabb: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Entry and exit distances of rays through an axis-aligned box [2, 3]."""
    inv = 1.0 / torch.where(dirs.abs() < 1e-9, torch.full_like(dirs, 1e-9), dirs)
    t0 = (aabb[0] - origins) * inv
    t1 = (aabb[1] - origins) * inv
    tmin = torch.minimum(t0, t1).amax(-1)
    tmax = torch.maximum(t0, t1).amin(-1)
    return tmin, tmax


def to_unit_cube(pts: torch.Tensor, aabb: torch.Tensor, contraction: float = 0.0) -> torch.Tensor:
    """Scene points [..., 3] → field coordinates in [0, 1]^3 (contracted when ``contraction`` > 0)."""
    center = (aabb[0] + aabb[1]) * 0.5
    half = (aabb[1] - aabb[0]) * 0.5
    u = (pts - center) / half
    if contraction > 0:
        n = u.abs().amax(-1, keepdim=True).clamp_min(1e-9)
        scale = torch.where(n <= 1.0, torch.ones_like(n), (1.0 + contraction - contraction / n) / n)
        u = u * (scale / (1.0 + contraction))
    return (u + 1.0) * 0.5


def _segment(
    lo: torch.Tensor, hi: torch.Tensor, n: int, offs: torch.Tensor, disparity: bool,
    idx: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Sample distances [R, n] and their interval lengths along [lo, hi] (uniform in t or in 1/t); with ``idx``
    [R, K] (uniform in t only) just those samples of each ray, [R, K], computed with the same floats."""
    s = torch.linspace(0.0, 1.0, n + 1, device=lo.device)
    if idx is not None:
        e0 = lo[:, None] + s[idx] * (hi - lo)[:, None]
        width = (lo[:, None] + s[idx + 1] * (hi - lo)[:, None]) - e0
        return e0 + offs * width, width
    if disparity:
        ilo, ihi = 1.0 / lo[:, None], 1.0 / hi[:, None]
        edges = 1.0 / (ilo + s[None, :] * (ihi - ilo))
    else:
        edges = lo[:, None] + s[None, :] * (hi - lo)[:, None]
    width = edges[:, 1:] - edges[:, :-1]
    return edges[:, :-1] + offs * width, width


def _field_mask(delta: torch.Tensor, x01: torch.Tensor, occupancy: Optional[OccupancyGrid]) -> torch.Tensor:
    """Samples [R, S] the field is asked for: a step of positive length, inside the unit cube, in an occupied cell."""
    mask = (delta > 0) & ((x01 >= 0) & (x01 <= 1)).all(-1)
    if occupancy is not None:
        mask = mask & occupancy.query(x01.clamp(0, 1))
    return mask


def _unit_coords(origins: torch.Tensor, dirs: torch.Tensor, t: torch.Tensor, aabb: torch.Tensor) -> List[torch.Tensor]:
    """`to_unit_cube` (bounded) of the points at distances t [R, K] along rays [R, 3], one [R, K] tensor per axis: the
    same float operations per element as ``to_unit_cube(origins[:, None] + dirs[:, None] * t[..., None], aabb)`` (so
    the same floats, tested), ~9x faster on a CPU than the [R, K, 3] layout, whose innermost dimension of 3 keeps
    torch's elementwise kernels from vectorising."""
    center = (aabb[0] + aabb[1]) * 0.5
    half = (aabb[1] - aabb[0]) * 0.5
    return [(((origins[:, c, None] + dirs[:, c, None] * t) - center[c]) / half[c] + 1.0) * 0.5 for c in range(3)]


def _field_mask_axes(delta: torch.Tensor, xs: List[torch.Tensor], occupancy: OccupancyGrid) -> torch.Tensor:
    """`_field_mask` of points given per axis (`_unit_coords`): the same cells (`OccupancyGrid.cell_index`), with
    the cell looked up by its flat index."""
    mask = delta > 0
    for x in xs:
        mask &= (x >= 0) & (x <= 1)
    r = occupancy.resolution
    if r > 256:  # (flat cell index exact in float32 below 2^24)
        x01 = torch.stack(xs, -1)
        return mask & occupancy.query(x01.clamp(0, 1))
    # floor(min(x r, r - 1)) = min(trunc(x r), r - 1) for x in [0, 1]: cell_index's cell
    f = [(x.clamp(0, 1) * r).clamp_(max=r - 1).floor_() for x in xs]
    flat = f[0].mul_(r).add_(f[1]).mul_(r).add_(f[2]).long()
    return mask & occupancy.binary.reshape(-1).take(flat)


def _ray_samples(
    origins: torch.Tensor,
    dirs: torch.Tensor,
    aabb: torch.Tensor,
    occupancy: Optional[OccupancyGrid],
    num_samples: int,
    near_plane: float,
    jitter: bool,
    contraction: float,
    num_outer_samples: int,
    world_opacity: bool,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The samples of rays [R, 3]: (t_mid [R, S], delta [R, S] (opacity length), x01 [R, S, 3], mask [R, S] (samples
    the field is asked for: in the cube, on a ray that hits, in an occupied cell), offs [R, S], dir_norm [R, 1])."""
    num_rays = origins.shape[0]
    dev = origins.device
    dir_norm = dirs.norm(dim=-1, keepdim=True)
    tmin, tmax = ray_aabb(origins, dirs, aabb)
    tmin = tmin.clamp_min(near_plane)
    hit = tmax > tmin
    unbounded = contraction > 0 and num_outer_samples > 0
    if not unbounded:
        tmax = torch.where(hit, tmax, tmin)
        segments = [(tmin, tmax, num_samples, False)]
    else:
        center = (aabb[0] + aabb[1]) * 0.5
        t_close = (((center - origins) * dirs).sum(-1) / dir_norm[:, 0] ** 2).clamp_min(near_plane)
        a = torch.where(hit, tmin, t_close)
        b = torch.where(hit, tmax, t_close)
        near = torch.full_like(a, near_plane)
        far = torch.maximum(b + 1e-3, (FAR_FACTOR * float((aabb[1] - aabb[0]).max()) * 0.5) / dir_norm[:, 0])
        n_pre = max(num_outer_samples // 4, 1)
        segments = [
            (near, torch.maximum(a, near), n_pre, False),
            (a, b, num_samples, False),
            (b.clamp_min(1e-3), far, num_outer_samples - n_pre, True),
        ]
    total = sum(n for *_, n, _ in segments)
    offs = torch.rand(num_rays, total, device=dev) if jitter else torch.full((num_rays, total), 0.5, device=dev)
    ts, widths, start = [], [], 0
    for lo, hi, n, disp in segments:
        t, w = _segment(lo, hi, n, offs[:, start : start + n], disp)
        ts.append(t)
        widths.append(w)
        start += n
    t_mid = torch.cat(ts, -1)
    width = torch.cat(widths, -1)
    delta = width * dir_norm
    pts = origins[:, None, :] + dirs[:, None, :] * t_mid[..., None]
    x01 = to_unit_cube(pts, aabb, contraction if unbounded else 0.0)
    if unbounded and not world_opacity:
        # Opacity per step measured in the contracted space, in box units: identical inside the box, and outside
        # it a step covers as much field as a box step of the same contracted length. With world lengths the
        # renderer's long steps behind the box (up to FAR_FACTOR box sizes) make a fresh field opaque there, so
        # every training view is first explained by a far shell — a screen each view paints alone.
        t_lo = t_mid - offs * width
        lo01 = to_unit_cube(origins[:, None, :] + dirs[:, None, :] * t_lo[..., None], aabb, contraction)
        hi01 = to_unit_cube(origins[:, None, :] + dirs[:, None, :] * (t_lo + width)[..., None], aabb, contraction)
        box_units = float((aabb[1] - aabb[0]).max()) * (1.0 + contraction)  # world length of one field unit in the box
        delta = torch.where(delta > 0, (hi01 - lo01).norm(dim=-1) * box_units, delta)
    mask = _field_mask(delta, x01, occupancy)
    if not unbounded:
        mask = mask & hit[:, None]
    return t_mid, delta, x01, mask, offs, dir_norm


def _composite(
    density: torch.Tensor, rgb: torch.Tensor, delta: torch.Tensor, t_mid: torch.Tensor, background: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(weights [R, S], rgb [R, 3], accumulation [R, 1], depth [R, 1]) of densities and colours along the rays."""
    alpha = 1.0 - torch.exp(-density * delta)
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1.0 - alpha + 1e-10], -1), -1)[:, :-1]
    weights = alpha * trans
    acc = weights.sum(-1, keepdim=True)
    color = (weights[..., None] * rgb).sum(-2) + (1.0 - acc) * background.to(rgb.dtype)
    depth = (weights * t_mid).sum(-1, keepdim=True) / acc.clamp_min(1e-6)
    return weights, color, acc, depth


def render_rays(
    field_fn: FieldFn,
    origins: torch.Tensor,
    dirs: torch.Tensor,
    aabb: torch.Tensor,
    occupancy: Optional[OccupancyGrid],
    num_samples: int,
    near_plane: float,
    background: torch.Tensor,
    jitter: bool,
    contraction: float = 0.0,
    num_outer_samples: int = 0,
    distortion: bool = False,
    world_opacity: bool = False,
) -> Dict[str, torch.Tensor]:
    """Volume-render rays [R, 3]; returns rgb [R, 3], accumulation [R, 1], depth [R, 1], num_samples [R, 1] (samples
    sent to the field), and with ``distortion`` the per-ray distortion loss [R, 1] (see `distortion_loss`).

    Contracted scenes measure a step's opacity outside the box in contracted lengths unless ``world_opacity``: then
    in world lengths, so the long last steps make every ray's far end opaque at a low density — a wall that encloses
    the capture (Panoptic's dome) comes for free, but open scenes paint a screen per view (docs/rate_aware.md)."""
    t_mid, delta, x01, mask, offs, dir_norm = _ray_samples(
        origins, dirs, aabb, occupancy, num_samples, near_plane, jitter, contraction, num_outer_samples, world_opacity
    )
    num_rays, total = mask.shape
    dev = origins.device
    density = torch.zeros(num_rays, total, device=dev)
    rgb = torch.zeros(num_rays, total, 3, device=dev)
    if mask.any():
        unit_dirs = (dirs / dir_norm)[:, None, :].expand(-1, total, -1)
        d, c = field_fn(x01[mask], unit_dirs[mask])
        density = density.masked_scatter(mask, d.to(density.dtype))
        rgb = rgb.masked_scatter(mask[..., None].expand_as(rgb), c.to(rgb.dtype))
    weights, color, acc, depth = _composite(density, rgb, delta, t_mid, background)
    out = {"rgb": color, "accumulation": acc, "depth": depth, "num_samples": mask.sum(-1, keepdim=True).float()}
    if distortion:
        # s-space: sample index over the whole ray, so every sample interval has width 1/total (uniform in t in
        # the box and in front of it, uniform in contracted space behind it).
        s_mid = (torch.arange(total, device=dev, dtype=weights.dtype)[None, :] + offs) / total
        out["distortion"] = distortion_loss(weights, s_mid, 1.0 / total)
    return out


class SplitField(Protocol):
    """A field the playback renderer can ask in two passes: density first (for every sample that may be seen), colour
    afterwards only for the samples that reach the image (`render_rays_playback`)."""

    def density_state(self, x01: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(density [N], per-sample state [N, ...] that `rgb_of` needs again)."""
        ...

    def rgb_of(self, state: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
        """Colour [N, 3] of samples from their `density_state` state and unit view directions [N, 3]."""
        ...


PLAYBACK_TERMINATION = 1e-4
"""Playback renderer: a ray stops once its transmittance falls below this (early ray termination)."""
PLAYBACK_MIN_WEIGHT = 1e-5
"""Playback renderer: samples whose compositing weight is below this get no colour evaluation."""
PLAYBACK_SLAB = 16
"""Playback renderer: samples per ray evaluated per pass (front to back) between termination checks."""


def render_rays_playback(
    field: SplitField,
    origins: torch.Tensor,
    dirs: torch.Tensor,
    aabb: torch.Tensor,
    occupancy: Optional[OccupancyGrid],
    num_samples: int,
    near_plane: float,
    background: torch.Tensor,
    contraction: float = 0.0,
    num_outer_samples: int = 0,
    world_opacity: bool = False,
    termination: float = PLAYBACK_TERMINATION,
    min_weight: float = PLAYBACK_MIN_WEIGHT,
    slab: int = PLAYBACK_SLAB,
) -> Dict[str, torch.Tensor]:
    """`render_rays` for showing a decoded frame (no jitter, no gradients), with less field work for the same picture.

    The same samples (occupancy-pruned, the same positions and step lengths) and the same compositing, but
    (1) densities are evaluated front to back ``slab`` samples per ray at a time and a ray stops being evaluated once
    its transmittance is below ``termination`` (early ray termination); (2) colours are evaluated only for samples
    whose weight is at least ``min_weight``. Each pixel therefore differs from `render_rays` by at most ``termination``
    + S · ``min_weight`` (S samples per ray) in every channel, in practice far less (tests/components/test_rendering.py
    measures it on decoded frames). Bounded scenes with an occupancy grid also skip the rays and the stretches of rays
    that pass no occupied cell without computing their samples (`_march_bounded`)."""
    num_rays, dev = origins.shape[0], origins.device
    out = {
        "rgb": background.to(origins.dtype).expand(num_rays, 3).clone(),
        "accumulation": origins.new_zeros(num_rays, 1),
        "depth": origins.new_zeros(num_rays, 1),
        "num_samples": origins.new_zeros(num_rays, 1),
    }
    if (contraction <= 0 or num_outer_samples <= 0) and occupancy is not None:
        _march_bounded(field, origins, dirs, aabb, occupancy, num_samples, near_plane, background, termination,
                       min_weight, slab, out)
        return out
    t_mid, delta, x01, mask, _, dir_norm = _ray_samples(
        origins, dirs, aabb, occupancy, num_samples, near_plane, False, contraction, num_outer_samples, world_opacity
    )
    hit = mask.any(-1)  # rays with a sample in an occupied cell; the others are background
    idx = torch.nonzero(hit).flatten()
    if idx.numel() == 0:
        return out
    idx_all: Any = idx
    if idx.numel() < 0.8 * hit.numel():  # compact (the copies pay when many rays see nothing)
        t_mid, delta, x01, mask, dir_norm, dirs = t_mid[idx], delta[idx], x01[idx], mask[idx], dir_norm[idx], dirs[idx]
    else:
        idx_all = slice(None)
    num_rays, total = mask.shape
    density = torch.zeros(num_rays, total, device=dev)
    row = torch.full((num_rays, total), -1, dtype=torch.long, device=dev)  # index of a sample's state
    states, count = [], 0
    log_trans = torch.zeros(num_rays, device=dev)
    log_stop = math.log(termination) if termination > 0 else -math.inf
    for a in range(0, total, slab):
        b = min(a + slab, total)
        m = mask[:, a:b] & (log_trans > log_stop)[:, None]
        n = int(m.sum())
        if n:
            d, st = field.density_state(x01[:, a:b][m])
            density[:, a:b] = density[:, a:b].masked_scatter(m, d.to(density.dtype))
            r = row[:, a:b]
            r[m] = torch.arange(count, count + n, device=dev)
            states.append(st)
            count += n
        log_trans = log_trans - (density[:, a:b] * delta[:, a:b]).sum(-1)
    rgb = torch.zeros(num_rays, total, 3, device=dev)
    alpha = 1.0 - torch.exp(-density * delta)
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1.0 - alpha + 1e-10], -1), -1)[:, :-1]
    shade = (row >= 0) & (alpha * trans >= min_weight)
    if bool(shade.any()):
        unit_dirs = (dirs / dir_norm)[:, None, :].expand(-1, total, -1)
        state = torch.cat(states)[row[shade]]
        rgb[shade] = field.rgb_of(state, unit_dirs[shade]).to(rgb.dtype)
    _, color, acc, depth = _composite(density, rgb, delta, t_mid, background)
    for key, value in (("rgb", color), ("accumulation", acc), ("depth", depth),
                       ("num_samples", (row >= 0).sum(-1, keepdim=True).float())):
        out[key][idx_all] = value.to(out[key].dtype)
    return out


PLAYBACK_PIECE_RAYS = 2048
"""Playback renderer on a CPU: a call's rays are split over the worker threads in pieces of at least this many."""

_playback_workers = 0
_pool: Optional[ThreadPoolExecutor] = None
_pool_size = 0
_pool_lock = threading.Lock()
_worker_flag = threading.local()


def set_playback_workers(workers: int) -> None:
    """Worker threads of the CPU playback renderer: 0 (default) one per usable core, 1 the caller's thread only."""
    global _playback_workers
    if workers < 0:
        raise ValueError(f"playback workers must be >= 0, got {workers}")
    _playback_workers = workers


def playback_workers() -> int:
    """How many threads a CPU playback render runs on (`set_playback_workers`)."""
    return _playback_workers or usable_cores()


def _init_worker() -> None:
    torch.set_num_threads(1)  # (per thread with OpenMP: the caller's setting is left as it is)
    _worker_flag.active = True


def _executor(workers: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size != workers:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(workers, thread_name_prefix="vvc-playback", initializer=_init_worker)
            _pool_size = workers
        return _pool


def _playback_piece(fn: Callable[..., Dict[str, torch.Tensor]], *args: Any, **kwargs: Any) -> Dict[str, torch.Tensor]:
    with torch.no_grad():  # (grad mode is per thread)
        return fn(*args, **kwargs)


def render_pieces(
    fn: Callable[..., Dict[str, torch.Tensor]], field: Any, origins: torch.Tensor, dirs: torch.Tensor, *args: Any,
    **kwargs: Any,
) -> Dict[str, torch.Tensor]:
    """``fn(field, origins, dirs, *args, **kwargs)`` (a per-ray renderer without gradients) with the rays split into
    pieces rendered at once on `playback_workers` threads of one torch thread each (CPU only).

    Each ray's result does not depend on the others in its call (the marches are per ray), so the picture is the
    one-call picture up to the float rounding of a matrix product over fewer rows (≤ 1e-6 tested, 3e-8 seen). On 2
    cores a 256² view of the sample scene rendered 1.2-1.7× faster than one call on one thread, about as fast as one
    call on two torch threads on an idle machine (docs/evaluation.md); unlike torch's threads, the workers do not wait
    for each other at every operation, which cost 2.4-3.8× with other jobs on the cores."""
    n = origins.shape[0]
    workers = playback_workers()
    pieces = min(2 * workers, n // PLAYBACK_PIECE_RAYS)
    if workers < 2 or pieces < 2 or origins.device.type != "cpu" or getattr(_worker_flag, "active", False):
        return _playback_piece(fn, field, origins, dirs, *args, **kwargs)
    step = -(-n // pieces)
    pool = _executor(workers)
    futures: List[Future] = []
    try:
        for a in range(0, n, step):
            futures.append(pool.submit(_playback_piece, fn, field, origins[a : a + step], dirs[a : a + step], *args,
                                       **kwargs))
        parts = [f.result() for f in futures]
    except BaseException:  # (e.g. the viewer interrupting a stale render): drop the pieces not started
        for f in futures:
            f.cancel()
        raise
    return {key: torch.cat([p[key] for p in parts]) for key in parts[0]}


PLAYBACK_COARSE = 4
"""Playback renderer, bounded scenes: cells of the occupancy grid merged per side into one coarse cell for the
ray-culling pass."""


def _coarse_span(
    origins: torch.Tensor, dirs: torch.Tensor, aabb: torch.Tensor, occupancy: OccupancyGrid, tmin: torch.Tensor,
    tmax: torch.Tensor,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(hit [R], t_first [R], t_last [R]): a conservative bound of where along each ray a sample can fall in an
    occupied cell of ``occupancy``: every such sample of `_ray_samples` (bounded scenes) has t in [t_first, t_last],
    and a ray with ``hit`` False has none.

    A coarse grid (PLAYBACK_COARSE³ cells per coarse cell, any occupied → occupied), grown by one coarse cell, is
    looked up at points along the ray no farther apart (in the unit cube) than one coarse cell h: a sample in an
    occupied fine cell lies within h/2 of one of those points, which is then in the same or a neighbouring coarse
    cell — occupied in the grown grid. The span is widened by a whole step on each side for float rounding."""
    binary = occupancy.binary
    res = binary.shape[0]
    f = max(1, min(PLAYBACK_COARSE, res))
    coarse = torch.nn.functional.max_pool3d(binary[None, None].float(), f, stride=f, ceil_mode=True)
    coarse = torch.nn.functional.max_pool3d(coarse, 3, stride=1, padding=1)[0, 0] > 0
    cres = coarse.shape[0]
    h = f / res  # coarse cell side in the unit cube
    steps = int(math.ceil(math.sqrt(3.0) / h)) + 1  # the longest chord of the cube, h apart at most
    u = torch.linspace(0.0, 1.0, steps, device=origins.device)
    t = tmin[:, None] + u[None, :] * (tmax - tmin)[:, None]  # [R, steps]
    cell = [(x * (res / f)).long().clamp_(0, cres - 1) for x in _unit_coords(origins, dirs, t, aabb)]
    occ = coarse.reshape(-1).take((cell[0] * cres + cell[1]) * cres + cell[2]) & (tmax > tmin)[:, None]
    hit = occ.any(-1)
    step_t = (tmax - tmin) / (steps - 1)
    first = torch.where(occ, u[None, :].expand_as(occ), 2.0).amin(-1)
    last = torch.where(occ, u[None, :].expand_as(occ), -1.0).amax(-1)
    t_first = tmin + first * (tmax - tmin) - 2 * step_t
    t_last = tmin + last * (tmax - tmin) + 2 * step_t
    return hit, t_first, t_last


def _march_bounded(
    field: SplitField, origins: torch.Tensor, dirs: torch.Tensor, aabb: torch.Tensor, occupancy: OccupancyGrid,
    num_samples: int, near_plane: float, background: torch.Tensor, termination: float, min_weight: float, slab: int,
    out: Dict[str, torch.Tensor],
) -> None:
    """`render_rays_playback` of a bounded scene, into ``out``: the rays a coarse pass finds near occupied cells
    (`_coarse_span`) are marched front to back from their first possibly occupied sample, ``slab`` samples per ray
    at a time; only live rays (transmittance above ``termination``, samples left in their span) are carried to the
    next slab, and colours are computed per slab for the samples of weight ≥ ``min_weight``. Each sample's position,
    step length and occupancy are `_ray_samples`' (`_segment`; `_field_mask` as `_field_mask_axes`, positions per
    axis as `_unit_coords`: the same floats, faster on a CPU); the samples skipped are unoccupied, so they add nothing
    to the picture."""
    dev = origins.device
    tmin, tmax = ray_aabb(origins, dirs, aabb)
    tmin = tmin.clamp_min(near_plane)
    tmax = torch.where(tmax > tmin, tmax, tmin)
    hit, t_first, t_last = _coarse_span(origins, dirs, aabb, occupancy, tmin, tmax)
    rays = torch.nonzero(hit).flatten()
    if rays.numel() == 0:
        return
    lo, hi = tmin[rays], tmax[rays]
    o, d = origins[rays], dirs[rays]
    dir_norm = d.norm(dim=-1, keepdim=True)
    unit = d / dir_norm
    span = (hi - lo).clamp_min(1e-20)
    start = ((t_first - tmin)[rays] / span * num_samples).floor().clamp(0, num_samples).long()
    stop = ((t_last - tmin)[rays] / span * num_samples).ceil().clamp(0, num_samples).long()  # exclusive
    n = rays.numel()
    color = o.new_zeros(n, 3)
    acc = o.new_zeros(n)
    depth = o.new_zeros(n)
    count = o.new_zeros(n)
    trans = o.new_ones(n)
    live = torch.arange(n, device=dev)
    offs = torch.arange(slab, device=dev)
    while live.numel():
        i = start[live, None] + offs[None, :]  # [A, slab] sample indices
        t_mid, width = _segment(lo[live], hi[live], num_samples, 0.5, False, idx=i.clamp_max(num_samples - 1))
        delta = width * dir_norm[live]
        xs = _unit_coords(o[live], d[live], t_mid, aabb)
        m = (i < stop[live, None]) & _field_mask_axes(delta, xs, occupancy)
        density = torch.zeros_like(t_mid)
        if bool(m.any()):
            sel = m.reshape(-1).nonzero().squeeze(1)
            dens, state = field.density_state(torch.stack([x.reshape(-1).index_select(0, sel) for x in xs], -1))
            density = density.masked_scatter(m, dens.to(density.dtype))
            alpha = 1.0 - torch.exp(-density * delta)
            inner = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1.0 - alpha + 1e-10], -1), -1)
            w = alpha * trans[live, None] * inner[:, :-1]
            shade = m & (w >= min_weight)
            rgb = torch.zeros(*t_mid.shape, 3, device=dev)
            if bool(shade.any()):
                rgb[shade] = field.rgb_of(state[shade[m]], unit[live, None, :].expand(-1, slab, -1)[shade]).to(
                    rgb.dtype)
            color[live] += (w[..., None] * rgb).sum(-2)
            acc[live] += w.sum(-1)
            depth[live] += (w * t_mid).sum(-1)
            count[live] += m.sum(-1).to(count.dtype)
            trans[live] = trans[live] * inner[:, -1]
        start[live] += slab
        alive = start[live] < stop[live]
        if termination > 0:
            alive &= trans[live] > termination
        live = live[alive]
    out["rgb"][rays] = (color + (1.0 - acc[:, None]) * background.to(color.dtype)).to(out["rgb"].dtype)
    out["accumulation"][rays] = acc[:, None].to(out["accumulation"].dtype)
    out["depth"][rays] = (depth / acc.clamp_min(1e-6))[:, None].to(out["depth"].dtype)
    out["num_samples"][rays] = count[:, None].to(out["num_samples"].dtype)


class ForwardSplit:
    """`SplitField` of a plain field (``forward(x01, dirs) -> (density, rgb)``, e.g. a view-independent one): colour
    is computed with the density (view direction zero), so only early ray termination saves work."""

    def __init__(self, field: torch.nn.Module) -> None:
        self.field = field

    def density_state(self, x01: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.field.density(x01), x01

    def rgb_of(self, state: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
        return self.field(state, dirs)[1]


def distortion_loss(weights: torch.Tensor, s_mid: torch.Tensor, width: float) -> torch.Tensor:
    """mip-NeRF 360's distortion loss per ray [R, 1] for weights [R, S] at normalised positions s_mid [R, S] with
    interval width ``width``: Σ_ij w_i w_j |s_i − s_j| + 1/3 Σ_i w_i² width. It is small when a ray's weight sits
    in one compact interval and grows with weight spread along the ray (floaters in front of a surface, fog)."""
    w_before = torch.cumsum(weights, -1) - weights
    ws_before = torch.cumsum(weights * s_mid, -1) - weights * s_mid
    between = 2.0 * (weights * (s_mid * w_before - ws_before)).sum(-1, keepdim=True)
    within = (weights**2).sum(-1, keepdim=True) * (width / 3.0)
    return between + within


@functools.lru_cache(maxsize=32)
def _constants(aabb: Tuple, background: Tuple, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    """(aabb [2, 3], background [3]) float32 tensors on `device` for `RenderSettings` (read-only: never modify)."""
    return (torch.tensor(aabb, dtype=torch.float32, device=device),
            torch.tensor(background, dtype=torch.float32, device=device))


@dataclass(frozen=True)
class RenderSettings:
    """How a 3D method's field is rendered: what its training model uses and its decoder must use alike.

    Recorded in the METHOD_CONFIG's ``render`` object (`to_json`; each method's codec validates the object and may
    add its own keys next to these), read back by the decoder (`from_json`), which renders with `render`.
    """

    aabb: Tuple[Tuple[float, float, float], Tuple[float, float, float]]
    near_plane: float
    background: Tuple[float, float, float]
    num_samples: int
    occupancy_resolution: int
    """Cells per side of the occupancy grid (all of space when contracted)."""
    contraction: float = 0.0
    num_outer_samples: int = 0
    world_opacity: bool = False
    """Opacity outside the box per world length (`--pipeline.model.outer-opacity world`); written only when true,
    so streams from before the option read back as contracted-length opacity."""

    def to_json(self) -> Dict[str, object]:
        out: Dict[str, object] = {
            "aabb": [list(self.aabb[0]), list(self.aabb[1])],
            "near_plane": self.near_plane,
            "background": list(self.background),
            "num_samples": self.num_samples,
            "occupancy_resolution": self.occupancy_resolution,
            "contraction": self.contraction,
            "num_outer_samples": self.num_outer_samples,
        }
        if self.world_opacity:
            out["world_opacity"] = True
        return out

    JSON_RULES = {
        "near_plane": (float, 0.0, 1e6),
        "num_samples": (int, 1, 4096),
        "occupancy_resolution": (int, 1, 512),
        "contraction": (float, 0.0, 100.0),
        "num_outer_samples": (int, 0, 4096),
        "world_opacity": (bool,),
    }
    """Type and range of each scalar setting in the ``render`` object (``aabb`` and ``background`` are checked apart);
    ``contraction``, ``num_outer_samples`` and ``world_opacity`` may be absent (files from before them)."""
    JSON_OPTIONAL = ("contraction", "num_outer_samples", "world_opacity")

    @classmethod
    def validate_json(cls, render: object, extra: Optional[Mapping[str, Tuple]] = None) -> Dict[str, object]:
        """A METHOD_CONFIG's ``render`` object with every value's type and range checked, as a new dict.

        ``extra``: the method's own optional keys, name → rule (`check_value`). Unknown keys are refused (a setting the
        decoder silently dropped would render a different picture). Raises TypeError / ValueError / KeyError naming
        the field; a codec's METHOD_CONFIG parser turns them into ``CorruptChunkError``."""
        from nerfstudio_vvc.codec.method_config import check_value  # the codec package imports constriction: not at
        # module level, which the method entry points load (tests/training/test_training_run.py: imports stay light)

        if not isinstance(render, dict):
            raise TypeError("render must be an object")
        extra = dict(extra or {})
        rules = {**cls.JSON_RULES, **extra}
        unknown = sorted(set(render) - set(rules) - {"aabb", "background"})
        if unknown:
            raise ValueError(f"unknown render field(s) {unknown[:4]} (a new field needs a rule)")
        out: Dict[str, object] = {}
        box = render.get("aabb")
        if not isinstance(box, list) or len(box) != 2 or any(not isinstance(c, list) or len(c) != 3 for c in box):
            raise TypeError("render.aabb must be [[x0, y0, z0], [x1, y1, z1]]")
        out["aabb"] = [[check_value(v, "render.aabb", (float, -1e6, 1e6)) for v in c] for c in box]
        if not all(a < b for a, b in zip(*out["aabb"])):  # type: ignore[call-overload]
            raise ValueError(f"render.aabb is empty: {box}")
        bg = render.get("background")
        if not isinstance(bg, list) or len(bg) != 3:
            raise TypeError(f"render.background must be a list of 3 values, got {str(bg)[:60]}")
        out["background"] = [check_value(v, "render.background", (float, 0.0, 1.0)) for v in bg]
        for key, rule in rules.items():
            if key in render:
                out[key] = check_value(render[key], f"render.{key}", rule)
            elif key not in cls.JSON_OPTIONAL and key not in extra:
                raise KeyError(f"render.{key} missing")
        return out

    @classmethod
    def from_json(cls, render: Mapping[str, object]) -> "RenderSettings":
        """From a validated ``render`` object (keys other than these are the method's own and are ignored)."""
        box = render["aabb"]
        return cls(
            aabb=(tuple(float(v) for v in box[0]), tuple(float(v) for v in box[1])),  # type: ignore[index]
            near_plane=float(render["near_plane"]),  # type: ignore[arg-type]
            background=tuple(float(v) for v in render["background"]),  # type: ignore[union-attr]
            num_samples=int(render["num_samples"]),  # type: ignore[arg-type]
            occupancy_resolution=int(render["occupancy_resolution"]),  # type: ignore[arg-type]
            contraction=float(render.get("contraction", 0.0)),  # type: ignore[arg-type]
            num_outer_samples=int(render.get("num_outer_samples", 0)),  # type: ignore[arg-type]
            world_opacity=bool(render.get("world_opacity", False)),
        )

    def render(
        self,
        field: torch.nn.Module,
        origins: torch.Tensor,
        dirs: torch.Tensor,
        occupancy: Optional[OccupancyGrid],
        jitter: bool = False,
        distortion: bool = False,
    ) -> Dict[str, torch.Tensor]:
        """Render rays [R, 3] on the rays' device: rgb, accumulation, depth, num_samples (`render_rays`).

        The one call both the training models (``jitter`` and, for contracted scenes, ``distortion`` while training)
        and the decoders (neither) render with, so a decoder cannot drift from what its method trained."""
        return render_rays(*self._ray_args(field, origins, dirs, occupancy), jitter=jitter, distortion=distortion,
                           **self._scene_kwargs())

    def _ray_args(self, field, origins: torch.Tensor, dirs: torch.Tensor, occupancy: Optional[OccupancyGrid]):
        """Positional arguments of `render_rays` / `render_rays_playback`, as tensors on the rays' device (made once
        per device: no host-to-device copy per training step)."""
        aabb, background = _constants(self.aabb, self.background, origins.device)
        return field, origins.float(), dirs.float(), aabb, occupancy, self.num_samples, self.near_plane, background

    def _scene_kwargs(self) -> Dict[str, Any]:
        return {
            "contraction": self.contraction,
            "num_outer_samples": self.num_outer_samples,
            "world_opacity": self.world_opacity,
        }

    def render_playback(
        self, field: SplitField, origins: torch.Tensor, dirs: torch.Tensor, occupancy: Optional[OccupancyGrid]
    ) -> Dict[str, torch.Tensor]:
        """`render` for showing decoded frames (`render_rays_playback`): the same samples and settings, early ray
        termination and colour only where it shows; on a CPU the rays are split over worker threads (`render_pieces`).
        What the viewers render with; metrics use `render`."""
        return render_pieces(render_rays_playback, *self._ray_args(field, origins, dirs, occupancy),
                             **self._scene_kwargs())

