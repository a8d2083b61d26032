"""vvc-mv-inr network tests (issue 13). Tiny and fast."""

import math

import numpy as np
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
    from nerfstudio_vvc.methods.mv_inr.compress import apply_masks, conv_weights, global_magnitude_masks, masks_by_name

    torch.manual_seed(1)
    net = MVINR(n_frames=2, n_views=2, height=48, width=64, grid_channels=4, conv_channels=(8, 8, 8, 8, 8))
    n = sum(w.numel() for w in conv_weights(net))
    masks = global_magnitude_masks(net, frac)
    apply_masks(net, masks_by_name(net, masks))
    assert sum(int(m.sum()) for m in masks.values()) == n - round(frac * n)
    assert sum(int((w == 0).sum()) for w in conv_weights(net)) == round(frac * n)


def test_qat_forward_equals_dequantisation():
    from nerfstudio_vvc.methods.mv_inr.compress import dequantize, fake_quant, quantize

    torch.manual_seed(2)
    w = torch.randn(64, 8, 3, 3, requires_grad=True)
    fq = fake_quant(w)
    q, m = quantize(w)
    assert q.min() >= -127 and q.max() <= 127 and q.abs().max() == 127
    assert torch.equal(fake_quant(torch.zeros(3)), torch.zeros(3))  # pruned weights stay exactly zero
    assert torch.equal(fq.detach(), dequantize(q, m))
    fq.sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))  # straight-through


def test_loss_zero_on_identity_and_positive_otherwise():
    from nerfstudio_vvc.methods.mv_inr.network import mv_inr_loss

    torch.manual_seed(3)
    a = torch.rand(2, 3, 32, 48)
    assert float(mv_inr_loss(a, a)) == pytest.approx(0.0, abs=1e-6)
    assert float(mv_inr_loss(a, torch.rand_like(a))) > 0.1


def _look_at(eye, target=(0.0, 0.0, 0.0)):
    """OpenGL camera-to-world (3x4) at `eye` looking at `target`."""
    eye, target = np.asarray(eye, float), np.asarray(target, float)
    fwd = target - eye
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, fwd)
    return np.stack([right, up, -fwd, eye], axis=1)


def test_basic_view_is_the_medoid_of_viewing_directions_and_override_is_checked():
    from nerfstudio_vvc.methods.mv_inr.basic_view import choose_basic_view

    # A 120° arc of cameras around the subject: the middle one sees what the others see, the ends do not.
    arc = [_look_at((3 * np.cos(a), 3 * np.sin(a), 1.0)) for a in np.radians([-60, -35, -10, 0, 15, 40, 60])]
    assert choose_basic_view(np.stack(arc)) == 3
    assert choose_basic_view(np.stack(arc), override=6) == 6
    with pytest.raises(ValueError, match="basic view 7 is not one of the 7 cameras"):
        choose_basic_view(np.stack(arc), override=7)


def test_basic_view_x265_at_a_qp_decodes_from_the_file(tmp_path):
    """The basic view goes through real x265 at a constant QP; what comes back is what the file decodes to, and a
    lower QP spends more bytes for a closer picture."""
    from nerfstudio_vvc.eval.x265_anchor import decode_hevc
    from nerfstudio_vvc.methods.mv_inr.basic_view import code_basic_view

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:96]
    frames = [
        np.clip(
            np.stack([xx * 2 + 8 * t, yy * 3, (xx + yy + 5 * t) % 256], -1) + rng.integers(0, 20, (64, 96, 3)), 0, 255
        ).astype(np.uint8)
        for t in range(4)
    ]
    hi = code_basic_view(frames, tmp_path / "hi.hevc", qp=22)
    lo = code_basic_view(frames, tmp_path / "lo.hevc", qp=40)
    assert hi["file_bytes"] == (tmp_path / "hi.hevc").stat().st_size > lo["file_bytes"]
    again = decode_hevc(tmp_path / "hi.hevc")["rgb"]
    assert len(hi["decoded"]) == 4 and all(np.array_equal(a, b) for a, b in zip(hi["decoded"], again))

    def err(res):
        return float(np.mean([np.abs(a.astype(float) - b).mean() for a, b in zip(res["decoded"], frames)]))

    assert err(hi) < err(lo)
    # the encoder ran without a thread pool and with one frame thread (x265 records its options in the stream), so
    # the bytes do not depend on the machine's cores or on thread scheduling: a resumed run writes the same file
    options = (tmp_path / "hi.hevc").read_bytes()
    assert b"numa-pools=none" in options and b" frame-threads=1 " in options and b" no-wpp " in options
    assert code_basic_view(frames, tmp_path / "hi2.hevc", qp=22)["file_bytes"] == hi["file_bytes"]
    assert (tmp_path / "hi2.hevc").read_bytes() == (tmp_path / "hi.hevc").read_bytes()


def test_lr_schedule_warms_up_then_decays_to_zero():
    from nerfstudio_vvc.methods.mv_inr.train import lr_at

    lrs = [lr_at(s, 100, 5e-4, 0.2) for s in range(100)]
    assert lrs[0] == pytest.approx(5e-4 / 20) and lrs[19] == pytest.approx(5e-4)
    assert all(a < b for a, b in zip(lrs[:19], lrs[1:20]))  # warm-up rises
    assert all(a >= b for a, b in zip(lrs[19:], lrs[20:]))  # cosine falls
    assert lrs[-1] < 0.01 * 5e-4


def _views_of_a_moving_pattern(n_views=3, n_frames=4, h=32, w=48):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = []
    for j in range(n_views + 1):  # view 0 is the basic view; the others see it shifted by 2 px per view
        out.append(
            [
                np.stack(
                    [
                        128 + 100 * np.sin((xx + 2 * j + 3 * t) / 6),
                        128 + 100 * np.cos((yy - j + t) / 5),
                        np.full_like(xx, 40 + 50 * j),
                    ],
                    -1,
                )
                for t in range(n_frames)
            ]
        )
    return torch.from_numpy(np.clip(np.array(out), 0, 255).astype(np.uint8))


def test_training_lowers_the_loss_and_is_reproducible():
    from nerfstudio_vvc.methods.mv_inr.train import InrTrainConfig, reconstruct, train_inr

    imgs = _views_of_a_moving_pattern()
    basic, targets, views = imgs[0], imgs[1:], [1, 2, 3]
    cfg = InrTrainConfig(epochs=12, batch_size=4, lr=5e-3)

    def run():
        torch.manual_seed(0)
        m = MVINR(n_frames=4, n_views=4, height=32, width=48, grid_channels=8, conv_channels=(16, 16, 8, 8, 8))
        return m, train_inr(m, targets, [v - 1 for v in views], basic, cfg)

    m1, l1 = run()
    m2, l2 = run()
    assert l1[-1] < 0.7 * l1[0], l1
    assert l1 == l2
    rec = reconstruct(m1, [v - 1 for v in views], 4, basic)
    assert rec.shape == targets.shape and rec.dtype == torch.uint8
    assert torch.equal(rec, reconstruct(m2, [v - 1 for v in views], 4, basic))
