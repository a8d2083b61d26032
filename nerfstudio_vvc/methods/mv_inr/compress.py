"""MV-INR model compression: global unstructured magnitude pruning and 8-bit tanh-normalised quantisation (QAT).

Pruning convention: ``prune_fraction`` is the fraction REMOVED (the authors' code with beta_p = 0.4 removes
1 - 0.4 = 60 %; pass 0.6 to follow it). Exactly round(fraction * n) conv weights (pooled over all conv layers) are
zeroed, ties broken by index, so the kept count is exact.

Quantisation (per quantisation unit: a whole tensor, or one row of the per-frame time grid ``g1``):
w -> u = tanh(w) / m with m = max|tanh(w)|, u in [-1, 1] -> q = round(u * L), L = 2^(b-1) - 1 (integers -L..L, 255
levels for b = 8); dequantised: w_hat = atanh(clamp(q / L * m, +-(1 - 1e-6))). The paper's (u + 1) / 2 * (2^b - 1)
has no level at 0; this symmetric form keeps pruned weights exactly 0 (and cheap to code). ``fake_quant`` is the QAT
forward (straight-through gradient); it equals ``dequantize(*quantize(w))`` exactly.
"""

from __future__ import annotations

import heapq
from collections import Counter
from typing import Dict, List, Tuple

import numpy as np
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


def masks_by_name(model: nn.Module, masks: Dict[int, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The keep-masks keyed by parameter name (what a stage saves)."""
    return {n: masks[id(p)].cpu() for n, p in model.named_parameters() if id(p) in masks}


@torch.no_grad()
def apply_masks(model: nn.Module, masks: Dict[str, torch.Tensor]) -> None:
    """Zero the pruned weights (masks by parameter name, as from ``masks_by_name``)."""
    for n, p in model.named_parameters():
        if n in masks:
            p.mul_(masks[n].to(device=p.device, dtype=p.dtype))


def quantize(w: torch.Tensor, bits: int = 8) -> Tuple[torch.Tensor, float]:
    levels = (1 << (bits - 1)) - 1
    t = torch.tanh(w.detach().float())
    m = float(t.abs().max().clamp_min(1e-12))
    q = torch.round(t / m * levels).to(torch.int64)
    return q, m


def dequantize(q: torch.Tensor, m: float, bits: int = 8) -> torch.Tensor:
    levels = (1 << (bits - 1)) - 1
    u = q.float() / levels * m
    return torch.atanh(u.clamp(-(1 - 1e-6), 1 - 1e-6))


class _STE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, bits):  # type: ignore[override]
        q, m = quantize(w, bits)
        return dequantize(q, m, bits).to(device=w.device, dtype=w.dtype)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return grad, None


def fake_quant(w: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """QAT forward: exactly the decoder's dequantised value (bitwise), with a straight-through gradient."""
    return _STE.apply(w, bits)


PER_ROW = ("g1",)
"""Parameters quantised (and coded) row by row: the per-frame time grid, one row per frame record."""


def fake_quant_param(name: str, p: torch.Tensor, bits: int = 8) -> torch.Tensor:
    if name in PER_ROW:
        return torch.stack([fake_quant(p[i], bits) for i in range(p.shape[0])])
    return fake_quant(p, bits)


def fake_quant_params(model: nn.Module, bits: int = 8) -> Dict[str, torch.Tensor]:
    """Every parameter as the decoder will see it (for ``torch.func.functional_call``)."""
    return {n: fake_quant_param(n, p, bits) for n, p in model.named_parameters()}


def quantize_params(model: nn.Module, bits: int = 8) -> Dict[str, List[Tuple[torch.Tensor, float]]]:
    """name -> [(symbols, m)] per quantisation unit (one per tensor; one per row for ``PER_ROW``)."""
    out: Dict[str, List[Tuple[torch.Tensor, float]]] = {}
    for n, p in model.named_parameters():
        p = p.detach().cpu()
        out[n] = [quantize(p[i], bits) for i in range(p.shape[0])] if n in PER_ROW else [quantize(p, bits)]
    return out


def dequantize_units(name: str, units: List[Tuple[torch.Tensor, float]], bits: int = 8) -> torch.Tensor:
    deq = [dequantize(q, m, bits) for q, m in units]
    return torch.stack(deq) if name in PER_ROW else deq[0]


def huffman_bits(symbols: np.ndarray) -> int:
    """Bits a Huffman code built on the symbols' own histogram would spend on them (code table not counted).

    The paper's entropy coder; printed next to our constriction coding as a comparison only."""
    counts = Counter(np.asarray(symbols).reshape(-1).tolist())
    if len(counts) <= 1:
        return int(sum(counts.values()))  # one symbol: 1 bit each
    heap = [(c, i, 0) for i, c in enumerate(counts.values())]
    heapq.heapify(heap)
    total, k = 0, len(heap)
    while len(heap) > 1:  # sum of merged weights = sum of count * code length
        a, _, _ = heapq.heappop(heap)
        b, _, _ = heapq.heappop(heap)
        total += a + b
        heapq.heappush(heap, (a + b, k, 0))
        k += 1
    return int(total)
