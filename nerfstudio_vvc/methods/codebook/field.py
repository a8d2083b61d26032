"""HexPlane field of vvc-codebook (Guo et al., NeurIPS 2023: dynamic-codebook K-Planes/HexPlane).

Six planes per group, read by bilinear interpolation at (x, y, z, t) in [0, 1]^4:

    spatial  xy  xz  yz        temporal  xt  yt  zt
    f = f_xy ⊙ f_zt + f_xz ⊙ f_yt + f_yz ⊙ f_xt          (HexPlane's pairing)

Two groups with their own planes: density (``density_dim`` channels, one scale) and appearance
(``appearance_dim`` channels per scale, one six-plane set per entry of ``appearance_resolutions``,
concatenated across scales, K-Planes' multi-scale). A small head maps the density features to
density and (appearance features, SH(view direction)) to colour.

Planes are listed in one fixed order (``HexSpec.plane_shapes``): density planes first, then the
appearance scales; within a set the order is ``PLANES``. Plane ``[C, H, W]``: its first axis
(``PLANES[i][0]``) runs along W, its second along H. No nerfstudio import: the decoder uses it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from nerfstudio_vvc.components.heads import DENSITY_SHIFT, SH_DIM, sh_basis

PLANES: Tuple[Tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
"""Axes (0 x, 1 y, 2 z, 3 t) of the six planes: xy, xz, yz, xt, yt, zt."""
PLANE_NAMES = ("xy", "xz", "yz", "xt", "yt", "zt")
PAIRS: Tuple[Tuple[int, int], ...] = ((0, 5), (1, 4), (2, 3))
"""HexPlane's products: xy ⊙ zt, xz ⊙ yt, yz ⊙ xt."""
GROUPS = ("density", "appearance")


@dataclass(frozen=True)
class HexSpec:
    """Architecture of the six-plane field; written into the bitstream's METHOD_CONFIG chunk."""

    density_resolution: int = 64
    """Spatial cells per side of the density planes."""
    appearance_resolutions: Tuple[int, ...] = (32, 64)
    """Spatial cells per side of each appearance scale (K-Planes multi-scale)."""
    time_resolution: int = 16
    """Cells along t of the temporal planes (xt, yt, zt)."""
    density_dim: int = 16
    """Channels of the density planes."""
    appearance_dim: int = 48
    """Channels of the appearance planes (per scale)."""
    hidden_dim: int = 64
    """Hidden width of the density and colour MLPs."""

    def set_resolutions(self) -> List[Tuple[str, int]]:
        """(group, spatial resolution) of every six-plane set, in plane order."""
        return [("density", self.density_resolution)] + [("appearance", r) for r in self.appearance_resolutions]

    def group_dim(self, group: str) -> int:
        return self.density_dim if group == "density" else self.appearance_dim

    def plane_shapes(self) -> List[Tuple[str, Tuple[int, int, int]]]:
        """(group, [C, H, W]) of every plane, in the fixed plane order."""
        out = []
        for group, r in self.set_resolutions():
            for a, b in PLANES:
                size = lambda ax: self.time_resolution if ax == 3 else r  # noqa: E731
                out.append((group, (self.group_dim(group), size(b), size(a))))
        return out

    def plane_groups(self) -> List[str]:
        return [g for g, _ in self.plane_shapes()]

    def num_codes(self, group: str) -> int:
        """Plane pixels (codes) of a group: the length of its flattened code list."""
        return sum(h * w for g, (_, h, w) in self.plane_shapes() if g == group)

    @property
    def appearance_features(self) -> int:
        return self.appearance_dim * len(self.appearance_resolutions)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "HexSpec":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def init_planes(spec: HexSpec, generator: Optional[torch.Generator] = None) -> List[torch.Tensor]:
    """Spatial planes uniform in [0.1, 0.5] and temporal planes 1 (K-Planes): the field starts static."""
    planes = []
    for i, (_, shape) in enumerate(spec.plane_shapes()):
        if PLANES[i % 6][1] == 3:
            planes.append(torch.ones(shape))
        else:
            planes.append(torch.rand(shape, generator=generator) * 0.4 + 0.1)
    return planes


def plane_coords(x01: torch.Tensor, t: float, plane: int) -> torch.Tensor:
    """Coordinates [N, 2] in [0, 1]^2 of points x01 [N, 3] at time t on plane ``plane`` (0..5)."""
    a, b = PLANES[plane % 6]
    col = lambda ax: torch.full_like(x01[:, 0], float(t)) if ax == 3 else x01[:, ax]  # noqa: E731
    return torch.stack([col(a), col(b)], -1)


