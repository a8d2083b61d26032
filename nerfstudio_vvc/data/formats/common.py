"""Shared pieces of the multi-view video format readers.

Every reader turns its on-disk layout into a :class:`RawVideoScene`: per (frame, camera) image paths
plus OpenCV-style intrinsics and OpenGL camera-to-world matrices in *source* units. The dataparser then
selects frames/cameras, normalises the scene and builds nerfstudio ``Cameras``.

All problems with the input are reported as :class:`VvcDataError` whose message starts with the
offending path.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from nerfstudio_vvc.user_errors import InputError, install_excepthook

logger = logging.getLogger(__name__)
# OpenCV (x right, y down, z forward) <-> OpenGL (x right, y up, z backward) camera axes.
OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])


class VvcDataError(ValueError, InputError):
    """Bad multi-view video input. The message starts with the offending file or folder.

    Uncaught, it is reported as one line (``<command>: error: <file>: <problem>``, see
    ``nerfstudio_vvc.user_errors``; ``NSVVC_DEBUG=1`` shows the traceback)."""

    def __init__(self, path: Any, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


@dataclass
class RawVideoScene:
    """A multi-view video in source units, before frame/camera selection and normalisation.

    Shapes: F = frames available in the source, C = cameras (sorted by ``cam_ids``).
    ``intrinsics``/``c2w`` may have a leading frame axis of size 1 (static rig) or F.
    """

    format: str
    root: Path
    cam_ids: List[int]
    num_frames: int
    fps: float
    width: np.ndarray  # [C] int
    height: np.ndarray  # [C] int
    intrinsics: np.ndarray  # [1 or F, C, 3, 3] OpenCV K (pixel centres at +0.5)
    c2w: np.ndarray  # [1 or F, C, 4, 4] OpenGL camera-to-world
    default_test_cam_ids: List[int]
    # image_path(frame, cam_index) for sources that have images on disk. Video sources give None and
    # implement ``materialize`` instead.
    image_path: Optional[Callable[[int, int], Path]] = None
    # materialize(frames, cam_indices, cache_dir, downscale) -> {(frame, cam_index): Path}
    materialize: Optional[Callable[..., Dict[tuple, Path]]] = None
    near_hint: Optional[float] = None  # source units
    far_hint: Optional[float] = None  # source units
    forward_facing: bool = False
    extra: Dict[str, Any] = field(default_factory=dict)

    def K(self, frame: int, cam: int) -> np.ndarray:
        return self.intrinsics[frame if self.intrinsics.shape[0] > 1 else 0, cam]

    def pose(self, frame: int, cam: int) -> np.ndarray:
        return self.c2w[frame if self.c2w.shape[0] > 1 else 0, cam]


install_excepthook()


# --------------------------------------------------------------------------------------------------
# JSON helpers


def load_json(path: Path) -> Any:
    if not path.exists():
        raise VvcDataError(path, "file not found")
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise VvcDataError(path, f"malformed JSON ({e})") from e
    except (OSError, UnicodeDecodeError) as e:
        raise VvcDataError(path, f"cannot read file ({e})") from e


def require_keys(obj: Any, keys: Sequence[str], path: Path, where: str = "") -> None:
    if not isinstance(obj, dict):
        raise VvcDataError(path, f"expected a JSON object{where}, got {type(obj).__name__}")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise VvcDataError(path, f"missing key(s) {missing}{where}")


def as_array(value: Any, shape: tuple, path: Path, what: str) -> np.ndarray:
    """Convert ``value`` to a float64 array of the given shape (``-1`` = any) or raise."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise VvcDataError(path, f"{what} is not a numeric array ({e})") from e
    if arr.ndim != len(shape) or any(s != -1 and s != a for s, a in zip(shape, arr.shape)):
        raise VvcDataError(path, f"{what} has shape {tuple(arr.shape)}, expected {shape}")
    return arr


# --------------------------------------------------------------------------------------------------
# Pose / intrinsics validation


