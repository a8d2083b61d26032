"""Quantization for training: straight-through rounding, additive-noise proxy, learnable steps."""

from __future__ import annotations

import math

import torch


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """round(x) in the forward pass, identity gradient."""
    return x + (torch.round(x) - x).detach()


def symbols_ste(x: torch.Tensor, step: torch.Tensor | float) -> torch.Tensor:
    """Integer symbols round(x / step) as floats, straight-through (gradient flows to x and step)."""
    return round_ste(x / step)


def quantize_ste(x: torch.Tensor, step: torch.Tensor | float) -> torch.Tensor:
    """Dequantized step * round(x / step) with a straight-through gradient."""
    return symbols_ste(x, step) * step


def quantize_noise(x: torch.Tensor, step: torch.Tensor | float) -> torch.Tensor:
    """x + U(-step/2, step/2): the differentiable proxy used for rate estimation during training."""
    return x + (torch.rand_like(x) - 0.5) * step


class LearnableStep(torch.nn.Module):
    """Positive step parameterised in log2 space (so Adam moves it multiplicatively)."""

    def __init__(self, init_step: float = 1.0, shape: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.log2_step = torch.nn.Parameter(torch.full(shape, math.log2(init_step)))

    def forward(self) -> torch.Tensor:
        return torch.exp2(self.log2_step)
