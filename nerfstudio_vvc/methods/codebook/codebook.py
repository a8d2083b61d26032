"""The codebook algorithms of vvc-codebook, in plain torch (no nerfstudio, no rendering loop):

    importance   I_c = Σ_i w_ci · T_i α_i         (ImportanceField: gradient w.r.t. ones-grids)
    build        merge the lowest cumulative importance into a zero code, keep the most important
                 codes, cluster the rest into k codes (importance-weighted EMA k-means)
    dynamic      top-k codes by accumulated gradient norm (per time fragment)
    quantize     uniform per-channel quantisation of a codebook

Codes are the pixels of a group's planes (``field.split_codes``): density and appearance have one
codebook each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Literal, Optional, Sequence, Tuple

import torch
from torch import nn

from nerfstudio_vvc.methods.codebook.field import HexField, plane_coords, sample_plane

KeepBy = Literal["count", "importance"]


class ImportanceField(nn.Module):
    """A HexField whose density is detached and whose colour channel 0 is Σ_p M_p(x) for ones-grids M_p.

    Rendering it and back-propagating the red channel's sum gives, in ``M_p.grad``, Σ_i w_ci T_i α_i
    for every pixel c of every plane p (w_ci: bilinear weight of pixel c at sample i; T_i α_i: the
    sample's rendering weight, independent of M since the density is detached)."""

    def __init__(self, field: HexField, mults: Sequence[torch.Tensor]) -> None:
        super().__init__()
        self.field = field
        self.mults = list(mults)

    def density(self, x01: torch.Tensor) -> torch.Tensor:
        return self.field.density(x01)

    def forward(self, x01: torch.Tensor, dirs: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        t = self.field.time
        assert t is not None, "importance is computed at a fixed time per render call"
        with torch.no_grad():
            density = self.field.density(x01)
        s = sum(sample_plane(m, plane_coords(x01, t, p % 6))[:, 0] for p, m in enumerate(self.mults))
        z = torch.zeros_like(s)
        return density, torch.stack([s, z, z], -1)  # type: ignore[list-item]


def ones_multipliers(planes: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    """One ones-grid [1, H, W] per plane, requiring grad."""
    return [torch.ones(1, *p.shape[1:], device=p.device, requires_grad=True) for p in planes]


@dataclass
class CodebookResult:
    """A group's codebook: entry 0 is the zero code, then entries sorted by use (most used first)."""

    codebook: torch.Tensor  # [M, C] float32
    index: torch.Tensor  # [N] long, into codebook
    num_zero: int  # codes merged into the zero code
    num_kept: int  # codes kept as they are
    num_clustered: int  # codes replaced by a cluster centre
    num_centres: int  # distinct cluster centres in use


def select_kept(
    importance: torch.Tensor, candidates: torch.Tensor, keep_fraction: float, keep_by: KeepBy
) -> torch.Tensor:
    """Boolean mask of the codes kept as they are, among ``candidates`` (bool [N]).

    ``count``: the ``keep_fraction`` most important codes by number (the paper's "top 30 %" read as
    a count). ``importance``: the most important codes whose importance sums to ``keep_fraction`` of
    the total (fewer codes when importance is concentrated)."""
    n = int(candidates.sum())
    keep = torch.zeros_like(candidates)
    if n == 0 or keep_fraction <= 0:
        return keep
    imp = torch.where(candidates, importance, torch.full_like(importance, -1.0))
    order = torch.argsort(imp, descending=True)[:n]
    if keep_by == "count":
        m = min(int(math.ceil(keep_fraction * n)), n)
    elif keep_by == "importance":
        cum = torch.cumsum(importance[order].double(), 0)
        m = int((cum < keep_fraction * float(cum[-1])).sum()) + 1 if float(cum[-1]) > 0 else 0
        m = min(m, n)
    else:
        raise ValueError(f"keep_by must be 'count' or 'importance', got {keep_by!r}")
    keep[order[:m]] = True
    return keep


def nearest(x: torch.Tensor, centres: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """Index of the nearest centre (L2) of every row of x."""
    out = []
    c2 = (centres * centres).sum(-1)
    for i in range(0, x.shape[0], chunk):
        xi = x[i : i + chunk]
        d = c2[None, :] - 2.0 * xi @ centres.t()
        out.append(d.argmin(-1))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long, device=x.device)


def ema_kmeans(
    x: torch.Tensor,
    w: torch.Tensor,
    k: int,
    iters: int,
    decay: float = 0.8,
    dead_fraction: float = 0.01,
    generator: Optional[torch.Generator] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Importance-weighted VQ-VAE-style EMA k-means of rows x [n, C] with weights w [n].

    Full-batch assignments, EMA updates of cluster weight and weighted sum, dead centres (weight
    below ``dead_fraction`` of the mean) re-seeded from codes drawn ∝ w during the first 3/4 of the
    iterations. Returns (centres [k', C], assignment [n]) with k' ≤ k: centres nobody uses are dropped."""
    n = x.shape[0]
    if n <= k:  # nothing to merge: every code is its own centre
        return x.clone(), torch.arange(n, device=x.device)
    w = w.clamp_min(0)
    w = w / w.mean().clamp_min(1e-30) + 1e-6
    draw = lambda m: torch.multinomial(w.cpu(), m, replacement=False, generator=generator).to(x.device)  # noqa: E731
    centres = x[draw(k)].clone()
    size = torch.full((k,), 1e-3, device=x.device)
    total = centres * size[:, None]
    mean_size = float(w.sum()) / k
    for it in range(iters):
        a = nearest(x, centres)
        size_now = torch.zeros(k, device=x.device).index_add_(0, a, w)
        sum_now = torch.zeros_like(total).index_add_(0, a, x * w[:, None])
        size = decay * size + (1 - decay) * size_now
        total = decay * total + (1 - decay) * sum_now
        centres = total / size.clamp_min(1e-12)[:, None]
        if it < (3 * iters) // 4:
            dead = torch.nonzero(size < dead_fraction * mean_size * (1 - decay ** (it + 1))).flatten()
            if len(dead):
                centres[dead] = x[draw(len(dead))]
                size[dead] = 1e-3
                total[dead] = centres[dead] * 1e-3
    a = nearest(x, centres)
    used, a = torch.unique(a, return_inverse=True)
    return centres[used], a


def build_codebook(
    codes: torch.Tensor,
    importance: torch.Tensor,
    k: int,
    keep_fraction: float,
    keep_by: KeepBy = "count",
    merge_fraction: float = 1e-5,
    iters: int = 50,
    generator: Optional[torch.Generator] = None,
) -> CodebookResult:
    """Merge / keep / cluster the codes [N, C] of one group with importance [N] (see module doc).

    ``merge_fraction``: codes whose cumulative importance (lowest first) stays within this fraction
    of the total become the zero code (paper: 0.001 % = 1e-5). At most 1 + k + kept distinct codes
    come out."""
    n = codes.shape[0]
    imp = importance.double()
    order = torch.argsort(imp)
    cum = torch.cumsum(imp[order], 0)
    zero = torch.zeros(n, dtype=torch.bool, device=codes.device)
    zero[order[cum <= merge_fraction * float(cum[-1])]] = True
    keep = select_kept(importance, ~zero, keep_fraction, keep_by)
    rest = ~zero & ~keep
    centres, assign = ema_kmeans(codes[rest], importance[rest].float(), k, iters, generator=generator)
    kept_ids = torch.nonzero(keep).flatten()
    entries = torch.cat([torch.zeros(1, codes.shape[1], device=codes.device), centres, codes[kept_ids]], 0)
    index = torch.zeros(n, dtype=torch.long, device=codes.device)
    index[rest] = 1 + assign
    index[kept_ids] = 1 + len(centres) + torch.arange(len(kept_ids), device=codes.device)
    # Entry 0 stays the zero code; the others by decreasing use (small indices are the frequent ones).
    counts = torch.bincount(index, minlength=len(entries))
    counts[0] = counts.max() + 1
    perm = torch.argsort(-counts, stable=True)
    perm = perm[counts[perm] > 0]
    remap = torch.full((len(entries),), -1, dtype=torch.long, device=codes.device)
    remap[perm] = torch.arange(len(perm), device=codes.device)
    return CodebookResult(
        entries[perm].float().contiguous(), remap[index], int(zero.sum()), len(kept_ids), int(rest.sum()), len(centres)
    )


def select_dynamic(grad_norm: torch.Tensor, k: int) -> torch.Tensor:
    """Ids (sorted) of the k codebook entries with the largest accumulated gradient norm; never the zero code 0."""
    g = grad_norm.clone()
    g[0] = -1.0
    k = max(0, min(k, len(g) - 1))
    return torch.sort(torch.topk(g, k).indices).values


def quantize_codebook(codebook: torch.Tensor, bits: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Uniform quantisation per channel: (symbols [M, C] int64, steps [C] float32), step = max|v| / (2^(bits−1) − 1)."""
    peak = codebook.abs().amax(0).float()
    steps = torch.where(peak > 0, peak / float(2 ** (bits - 1) - 1), torch.ones_like(peak)).to(torch.float32)
    return quantize_with(codebook, steps), steps


def quantize_with(values: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """Symbols round(v / step) of rows [n, C] with given per-channel steps."""
    return torch.round(values.float() / steps.to(values.device)[None, :]).to(torch.int64)


def dequantize(symbols: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """float32 symbols · step (elementwise: identical on every device)."""
    return symbols.to(torch.float32) * steps.to(symbols.device, torch.float32)[None, :]


def distinct_codes(planes_codes: torch.Tensor) -> int:
    """Number of distinct rows (for the bound test)."""
    return int(torch.unique(planes_codes, dim=0).shape[0])


def group_stats(results: Dict[str, CodebookResult]) -> Dict[str, Dict[str, int]]:
    return {
        g: {
            "entries": int(r.codebook.shape[0]),
            "zero": r.num_zero,
            "kept": r.num_kept,
            "clustered": r.num_clustered,
            "centres": r.num_centres,
        }
        for g, r in results.items()
    }