def check_pose(c2w: np.ndarray, path: Path, what: str, allow_reflection: bool = False) -> None:
    """Raise if a 4x4 (or 3x4) pose is non-finite or its rotation is singular / not a rotation.

    ``allow_reflection``: accept det -1 (a rotation times a mirror; see ``resolve_handedness``)."""
    if not np.all(np.isfinite(c2w)):
        raise VvcDataError(path, f"{what}: pose contains non-finite values")
    r = c2w[:3, :3]
    det = float(np.linalg.det(r))
    if abs(det) < 1e-6:
        raise VvcDataError(path, f"{what}: pose rotation is singular (det={det:.3g})")
    # allow a uniform scale (some tools store scaled rotations) but not shear (nor a reflection, unless asked)
    s = abs(det) ** (1.0 / 3.0)
    if (det < 0 and not allow_reflection) or not np.allclose(r.T @ r / (s * s), np.eye(3), atol=1e-2):
        raise VvcDataError(path, f"{what}: pose rotation is not a proper rotation (det={det:.3g})")


MIRROR_WORLD_Z = np.diag([1.0, 1.0, -1.0, 1.0])
"""The world mirror applied to a left-handed capture: z -> -z."""


def resolve_handedness(c2w: np.ndarray, files: Sequence[Path], names: Sequence[str]) -> tuple:
    """Make every camera rotation proper: ``(c2w, mirrored)``.

    ``c2w`` [T, C, 4, 4] (T = 1 for a static rig), ``files[c]`` / ``names[c]`` the file and name of camera c.
    All rotations proper: unchanged.  All reflected (det -1: a left-handed world frame, as some calibration
    exports write): the world z axis is mirrored for every camera (``MIRROR_WORLD_Z @ c2w``), which keeps
    every pixel's ray (a point's camera coordinates are unchanged), with a warning.  A mix: VvcDataError
    naming the file and a camera of the minority kind, since no single world frame fits both."""
    det = np.linalg.det(c2w[..., :3, :3])  # [T, C]
    neg = det < 0
    if not neg.any():
        return c2w, False
    if neg.all():
        logger.warning("%s: every camera rotation is reflected (det -1, a left-handed world frame); "
                       "mirroring the world z axis to make them proper rotations", files[0])
        return MIRROR_WORLD_Z @ c2w, True
    odd = neg if neg.sum() <= (~neg).sum() else ~neg
    t, c = (int(v) for v in np.argwhere(odd)[0])
    kind = "a reflected rotation (det -1)" if neg[t, c] else "a proper rotation (det +1)"
    when = f" frame {t}" if not np.allclose(c2w, c2w[:1]) else ""
    raise VvcDataError(
        files[c],
        f"camera {names[c]}{when} has {kind} while {int((~odd).sum())} other camera poses have the opposite "
        f"handedness ({int(neg.sum())} reflected, {int((~neg).sum())} proper): the capture mixes "
        f"left- and right-handed world frames",
    )


def normalize_rotation(c2w: np.ndarray) -> np.ndarray:
    """Project the rotation part of (..., 4, 4) poses to the nearest rotation (removes scale/noise)."""
    out = c2w.copy()
    u, _, vt = np.linalg.svd(out[..., :3, :3])
    out[..., :3, :3] = u @ vt
    return out


def check_intrinsics(K: np.ndarray, path: Path, what: str) -> None:
    if not np.all(np.isfinite(K)):
        raise VvcDataError(path, f"{what}: intrinsics contain non-finite values")
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise VvcDataError(path, f"{what}: focal lengths must be positive (fx={K[0, 0]}, fy={K[1, 1]})")


def w2c_opencv_to_c2w_opengl(w2c: np.ndarray) -> np.ndarray:
    """``c2w = inv(w2c) @ diag(1, -1, -1, 1)`` for (..., 4, 4) arrays."""
    return np.linalg.inv(w2c) @ OPENCV_TO_OPENGL


# --------------------------------------------------------------------------------------------------
# Image checks


