"""The P-frame L1 regulariser as a proximal step in Adam's metric (`--pipeline.model.reg-proximal`).

Under Adam an L1 subgradient moves a voxel by about lr per step whatever the size of the gradient, so a voxel whose
data gradient is weaker than the L1 term oscillates around zero by ~lr: several quantization steps, each coded as a
non-zero symbol. The proximal step puts such voxels exactly on zero and leaves voxels with a strong data gradient
to follow it."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from nerfstudio_vvc.methods.rate_aware.model import RateAwareModel

LAMBDA, ALPHA = 1e-3, 10.0


def _fake_model(delta: torch.nn.Parameter, proximal: bool, iframe: bool = False) -> SimpleNamespace:
    config = SimpleNamespace(reg_proximal=proximal, rate_aware=True, lambda_rate=LAMBDA, alpha_reg=ALPHA)
    return SimpleNamespace(config=config, is_iframe=iframe, field=SimpleNamespace(delta=[delta]))


def _run(proximal: bool, iframe: bool = False, steps: int = 300, lr: float = 0.06) -> torch.Tensor:
    """Residual of 1000 voxels; voxels 0..9 have a data gradient pulling them to 1.0 that beats the L1 term, the
    rest a data gradient (towards 0.3) far weaker than it: the L1 optimum is 0 there. Every voxel also gets
    minibatch-like gradient noise (std half the L1 gradient), as photometric gradients from random rays do."""
    torch.manual_seed(0)
    n = 1000
    delta = torch.nn.Parameter(torch.zeros(n))
    target = torch.full((n,), 0.3)
    target[:10] = 1.0
    weight = torch.full((n,), 1e-3 * LAMBDA * ALPHA / n)  # weak: |data gradient| < L1 gradient at δ = 0
    weight[:10] = 1e3 * LAMBDA * ALPHA / n
    opt = torch.optim.Adam([delta], lr=lr, eps=1e-15)
    model = _fake_model(delta, proximal, iframe)
    for _ in range(steps):
        opt.zero_grad()
        noise = 0.5 * LAMBDA * ALPHA / n * torch.randn(n)
        loss = (weight * (delta - target) ** 2).sum() + (noise * delta).sum()
        if not proximal:
            loss = loss + LAMBDA * ALPHA * delta.abs().sum() / n
        loss.backward()
        opt.step()
        RateAwareModel.after_optimizer_step(model, {"grids": opt}, {"grids": lr})  # type: ignore[arg-type]
    return delta.detach()


def test_proximal_step_zeroes_weak_voxels_and_keeps_strong_ones():
    prox = _run(proximal=True)
    assert torch.count_nonzero(prox[10:]) == 0  # exactly zero: a zero symbol at any quantization step
    assert torch.allclose(prox[:10], torch.ones(10), atol=0.05)  # the strong voxels still reach their target


def test_subgradient_l1_under_adam_oscillates_around_zero():
    """What the proximal step fixes: the same objective as a loss term leaves the weak voxels wandering around zero;
    with the P-frames' learned step (~0.022) over a third of them would code as non-zero symbols
    (measured: 459 of 990 beyond half a step)."""
    sub = _run(proximal=False)
    assert int((sub[10:].abs() > 0.011).sum()) > 330
    assert torch.allclose(sub[:10], torch.ones(10), atol=0.05)


def test_proximal_step_leaves_i_frames_alone():
    """I-frames have no residual and no L_reg: the step must not touch their grids."""
    delta = torch.nn.Parameter(torch.full((4,), 1e-4))
    opt = torch.optim.Adam([delta], lr=0.06, eps=1e-15)
    delta.grad = torch.full((4,), 1e-12)
    opt.step()
    before = delta.detach().clone()
    RateAwareModel.after_optimizer_step(_fake_model(delta, True, iframe=True), {"grids": opt}, {"grids": 0.06})  # type: ignore[arg-type]
    assert torch.equal(delta.detach(), before)
