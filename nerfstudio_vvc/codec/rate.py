"""Differentiable bit estimates: -log2 P(symbol) under discretised Laplace / Gaussian models.

Probabilities are floored at 2**-24 like constriction's leaky quantizer, so estimates stay finite
and close to what the range coder actually spends.
"""

from __future__ import annotations

import math

import torch

_LN2 = math.log(2.0)
P_FLOOR = 2.0**-24


def laplace_bits(x: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Per-element bits of integer-valued ``x`` under Laplace(mean, scale) integrated over x +- 1/2."""
    scale = scale.clamp_min(1e-6)
    d = (x - mean).abs()
    # far branch (d >= 1/2): P = 0.5 * exp(-(d - 1/2)/s) * (1 - exp(-1/s)), in log space for stability
    log_far = math.log(0.5) - (d - 0.5).clamp_min(0) / scale + torch.log(-torch.expm1(-1.0 / scale))
    # near branch (d < 1/2): P = 1 - 0.5 * (exp(-(d + 1/2)/s) + exp(-(1/2 - d)/s))
    dn = d.clamp_max(0.5)
    p_near = 1 - 0.5 * (torch.exp(-(dn + 0.5) / scale) + torch.exp(-(0.5 - dn) / scale))
    logp = torch.where(d >= 0.5, log_far, torch.log(p_near.clamp_min(P_FLOOR)))
    return -logp.clamp_min(math.log(P_FLOOR)) / _LN2


def gaussian_bits(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Per-element bits of integer-valued ``x`` under N(mean, std^2) integrated over x +- 1/2."""
    std = std.clamp_min(1e-6)
    d = (x - mean).abs()
    # use the upper tail (erfc) for accuracy far from the mean
    c = 1.0 / (std * math.sqrt(2.0))
    p = 0.5 * (torch.erfc((d - 0.5) * c) - torch.erfc((d + 0.5) * c))
    return -torch.log2(p.clamp_min(P_FLOOR))


def factorized_laplace_bits(x: torch.Tensor, scale: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Total bits of ``x`` with a zero-mean Laplace whose scale is per channel along ``dim``."""
    shape = [1] * x.dim()
    shape[dim] = -1
    return laplace_bits(x, torch.zeros_like(x), scale.reshape(shape)).sum()
