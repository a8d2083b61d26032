"""vvc-mv-inr's whole-sequence training: every (view, time) image of the non-basic views, against the decoded
basic view.

Paper recipe: loss 0.7·L1 + 0.3·(1 − SSIM); Adam with β = (0.5, 0.999), lr 5e-4, linear warm-up then cosine decay
to 0. One epoch visits every (view, frame) pair once in a seeded random order, in batches. The same loop serves the
three training phases (stages.py): plain training, fine-tuning after pruning (``masks``: pruned weights stay 0) and
quantisation-aware training (``qat_bits``: the forward sees every parameter as the decoder will). It is resumable
at epoch granularity: ``on_epoch`` receives the state after every epoch, ``resume`` takes it back, and a resumed run
ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
from torch.func import functional_call

from nerfstudio_vvc.methods.mv_inr.compress import apply_masks, fake_quant_params
from nerfstudio_vvc.methods.mv_inr.network import MVINR, mv_inr_loss


@dataclass
class InrTrainConfig:
    epochs: int = 300
    """Passes over all (view, frame) pairs (paper: 300)."""
    batch_size: int = 1
    lr: float = 5e-4
    betas: tuple = (0.5, 0.999)
    warmup_fraction: float = 0.2
    """Share of the steps spent warming the learning rate up linearly from 0."""
    alpha: float = 0.7
    """L1 weight of the loss; 1 − alpha goes to 1 − SSIM."""
    seed: int = 0


def lr_at(step: int, total: int, lr: float, warmup_fraction: float) -> float:
    """Learning rate of optimizer step `step` (0-based) of `total`: linear warm-up, then cosine to 0."""
    warm = max(int(round(total * warmup_fraction)), 1)
    if step < warm:
        return lr * (step + 1) / warm
    progress = (step - warm) / max(total - warm, 1)
    return lr * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float (..., 3, H, W) in [0, 1]."""
    return images.permute(*range(images.dim() - 3), -1, -3, -2).float() / 255.0


def forward(
    model: MVINR, view: torch.Tensor, t: torch.Tensor, basic: Optional[torch.Tensor], qat_bits: Optional[int] = None
) -> torch.Tensor:
    """The network's output; with ``qat_bits`` every parameter is fake-quantised (straight-through)."""
    if qat_bits is None:
        return model(view, t, basic)
    return functional_call(model, fake_quant_params(model, qat_bits), (view, t, basic))


def train_inr(
    model: MVINR,
    targets: torch.Tensor,
    views: Sequence[int],
    basic: Optional[torch.Tensor],
    cfg: InrTrainConfig,
    *,
    masks: Optional[Dict[str, torch.Tensor]] = None,
    qat_bits: Optional[int] = None,
    resume: Optional[Dict[str, Any]] = None,
    on_epoch: Optional[Callable[[Dict[str, Any]], None]] = None,
    advance: Optional[Callable[[], None]] = None,
) -> List[float]:
    """Train `model` on `targets` (uint8, V × T × H × W × 3, in the order of `views`, the view indices the model is
    asked for) with `basic` (uint8, T × H × W × 3, the DECODED basic view) as the compensation source. Returns the
    mean loss of every epoch (those of a resumed run's earlier epochs included)."""
    device = next(model.parameters()).device
    v_count, t_count = targets.shape[:2]
    if len(views) != v_count:
        raise ValueError(f"{len(views)} view indices for {v_count} target views")
    pairs = torch.tensor([(v, t) for v in range(v_count) for t in range(t_count)], dtype=torch.long)
    steps_per_epoch = math.ceil(len(pairs) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
    view_ids = torch.as_tensor(list(views), dtype=torch.long)
    gen = torch.Generator().manual_seed(cfg.seed)
    losses: List[float] = []
    start = 0
    if resume is not None:
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["opt"])
        gen.set_state(resume["gen"])
        losses, start = list(resume["losses"]), int(resume["epoch"])
    if masks is not None:
        apply_masks(model, masks)
    model.train()
    for epoch in range(start, cfg.epochs):
        order = pairs[torch.randperm(len(pairs), generator=gen)]
        total_loss = 0.0
        for b in range(steps_per_epoch):
            step = epoch * steps_per_epoch + b
            for g in opt.param_groups:
                g["lr"] = lr_at(step, total, cfg.lr, cfg.warmup_fraction)
            batch = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            vi, ti = batch[:, 0], batch[:, 1]
            target = to_float(targets[vi, ti]).to(device)
            src = to_float(basic[ti]).to(device) if basic is not None else None
            pred = forward(model, view_ids[vi].to(device), ti.to(device), src, qat_bits)
            loss = mv_inr_loss(pred, target, cfg.alpha)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if masks is not None:
                apply_masks(model, masks)
            total_loss += float(loss.detach()) * len(batch)
        losses.append(total_loss / len(pairs))
        if on_epoch is not None:
            on_epoch(
                {
                    "epoch": epoch + 1,
                    "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                    "opt": opt.state_dict(),
                    "gen": gen.get_state(),
                    "losses": list(losses),
                }
            )
        if advance is not None:
            advance()
    return losses


@torch.no_grad()
def render_frame(model: MVINR, t: int, n_views: int, basic_t: Optional[torch.Tensor]) -> torch.Tensor:
    """Every coded view at frame `t` as uint8 (V × H × W × 3): round(clamp(F(j, t), 0, 1) · 255), one view at a time.

    The encoder's reconstruction and the decoder both call this, so both run the same operations."""
    device = next(model.parameters()).device
    model.eval()
    src = to_float(basic_t[None]).to(device) if basic_t is not None else None
    out = []
    for j in range(n_views):
        img = model(torch.tensor([j], device=device), torch.tensor([t], device=device), src)[0]
        out.append((img.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).cpu())
    return torch.stack(out)


@torch.no_grad()
def reconstruct(model: MVINR, views: Sequence[int], num_frames: int, basic: Optional[torch.Tensor]) -> torch.Tensor:
    """The coded views as uint8 (V × T × H × W × 3), frame by frame (``render_frame``); `views` must be 0..V-1."""
    if list(views) != list(range(len(views))):
        raise ValueError(f"views must be 0..{len(views) - 1}, got {list(views)}")
    frames = [render_frame(model, t, len(views), basic[t] if basic is not None else None) for t in range(num_frames)]
    return torch.stack(frames, dim=1)
