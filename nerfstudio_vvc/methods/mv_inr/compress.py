"""MV-INR model compression: global unstructured magnitude pruning and 8-bit tanh-normalised quantisation (QAT).

Pruning convention: ``prune_fraction`` is the fraction REMOVED (the authors' code with beta_p = 0.4 removes
1 - 0.4 = 60 %; pass 0.6 to follow it). Exactly round(fraction * n) conv weights (pooled over all conv layers) are
zeroed, ties broken by index, so the kept count is exact.

Quantisation: w -> u = tanh(w) / max|tanh(w)| in [-1, 1] -> q = round((u + 1) / 2 * (2^b - 1)) (integers 0..2^b-1);
dequantised: w_hat = atanh(clamp((2 q / (2^b - 1) - 1) * m, +-(1 - 1e-6))) with m = max|tanh(w)|. ``fake_quant`` is the
QAT forward (straight-through gradient); it equals ``dequantize(*quantize(w))`` exactly.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import torch
from torch import nn


def conv_weights(model: nn.Module) -> List[torch.Tensor]:
    return [m.weight for m in model.modules() if isinstance(m, nn.Conv2d)]


def global_magnitude_masks(model: nn.Module, prune_fraction: float) -> Dict[int, torch.Tensor]:
    """Boolean keep-masks (by id of the weight) removing exactly round(fraction * n) smallest-magnitude conv weights."""
    if not 0.0 <= prune_fraction < 1.0:
        raise ValueError(f"prune_fraction must be in [0, 1), got {prune_fraction}")
    ws = conv_weights(model)
    flat = torch.cat([w.detach().abs().flatten() for w in ws])
    n_prune = int(round(prune_fraction * flat.numel()))
    keep = torch.ones_like(flat, dtype=torch.bool)
    if n_prune:
        order = torch.argsort(flat, stable=True)
        keep[order[:n_prune]] = False
    masks, i = {}, 0
    for w in ws:
        masks[id(w)] = keep[i : i + w.numel()].view_as(w)
        i += w.numel()
    return masks


@torch.no_grad()
def apply_masks(model: nn.Module, masks: Dict[int, torch.Tensor]) -> None:
    for w in conv_weights(model):
        w.mul_(masks[id(w)].to(w.dtype))


def quantize(w: torch.Tensor, bits: int = 8) -> Tuple[torch.Tensor, float]:
    levels = (1 << bits) - 1
    t = torch.tanh(w.detach().float())
    m = float(t.abs().max().clamp_min(1e-12))
    q = torch.round((t / m + 1.0) / 2.0 * levels).to(torch.int64)
    return q, m


def dequantize(q: torch.Tensor, m: float, bits: int = 8) -> torch.Tensor:
    levels = (1 << bits) - 1
    u = (2.0 * q.float() / levels - 1.0) * m
    return torch.atanh(u.clamp(-(1 - 1e-6), 1 - 1e-6))


class _STE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, bits):  # type: ignore[override]
        q, m = quantize(w, bits)
        return dequantize(q, m, bits).to(w.dtype)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return grad, None


def fake_quant(w: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """QAT forward: exactly the decoder's dequantised value (bitwise), with a straight-through gradient."""
    return _STE.apply(w, bits)
