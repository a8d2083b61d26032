"""vvc-mv-inr network tests (issue 13). Tiny and fast."""

import math

import pytest
import torch

from nerfstudio_vvc.methods.mv_inr.network import MVINR, upsample_factors, warp


@pytest.mark.parametrize("hw", [(1080, 1920), (180, 320), (64, 96), (48, 64)])
def test_upsample_factors_reproduce_size(hw):
    h, w = hw
    (gh, gw), s = upsample_factors(h, w)
    assert len(s) == 5
    assert gh * math.prod(s) == h and gw * math.prod(s) == w


def test_upsample_factors_paper_1080p():
    # the paper's 9x16 grid with 5,3,2,2,2 for 1080p
    assert upsample_factors(1080, 1920) == ((9, 16), [5, 3, 2, 2, 2])


def test_upsample_factors_rejects_coprime_size():
    with pytest.raises(ValueError, match="97x64"):
        upsample_factors(64, 97)


def test_warp_known_shift():
    img = torch.rand(1, 3, 16, 20)
    flow = torch.zeros(1, 2, 16, 20)
    flow[:, 0] = 3.0  # sample 3 px to the right
    flow[:, 1] = -2.0  # and 2 px up
    out = warp(img, flow)
    torch.testing.assert_close(out[..., 2:, :-3], img[..., :-2, 3:], atol=1e-5, rtol=0)


def test_forward_shapes_and_fusion():
    torch.manual_seed(0)
    net = MVINR(n_frames=5, n_views=3, height=48, width=64, grid_channels=4, conv_channels=(8, 8, 8, 8, 8))
    view = torch.tensor([0, 2])
    t = torch.tensor([0, 4])
    basic = torch.rand(2, 3, 48, 64)
    out = net(view, t, basic)
    assert out.shape == (2, 3, 48, 64)
    # compensation term is used: output differs from the RGB head alone
    assert not torch.allclose(out, net(view, t, None))
    out.mean().backward()
    assert net.g3.grad is not None and net.gv.grad is not None


@pytest.mark.parametrize("frac", [0.0, 0.4, 0.6])
def test_pruning_keeps_exact_fraction(frac):
    from nerfstudio_vvc.methods.mv_inr.compress import apply_masks, conv_weights, global_magnitude_masks

    torch.manual_seed(1)
    net = MVINR(n_frames=2, n_views=2, height=48, width=64, grid_channels=4, conv_channels=(8, 8, 8, 8, 8))
    n = sum(w.numel() for w in conv_weights(net))
    masks = global_magnitude_masks(net, frac)
    apply_masks(net, masks)
    assert sum(int(m.sum()) for m in masks.values()) == n - round(frac * n)
    assert sum(int((w == 0).sum()) for w in conv_weights(net)) == round(frac * n)


def test_qat_forward_equals_dequantisation():
    from nerfstudio_vvc.methods.mv_inr.compress import dequantize, fake_quant, quantize

    torch.manual_seed(2)
    w = torch.randn(64, 8, 3, 3, requires_grad=True)
    fq = fake_quant(w)
    q, m = quantize(w)
    assert q.min() >= 0 and q.max() <= 255
    assert torch.equal(fq.detach(), dequantize(q, m))
    fq.sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))  # straight-through


def test_loss_zero_on_identity_and_positive_otherwise():
    from nerfstudio_vvc.methods.mv_inr.network import mv_inr_loss

    torch.manual_seed(3)
    a = torch.rand(2, 3, 32, 48)
    assert float(mv_inr_loss(a, a)) == pytest.approx(0.0, abs=1e-6)
    assert float(mv_inr_loss(a, torch.rand_like(a))) > 0.1
