"""Fixed-point helpers for the integer entropy models (bit-exact on every device).

Integers are held in int64 tensors (or float tensors holding small exact integers where a
BLAS/conv kernel is used, with bounds that make every partial sum exact, see constants.py).
Float64 values handed to constriction are produced only by exact operations: ``k / 16`` for
means and a lookup in the literal ``SCALE_TABLE`` for scales.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from nerfstudio_vvc.codec.constants import (
    MEAN_FRAC_BITS,
    NUM_SCALES,
    SCALE_LOG2_MIN,
    SCALE_STEPS_PER_OCTAVE,
    SCALE_TABLE,
)

SCALE_TABLE_NP = np.asarray(SCALE_TABLE, dtype=np.float64)


def choose_shift(w: torch.Tensor, max_int: int, lo: int, hi: int) -> int:
    """Largest s in [lo, hi] with max|w| * 2**s <= max_int.

    Uses only exact operations (abs, max, multiplication by powers of two), so a float32 model
    and its float64 copy get the same shift."""
    m = float(w.detach().abs().max()) if w.numel() else 0.0
    if m == 0.0:
        return hi
    s = hi
    while s > lo and m * math.ldexp(1.0, s) > max_int + 0.5:
        s -= 1
    return s


def quantize_fixed(w: torch.Tensor, shift: int, max_int: int) -> torch.Tensor:
    """round(w * 2**shift) clamped to +-max_int, as int64 (round-half-even, exact)."""
    v = torch.round(w.detach().cpu().double() * math.ldexp(1.0, shift))
    return v.clamp_(-max_int, max_int).to(torch.int64)


def shift_round(x: torch.Tensor, k: int) -> torch.Tensor:
    """Integer x / 2**k rounded half-up (floor(x + 2**(k-1)) >> k); k <= 0 multiplies."""
    if k <= 0:
        return x << (-k)
    return (x + (1 << (k - 1))) >> k


def shift_floor(x: torch.Tensor, k: int) -> torch.Tensor:
    return x << (-k) if k <= 0 else x >> k


def mean_index(out0: torch.Tensor, frac_bits: int) -> torch.Tensor:
    """Fixed-point mean (``frac_bits`` fractional bits) -> integer multiples of 2**-MEAN_FRAC_BITS."""
    return shift_round(out0, frac_bits - MEAN_FRAC_BITS)


def scale_index(out1: torch.Tensor, frac_bits: int) -> torch.Tensor:
    """Fixed-point log2(scale) -> index into SCALE_TABLE (nearest, clamped)."""
    off = (-SCALE_LOG2_MIN * SCALE_STEPS_PER_OCTAVE) << frac_bits
    return shift_round(out1 * SCALE_STEPS_PER_OCTAVE + off, frac_bits).clamp_(0, NUM_SCALES - 1)


def to_coder_params(mean_idx: torch.Tensor, scale_idx: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Exact float64 (mean, scale) arrays for constriction."""
    m = mean_idx.reshape(-1).cpu().numpy().astype(np.float64) * (1.0 / (1 << MEAN_FRAC_BITS))
    s = SCALE_TABLE_NP[scale_idx.reshape(-1).cpu().numpy()]
    return m, s