def sample_plane(plane: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup of a [C, H, W] plane at uv [N, 2] in [0, 1]^2 (u → W, v → H). Returns [N, C]."""
    grid = (uv * 2.0 - 1.0).view(1, -1, 1, 2)
    out = F.grid_sample(plane[None], grid, mode="bilinear", align_corners=True, padding_mode="border")
    return out.view(plane.shape[0], -1).t()


def hex_features(
    spec: HexSpec, planes: Sequence[torch.Tensor], x01: torch.Tensor, t: float
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(density features [N, density_dim], appearance features [N, appearance_dim · scales]) at (x01, t)."""
    sets = []
    for s in range(len(spec.set_resolutions())):
        f = [sample_plane(planes[6 * s + p], plane_coords(x01, t, p)) for p in range(6)]
        sets.append(sum(f[a] * f[b] for a, b in PAIRS))
    return sets[0], torch.cat(sets[1:], -1)


class HexHead(nn.Module):
    """density features → density;  (appearance features, SH(view direction)) → rgb."""

    def __init__(self, spec: HexSpec) -> None:
        super().__init__()
        h = spec.hidden_dim
        self.sigma = nn.Sequential(nn.Linear(spec.density_dim, h), nn.ReLU(), nn.Linear(h, 1))
        self.color = nn.Sequential(nn.Linear(spec.appearance_features + SH_DIM, h), nn.ReLU(), nn.Linear(h, 3))

    def density(self, fd: torch.Tensor) -> torch.Tensor:
        return F.softplus(self.sigma(fd)[:, 0] - DENSITY_SHIFT) * 10.0

    def rgb(self, fa: torch.Tensor, dirs: Optional[torch.Tensor]) -> torch.Tensor:
        if dirs is None:
            dirs = torch.zeros(fa.shape[0], 3, device=fa.device, dtype=fa.dtype)
        return torch.sigmoid(self.color(torch.cat([fa, sh_basis(dirs)], -1)))


class HexField(nn.Module):
    """Planes + head at one time ``t``: ``forward(x01, dirs) -> (density, rgb)`` as the renderer expects.

    ``planes`` is a callable or a list; the training field passes its float planes or the planes
    gathered from its codebooks, the decoder the planes it rebuilt. ``time = None`` (training's
    occupancy updates only) reads every point at a random time: the density of the union over time.
    """

    def __init__(
        self, spec: HexSpec, head: HexHead, planes: Sequence[torch.Tensor], time: Optional[float] = 0.0
    ) -> None:
        super().__init__()
        self.spec = spec
        self.head = head
        self.planes = list(planes)
        self.time = time

    def _features(self, x01: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        if self.time is not None:
            return hex_features(self.spec, self.planes, x01, self.time)
        t = torch.rand(x01.shape[0], device=x01.device)
        return _features_per_point(self.spec, self.planes, x01, t)

    def density(self, x01: torch.Tensor) -> torch.Tensor:
        """Density only: reads the six density planes (the occupancy grid's and the importance's query)."""
        if self.time is None:
            x4 = torch.cat([x01, torch.rand(x01.shape[0], 1, device=x01.device)], -1)
            uv = [x4[:, list(PLANES[p])] for p in range(6)]
        else:
            uv = [plane_coords(x01, self.time, p) for p in range(6)]
        fd = sum(sample_plane(self.planes[p], uv[p]) * sample_plane(self.planes[q], uv[q]) for p, q in PAIRS)
        return self.head.density(fd)  # type: ignore[arg-type]

    def forward(self, x01: torch.Tensor, dirs: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        fd, fa = self._features(x01)
        return self.head.density(fd), self.head.rgb(fa, dirs)


def _features_per_point(spec: HexSpec, planes: Sequence[torch.Tensor], x01: torch.Tensor, t: torch.Tensor):
    """hex_features with one time per point (occupancy over all times)."""
    x4 = torch.cat([x01, t[:, None]], -1)
    sets = []
    for s in range(len(spec.set_resolutions())):
        f = [sample_plane(planes[6 * s + p], x4[:, list(PLANES[p])]) for p in range(6)]
        sets.append(sum(f[a] * f[b] for a, b in PAIRS))
    return sets[0], torch.cat(sets[1:], -1)


def gather_planes(spec: HexSpec, codebooks: dict, indices: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    """Planes [C, H, W] from per-group codebooks [N_g, C] and index planes [H, W] (long)."""
    out = []
    for (group, _), idx in zip(spec.plane_shapes(), indices):
        out.append(codebooks[group][idx].permute(2, 0, 1))
    return out


def split_codes(spec: HexSpec, planes: Sequence[torch.Tensor], group: str) -> torch.Tensor:
    """The codes of a group: every pixel of its planes as a row [N_g, C], planes in order, row-major."""
    rows = [p.reshape(p.shape[0], -1).t() for (g, _), p in zip(spec.plane_shapes(), planes) if g == group]
    return torch.cat(rows, 0)


def split_index(spec: HexSpec, group: str, flat: torch.Tensor) -> List[torch.Tensor]:
    """Inverse of the flattening in ``split_codes`` for a per-code vector [N_g] → its planes' [H, W] pieces."""
    out, pos = [], 0
    for g, (_, h, w) in spec.plane_shapes():
        if g == group:
            out.append(flat[pos : pos + h * w].reshape(h, w))
            pos += h * w
    return out


def spec_json(spec: HexSpec, codebook: dict, render: dict) -> bytes:
    return json.dumps({"hex": spec.to_json(), "codebook": codebook, "render": render}, sort_keys=True).encode()
