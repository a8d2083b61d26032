"""Offline image-quality metrics: PSNR, SSIM, LPIPS(AlexNet, v0.1).

Input convention (all functions)
--------------------------------
* ``torch.Tensor`` or ``numpy.ndarray``;
* 3-D arrays are **HWC** (one image, C = 3 or 1), 4-D arrays are **BCHW** (a batch);
* floating point values are RGB in ``[0, 1]`` (not clipped here — clip your render first);
  ``uint8`` arrays are divided by 255.
* ``pred`` and ``gt`` must have identical shapes.

For a batch, each function returns the **mean over images of the per-image metric** (for PSNR
this is the mean of per-image PSNRs, as nerfstudio's eval does, not the PSNR of the pooled MSE).

* PSNR: ``10·log10(1 / MSE)`` over all pixels and channels, computed in float64, data range 1.
  Identical images give ``inf``.
* SSIM: ``torchmetrics.functional.structural_similarity_index_measure`` with its defaults
  (Gaussian window 11, σ = 1.5, K1 = 0.01, K2 = 0.03, data_range = 1) — the same function
  nerfstudio 1.1.5 uses for its ``ssim`` eval metric.
* LPIPS: AlexNet-LPIPS v0.1 (Zhang et al. 2018, ``lpips`` package semantics with inputs mapped
  ``[0,1] → [-1,1]``), computed by our own torch module from offline weights (see
  :mod:`nerfstudio_vvc.eval.lpips_weights`). Nothing is downloaded at run time: if the weights file
  is missing, :func:`lpips` returns ``None`` and warns once with the path and the install command.
  Lower is better; LPIPS(x, x) = 0.
"""

from __future__ import annotations

import math
import threading
import warnings
from typing import Dict, Optional, Union

import numpy as np
import torch

from nerfstudio_vvc.eval import lpips_weights as _lw

ArrayLike = Union[torch.Tensor, np.ndarray]

__all__ = [
    "psnr",
    "ssim",
    "lpips",
    "lpips_available",
    "AlexLPIPS",
    "load_lpips_model",
    "ImageMetrics",
    "image_metrics",
    "to_bchw",
]


