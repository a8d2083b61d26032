"""Uniform ray marching through the scene box with occupancy skipping, in plain torch.

Only samples in occupied cells are sent to the field (packed), which is what makes grid models
trainable on a CPU. The same function renders during training, in the viewer and in the decoder.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

import torch

from nerfstudio_vvc.components.occupancy import OccupancyGrid

FieldFn = Callable[[torch.Tensor], Tuple[torch.Tensor, torch.Tensor]]
"""Maps points in [0,1]^3 [N, 3] to (density [N], rgb [N, 3])."""


def ray_aabb(origins: torch.Tensor, dirs: torch.Tensor, aabb: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Entry and exit distances of rays through an axis-aligned box [2, 3]."""
    inv = 1.0 / torch.where(dirs.abs() < 1e-9, torch.full_like(dirs, 1e-9), dirs)
    t0 = (aabb[0] - origins) * inv
    t1 = (aabb[1] - origins) * inv
    tmin = torch.minimum(t0, t1).amax(-1)
    tmax = torch.maximum(t0, t1).amin(-1)
    return tmin, tmax


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
) -> Dict[str, torch.Tensor]:
    """Volume-render rays [R, 3]; returns rgb [R, 3], accumulation [R, 1], depth [R, 1], num_samples [R, 1] (samples sent to the field)."""
    num_rays = origins.shape[0]
    tmin, tmax = ray_aabb(origins, dirs, aabb)
    tmin = tmin.clamp_min(near_plane)
    hit = tmax > tmin
    tmax = torch.where(hit, tmax, tmin)
    bins = torch.linspace(0.0, 1.0, num_samples + 1, device=origins.device)
    offs = torch.rand(num_rays, num_samples, device=origins.device) if jitter else torch.full((num_rays, num_samples), 0.5, device=origins.device)
    span = (tmax - tmin)[:, None]
    t_lo = tmin[:, None] + bins[None, :-1] * span
    t_mid = t_lo + offs * span / num_samples
    delta = (span / num_samples).expand(-1, num_samples) * dirs.norm(dim=-1, keepdim=True)
    pts = origins[:, None, :] + dirs[:, None, :] * t_mid[..., None]
    x01 = (pts - aabb[0]) / (aabb[1] - aabb[0])
    mask = hit[:, None] & ((x01 >= 0) & (x01 <= 1)).all(-1)
    if occupancy is not None:
        mask = mask & occupancy.query(x01.clamp(0, 1))
    density = torch.zeros(num_rays, num_samples, device=origins.device)
    rgb = torch.zeros(num_rays, num_samples, 3, device=origins.device)
    if mask.any():
        d, c = field_fn(x01[mask])
        density = density.masked_scatter(mask, d.to(density.dtype))
        rgb = rgb.masked_scatter(mask[..., None].expand_as(rgb), c.to(rgb.dtype))
    alpha = 1.0 - torch.exp(-density * delta)
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1.0 - alpha + 1e-10], -1), -1)[:, :-1]
    weights = alpha * trans
    acc = weights.sum(-1, keepdim=True)
    color = (weights[..., None] * rgb).sum(-2) + (1.0 - acc) * background.to(rgb.dtype)
    depth = (weights * t_mid).sum(-1, keepdim=True) / acc.clamp_min(1e-6)
    return {"rgb": color, "accumulation": acc, "depth": depth, "num_samples": mask.sum(-1, keepdim=True).float()}
