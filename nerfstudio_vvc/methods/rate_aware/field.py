"""DiF (Dictionary Fields, Chen et al. 2023) field: coefficient grid ⊙ multi-scale periodic basis grids.

f(x) = c(x) ⊙ [b_1(γ_1(x)), …, b_6(γ_6(x))], γ_i(x) = triangle wave of frequency ν_i, then the shared
render MLP (density, then view-dependent colour). No nerfstudio import: the standalone decoder renders
with this same code.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import nn

from nerfstudio_vvc.components.heads import RenderMLP, sample_grid


@dataclass(frozen=True)
class DiFSpec:
    """Architecture of one DiF frame; written into the bitstream's method-config chunk."""

    basis_dims: Tuple[int, ...] = (4, 4, 4, 2, 2, 2)
    basis_resolutions: Tuple[int, ...] = (32, 51, 70, 89, 108, 128)
    basis_freqs: Tuple[float, ...] = (2.0, 3.2, 4.4, 5.6, 6.8, 8.0)
    coeff_resolution: int = 32
    hidden_dim: int = 64
    geo_dim: int = 15
    """Geometry code passed from the density MLP to the view-dependent colour MLP (0: view-independent)."""

    @property
    def feature_dim(self) -> int:
        return sum(self.basis_dims)

    def grid_shapes(self) -> List[Tuple[int, int, int, int]]:
        """Shapes [C, D, H, W] of the coded grids: coefficient grid first, then the basis grids."""
        r = self.coeff_resolution
        shapes = [(self.feature_dim, r, r, r)]
        shapes += [(d, s, s, s) for d, s in zip(self.basis_dims, self.basis_resolutions)]
        return shapes

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "DiFSpec":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def init_grids(spec: DiFSpec, generator: torch.Generator | None = None) -> List[torch.Tensor]:
    """Initial I-frame grids: small random coefficients, unit-scale basis."""
    grids = []
    for i, shape in enumerate(spec.grid_shapes()):
        scale = 0.1 if i == 0 else 1.0
        grids.append(torch.randn(shape, generator=generator) * scale)
    return grids


def dif_features(spec: DiFSpec, grids: Sequence, x01: torch.Tensor,
                 sample: Callable[..., torch.Tensor] = sample_grid) -> torch.Tensor:
    """Features [N, feature_dim] at points x01 [N, 3] in the unit cube; ``sample(grid, points)`` looks a grid up
    (the playback renderer passes baked grids and their look-up, `DiFSplit`)."""
    coeff = sample(grids[0], x01)
    basis = []
    for g, freq in zip(grids[1:], spec.basis_freqs):
        y = x01 * freq
        tri = 1.0 - torch.abs(torch.remainder(y, 2.0) - 1.0)  # periodic, continuous
        basis.append(sample(g, tri))
    return coeff * torch.cat(basis, dim=-1)


class DiFFrameField(nn.Module):
    """A decoded frame: fixed grids + rendering MLP (playback and decoder)."""

    def __init__(self, spec: DiFSpec) -> None:
        super().__init__()
        self.spec = spec
        self.grids = [torch.zeros(s) for s in spec.grid_shapes()]
        self.mlp = make_mlp(spec)

    def set_grids(self, grids: Sequence[torch.Tensor]) -> None:
        device = next(self.mlp.parameters()).device
        self.grids = [g.to(device) for g in grids]

    def density(self, x01: torch.Tensor) -> torch.Tensor:
        return self.mlp.density(dif_features(self.spec, self.grids, x01))

    def forward(self, x01: torch.Tensor, dirs: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.mlp(dif_features(self.spec, self.grids, x01), dirs)


def make_mlp(spec: DiFSpec) -> RenderMLP:
    return RenderMLP(spec.feature_dim, spec.hidden_dim, spec.geo_dim)


def spec_json(spec: DiFSpec, **render: object) -> bytes:
    return json.dumps({"dif": spec.to_json(), "render": render}, sort_keys=True).encode()
