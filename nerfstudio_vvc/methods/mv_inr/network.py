"""MV-INR network F(j, t): multi-level time grids + view grid, five conv/PixelShuffle blocks with per-view grid
embeddings, an RGB head, and inter-view compensation (flow + weight head, warp of the decoded basic view, refine
conv, fusion I_hat = I_tilde + w * I_bar, paper Eq. 7).

Upsampling rule (``upsample_factors``): the five factors are taken, largest first, from the prime factors of
gcd(H, W) so that h * prod(s) = H and w * prod(s) = W with the grid (h, w) as small as possible while keeping at
least ``min_grid`` cells on the short side; when gcd(H, W) has fewer than five prime factors the missing ones are 1.
An image size whose gcd has no factor > 1 is rejected with a ValueError naming the size.
"""

from __future__ import annotations

import math
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn


def _prime_factors(n: int) -> List[int]:
    out, p = [], 2
    while p * p <= n:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    if n > 1:
        out.append(n)
    return out


def upsample_factors(
    height: int, width: int, n_blocks: int = 5, min_grid: int = 2
) -> Tuple[Tuple[int, int], List[int]]:
    """Return ((h, w), factors) with h * prod(factors) == height and w * prod(factors) == width."""
    g = math.gcd(int(height), int(width))
    primes = sorted(_prime_factors(g), reverse=True)
    if g <= 1 or not primes:
        raise ValueError(f"image size {width}x{height}: H and W share no factor > 1, cannot derive upsampling factors")
    factors: List[int] = []
    h, w = height, width
    # consume primes (largest first) while the short grid side stays >= min_grid; at most n_blocks factors,
    # merging the remainder into the last factor is avoided: unused primes stay in the grid.
    for p in primes:
        if len(factors) == n_blocks:
            break
        if min(h // p, w // p) < min_grid:
            continue
        factors.append(p)
        h //= p
        w //= p
    factors += [1] * (n_blocks - len(factors))
    factors.sort(reverse=True)
    assert h * math.prod(factors) == height and w * math.prod(factors) == width
    return (h, w), factors


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward-warp ``image`` (B,C,H,W) by ``flow`` (B,2,H,W) in pixels: out[y, x] = image[y + fy, x + fx]."""
    b, _, h, w = image.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, device=image.device, dtype=image.dtype),
        torch.arange(w, device=image.device, dtype=image.dtype),
        indexing="ij",
    )
    x = xs.unsqueeze(0) + flow[:, 0]
    y = ys.unsqueeze(0) + flow[:, 1]
    grid = torch.stack([2.0 * x / max(w - 1, 1) - 1.0, 2.0 * y / max(h - 1, 1) - 1.0], dim=-1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


class ConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, scale: int, n_views: int):
        super().__init__()
        self.scale = scale
        self.conv = nn.Conv2d(c_in, c_out * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale) if scale > 1 else nn.Identity()
        # per-view grid embedding, s x s x c, tiled over the upsampled map
        self.embed = nn.Parameter(torch.zeros(n_views, c_out, scale, scale))

    def forward(self, x: torch.Tensor, view: torch.Tensor) -> torch.Tensor:
        x = self.shuffle(self.conv(x))
        b, c, h, w = x.shape
        s = self.scale  # pixel (y, x) gets embed[view, :, y % s, x % s]: the s×s embedding tiled, without a copy
        e = self.embed[view][:, :, None, :, None, :]
        return F.gelu((x.view(b, c, h // s, s, w // s, s) + e).view(b, c, h, w))


class MVINR(nn.Module):
    """F(j, t) -> frame of view j at time t, with optional inter-view compensation from the basic view."""

    def __init__(
        self,
        n_frames: int,
        n_views: int,
        height: int,
        width: int,
        grid_channels: int = 20,
        conv_channels: Sequence[int] = (64, 48, 32, 24, 16),
        compensation: bool = True,
        grid_embedding: bool = True,
    ):
        super().__init__()
        (gh, gw), self.factors = upsample_factors(height, width, n_blocks=len(conv_channels))
        c = grid_channels
        self.n_frames, self.n_views = n_frames, n_views
        self.g1 = nn.Parameter(0.01 * torch.randn(n_frames, c, gh, gw))
        self.g2 = nn.Parameter(0.01 * torch.randn((n_frames + 1) // 2, c, gh, gw))
        self.g3 = nn.Parameter(0.01 * torch.randn((n_frames + 3) // 4, c, gh, gw))
        self.gv = nn.Parameter(0.01 * torch.randn(n_views, c, gh, gw))
        blocks, c_in = [], c
        for c_out, s in zip(conv_channels, self.factors):
            blocks.append(ConvBlock(c_in, c_out, s, n_views))
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.grid_embedding = grid_embedding
        self.rgb_head = nn.Conv2d(c_in, 3, 3, padding=1)
        self.compensation = compensation
        if compensation:
            self.flow_head = nn.Conv2d(c_in, 3, 3, padding=1)  # 2 flow + 1 weight
            self.refine = nn.Conv2d(3, 3, 3, padding=1)

    def features(self, view: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x = self.g1[t] + self.g2[t // 2] + self.g3[t // 4] + self.gv[view]
        for blk in self.blocks:
            if self.grid_embedding:
                x = blk(x, view)
            else:
                x = F.gelu(blk.shuffle(blk.conv(x)))
        return x

    def forward(self, view: torch.Tensor, t: torch.Tensor, basic: torch.Tensor | None = None) -> torch.Tensor:
        """view, t: (B,) long; basic: (B,3,H,W) decoded basic-view frames in [0,1]. Returns (B,3,H,W)."""
        x = self.features(view, t)
        i_tilde = self.rgb_head(x)
        if self.compensation and basic is not None:
            fw = self.flow_head(x)
            i_bar = self.refine(warp(basic, fw[:, :2]))
            return i_tilde + torch.sigmoid(fw[:, 2:3]) * i_bar
        return i_tilde


def mv_inr_loss(pred: torch.Tensor, target: torch.Tensor, alpha: float = 0.7) -> torch.Tensor:
    """alpha * L1 + (1 - alpha) * (1 - SSIM) over (B,3,H,W) images in [0,1] (paper, alpha = 0.7)."""
    from pytorch_msssim import ssim

    l1 = (pred - target).abs().mean()
    win = min(11, min(pred.shape[-2:]) // 2 * 2 - 1)
    return alpha * l1 + (1.0 - alpha) * (1.0 - ssim(pred, target, data_range=1.0, size_average=True, win_size=win))