def image_size(path: Path) -> tuple:
    """(width, height) from the image header; raises VvcDataError if missing/unreadable."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise VvcDataError(path, "image file not found")
    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise VvcDataError(path, f"cannot read image ({e})") from e


def check_decodable(path: Path) -> tuple:
    """Fully decode an image (catches truncated files); returns (width, height)."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise VvcDataError(path, "image file not found")
    try:
        with Image.open(path) as im:
            im.load()
            return im.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise VvcDataError(path, f"cannot decode image ({e})") from e


def check_images(
    paths: Sequence[Sequence[Path]],
    width: Sequence[int],
    height: Sequence[int],
    check_headers: bool = True,
) -> None:
    """Validate a [frames][cameras] grid of image paths against declared sizes.

    All files must exist; the first image of every camera is fully decoded; the headers of all
    others are read (cheap) so a size change anywhere is reported.
    """
    if not paths:
        return
    num_cams = len(paths[0])
    # existence first: cheapest, and the most common problem
    for row in paths:
        for p in row:
            if not os.path.isfile(p):
                raise VvcDataError(p, "image file not found")
    for c in range(num_cams):
        w, h = check_decodable(Path(paths[0][c]))
        if (w, h) != (int(width[c]), int(height[c])):
            raise VvcDataError(
                paths[0][c], f"image size {w}x{h} differs from the declared {int(width[c])}x{int(height[c])}"
            )
    if check_headers:
        for row in paths[1:]:
            for c, p in enumerate(row):
                w, h = image_size(Path(p))
                if (w, h) != (int(width[c]), int(height[c])):
                    raise VvcDataError(
                        p,
                        f"image size {w}x{h} differs from {int(width[c])}x{int(height[c])} "
                        f"(first frame of the same camera / declared size)",
                    )


# --------------------------------------------------------------------------------------------------
# Cache folders


def _dir_writable(path: Path) -> bool:
    """Writable for us *and* not marked read-only (root ignores permission bits, we respect them)."""
    try:
        st = path.stat()
    except OSError:
        return False
    if not (st.st_mode & stat.S_IWUSR) or not os.access(path, os.W_OK):
        return False
    return True


def cache_root(data: Path, cache_dir: Optional[Path] = None) -> Path:
    """Where derived files (downscaled images, decoded video frames) for ``data`` are written.

    Order: explicit ``cache_dir`` > ``$NERFSTUDIO_VVC_CACHE/<hash>`` > ``<data>/.vvc_cache`` if the
    data folder is writable > ``~/.cache/nerfstudio_vvc/<hash>`` (hash of the absolute data path).
    """
    if cache_dir is not None:
        return Path(cache_dir)
    digest = hashlib.sha1(str(Path(data).resolve()).encode()).hexdigest()[:16]
    env = os.environ.get("NERFSTUDIO_VVC_CACHE")
    if env:
        return Path(env) / digest
    if _dir_writable(Path(data)):
        return Path(data) / ".vvc_cache"
    return Path.home() / ".cache" / "nerfstudio_vvc" / digest


def atomic_save_image(image: Any, out: Path) -> None:
    """Save a PIL image via a temporary file + rename, so concurrent readers never see half a file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp{out.suffix}")
    image.save(tmp)
    os.replace(tmp, out)


def downscaled_size(width: int, height: int, factor: int) -> tuple:
    return max(1, int(width) // factor), max(1, int(height) // factor)


def downscale_image(src: Path, dst: Path, factor: int) -> None:
    """Write ``src`` resized by 1/factor (floor) to ``dst`` (PNG), unless an up-to-date copy exists."""
    from PIL import Image

    if dst.exists() and dst.stat().st_mtime >= src.stat().st_mtime:
        return
    try:
        with Image.open(src) as im:
            im.load()
            w, h = downscaled_size(im.size[0], im.size[1], factor)
            if im.mode not in ("RGB", "RGBA", "L"):
                im = im.convert("RGB")
            small = im.resize((w, h), Image.Resampling.BOX if w * factor == im.size[0] else Image.Resampling.LANCZOS)
    except OSError as e:
        raise VvcDataError(src, f"cannot decode image ({e})") from e
    atomic_save_image(small, dst)