def to_bchw(x: ArrayLike, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Convert an HWC image or BCHW batch (tensor or ndarray, float [0,1] or uint8) to BCHW float."""
    if isinstance(x, np.ndarray):
        is_u8 = x.dtype == np.uint8
        t = torch.from_numpy(np.ascontiguousarray(x))
    elif isinstance(x, torch.Tensor):
        is_u8 = x.dtype == torch.uint8
        t = x
    else:
        raise TypeError(f"expected torch.Tensor or numpy.ndarray, got {type(x).__name__}")
    t = t.detach().to(dtype)
    if is_u8:
        t = t / 255.0
    if t.ndim == 3:
        t = t.permute(2, 0, 1).unsqueeze(0)
    elif t.ndim != 4:
        raise ValueError(f"expected HWC (3-D) or BCHW (4-D) image, got shape {tuple(t.shape)}")
    return t


def _pair(pred: ArrayLike, gt: ArrayLike, dtype: torch.dtype = torch.float32):
    p, g = to_bchw(pred, dtype), to_bchw(gt, dtype)
    if p.shape != g.shape:
        raise ValueError(f"pred and gt shapes differ: {tuple(p.shape)} vs {tuple(g.shape)}")
    return p, g.to(p.device)


def psnr(pred: ArrayLike, gt: ArrayLike) -> float:
    """PSNR in dB (data range 1), mean of per-image values for a batch; ``inf`` if identical."""
    p, g = _pair(pred, gt, torch.float64)
    mse = ((p - g) ** 2).flatten(1).mean(dim=1)
    vals = [math.inf if m == 0 else -10.0 * math.log10(m) for m in mse.tolist()]
    return float(np.mean(vals))


def ssim(pred: ArrayLike, gt: ArrayLike) -> float:
    """SSIM (torchmetrics, Gaussian 11/1.5, data range 1), mean over the batch."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    p, g = _pair(pred, gt, torch.float32)
    return float(structural_similarity_index_measure(p, g, data_range=1.0))


class AlexLPIPS(torch.nn.Module):
    """LPIPS v0.1 with an AlexNet backbone, built from torchvision's architecture (no download).

    ``forward(pred, gt)`` takes BCHW float tensors in ``[0, 1]`` and returns a ``(B,)`` tensor.
    """

    # lpips.ScalingLayer constants (inputs in [-1, 1])
    _SHIFT = (-0.030, -0.088, -0.188)
    _SCALE = (0.458, 0.448, 0.450)
    # indices in alexnet().features after which a ReLU output is tapped
    _TAPS = (1, 4, 7, 9, 11)

    def __init__(self, arrays: Optional[Dict[str, np.ndarray]] = None):
        super().__init__()
        import torchvision

        self.features = torchvision.models.alexnet(weights=None).features[: self._TAPS[-1] + 1]
        for m in self.features:
            if isinstance(m, torch.nn.ReLU):
                m.inplace = False
        self.lins = torch.nn.ModuleList(
            torch.nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in _lw.LIN_CHANNELS
        )
        self.register_buffer("shift", torch.tensor(self._SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(self._SCALE).view(1, 3, 1, 1))
        if arrays is not None:
            self.load_arrays(arrays)
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    def load_arrays(self, arrays: Dict[str, np.ndarray]) -> None:
        _lw.validate_arrays(arrays)
        state = {}
        for idx, *_ in _lw.ALEX_CONVS:
            state[f"features.{idx}.weight"] = torch.from_numpy(arrays[f"features.{idx}.weight"])
            state[f"features.{idx}.bias"] = torch.from_numpy(arrays[f"features.{idx}.bias"])
        for i in range(len(_lw.LIN_CHANNELS)):
            state[f"lins.{i}.weight"] = torch.from_numpy(arrays[f"lin{i}.weight"])
        missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [k for k in missing if k not in ("shift", "scale")]
        if missing or unexpected:
            raise ValueError(f"LPIPS weights mismatch: missing={missing}, unexpected={unexpected}")

    def layer_features(self, x: torch.Tensor):
        x = (x * 2.0 - 1.0 - self.shift) / self.scale
        outs = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self._TAPS:
                outs.append(x)
        return outs

    def forward(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        f0, f1 = self.layer_features(pred), self.layer_features(gt)
        total = 0.0
        for lin, a, b in zip(self.lins, f0, f1):
            a = a / (torch.sqrt(torch.sum(a * a, dim=1, keepdim=True)) + 1e-10)
            b = b / (torch.sqrt(torch.sum(b * b, dim=1, keepdim=True)) + 1e-10)
            total = total + lin((a - b) ** 2).mean(dim=(2, 3))
        return total.view(-1)


_MODEL_CACHE: Dict[str, AlexLPIPS] = {}
_LOCK = threading.Lock()
_WARNED_MISSING = False


def _warn_missing() -> None:
    global _WARNED_MISSING
    if _WARNED_MISSING:
        return
    _WARNED_MISSING = True
    where = ", ".join(str(p) for p in _lw.candidate_paths())
    warnings.warn(
        f"LPIPS disabled: offline AlexNet-LPIPS weights not found (looked for {where}). "
        f"Install them once with `{_lw.INSTALL_COMMAND}` (run from the repo root inside the venv; "
        f"`make` does this) or point ${_lw.ENV_VAR} at the .npz. LPIPS values are reported as None.",
        RuntimeWarning,
        stacklevel=3,
    )


def load_lpips_model(device: Union[str, torch.device] = "cpu") -> Optional[AlexLPIPS]:
    """Cached :class:`AlexLPIPS` on ``device``, or ``None`` (+ one warning) if weights are missing."""
    key = str(torch.device(device))
    with _LOCK:
        if key in _MODEL_CACHE:
            return _MODEL_CACHE[key]
        path = _lw.find_weights()
        if path is None:
            _warn_missing()
            return None
        model = AlexLPIPS(_lw.load_arrays(path)).to(device)
        _MODEL_CACHE[key] = model
        return model


def lpips_available() -> bool:
    return _lw.find_weights() is not None


def lpips(pred: ArrayLike, gt: ArrayLike, device: Union[str, torch.device, None] = None) -> Optional[float]:
    """LPIPS-Alex v0.1 (mean over the batch), or ``None`` if the offline weights are not installed."""
    p, g = _pair(pred, gt, torch.float32)
    dev = torch.device(device) if device is not None else p.device
    model = load_lpips_model(dev)
    if model is None:
        return None
    with torch.no_grad():
        return float(model(p.to(dev), g.to(dev)).mean())


class ImageMetrics:
    """Callable bundling the three metrics: ``ImageMetrics()(pred, gt) -> {"psnr_db", "ssim", "lpips"}``.

    ``lpips`` is ``None`` when disabled (``use_lpips=False``) or when the offline weights are missing.
    """

    def __init__(self, use_lpips: bool = True, device: Union[str, torch.device, None] = None):
        self.use_lpips = use_lpips
        self.device = device

    def __call__(self, pred: ArrayLike, gt: ArrayLike) -> Dict[str, Optional[float]]:
        return {
            "psnr_db": psnr(pred, gt),
            "ssim": ssim(pred, gt),
            "lpips": lpips(pred, gt, device=self.device) if self.use_lpips else None,
        }


def image_metrics(pred: ArrayLike, gt: ArrayLike, use_lpips: bool = True) -> Dict[str, Optional[float]]:
    """Functional form of :class:`ImageMetrics`."""
    return ImageMetrics(use_lpips=use_lpips)(pred, gt)
