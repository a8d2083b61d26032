"""nerfstudio ``transforms.json`` extended with time and camera ids.

Each entry of ``frames`` needs ``file_path`` (relative to the json's folder), ``transform_matrix``
(4x4 OpenGL camera-to-world, nerfstudio convention) and
- a time: ``frame_idx`` or ``frame`` (integer) or ``time`` (float, normalised [0, 1] or seconds);
- a camera: ``camera_id`` / ``cam_id`` (int or string); without one, the parent folder of
  ``file_path`` names the camera (e.g. ``images/cam03/000010.png``).
Intrinsics ``fl_x``, ``fl_y``, ``cx``, ``cy``, ``w``, ``h`` (or ``camera_angle_x``) are read per frame,
falling back to the top level. Split: per-frame ``split`` ("train"/"test"/"val", consistent per
camera) or a top-level ``test_camera_ids`` list; otherwise the first camera is the test camera.
Optional top level: ``fps``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from nerfstudio_vvc.data.formats.common import (
    RawVideoScene,
    VvcDataError,
    as_array,
    check_intrinsics,
    check_pose,
    load_json,
    require_keys,
    resolve_handedness,
)

DEFAULT_FPS = 30.0


def detect(root: Path) -> bool:
    return (root / "transforms.json").exists()


def _cam_key(frame: dict, path: Path, idx: int) -> Any:
    for k in ("camera_id", "cam_id"):
        if k in frame:
            return frame[k]
    parent = Path(frame["file_path"]).parent
    if str(parent) in ("", "."):
        raise VvcDataError(
            path, f"frame {idx}: no 'camera_id'/'cam_id' and file_path has no camera folder to derive it from"
        )
    return str(parent)


def _cam_int_ids(keys: List[Any]) -> List[int]:
    """Integer camera ids: the keys themselves, or trailing digits of string keys, else sorted order."""
    if all(isinstance(k, int) for k in keys):
        return list(keys)
    digits = [re.search(r"(\d+)$", str(k)) for k in keys]
    if all(digits):
        ids = [int(m.group(1)) for m in digits]  # type: ignore[union-attr]
        if len(set(ids)) == len(ids):
            return ids
    return list(range(len(keys)))


def _intrinsic(frame: dict, meta: dict, key: str) -> Any:
    return frame[key] if key in frame else meta.get(key)


def load(root: Path) -> RawVideoScene:
    root = Path(root)
    path = root / "transforms.json"
    meta = load_json(path)
    require_keys(meta, ["frames"], path)
    frames = meta["frames"]
    if not isinstance(frames, list) or not frames:
        raise VvcDataError(path, "'frames' must be a non-empty list")

    # ---- time axis
    for i, fr in enumerate(frames):
        require_keys(fr, ["file_path", "transform_matrix"], path, f" in frames[{i}]")
    if all(("frame_idx" in fr or "frame" in fr) for fr in frames):
        try:
            labels = [int(fr.get("frame_idx", fr.get("frame"))) for fr in frames]
        except (TypeError, ValueError) as e:
            raise VvcDataError(path, f"'frame_idx'/'frame' must be integers ({e})") from e
        times_sec = None
    elif all("time" in fr for fr in frames):
        try:
            tvals = [float(fr["time"]) for fr in frames]
        except (TypeError, ValueError) as e:
            raise VvcDataError(path, f"'time' must be a number ({e})") from e
        if not all(math.isfinite(t) for t in tvals):
            raise VvcDataError(path, "'time' contains non-finite values")
        labels = [round(t * 1e6) for t in tvals]  # exact grouping of equal timestamps
        times_sec = tvals
    else:
        missing = next(i for i, fr in enumerate(frames) if not ({"frame_idx", "frame", "time"} & set(fr)))
        raise VvcDataError(path, f"frames[{missing}] has no 'time', 'frame_idx' or 'frame' key (all frames need one)")
    uniq = sorted(set(labels))
    t_index = {v: i for i, v in enumerate(uniq)}
    num_t = len(uniq)

    fps = meta.get("fps")
    if fps is None and times_sec is not None and num_t > 1:
        ts = np.array(sorted(set(times_sec)))
        if ts.max() > 1.0 + 1e-9:  # seconds
            fps = 1.0 / float(np.median(np.diff(ts)))
    fps = float(fps) if fps is not None else DEFAULT_FPS

    # ---- cameras
    keys = [_cam_key(fr, path, i) for i, fr in enumerate(frames)]
    try:
        ukeys = sorted(set(keys), key=lambda k: (str(type(k)), k))
    except TypeError as e:
        raise VvcDataError(path, f"camera ids must be all ints or all strings ({e})") from e
    int_ids = _cam_int_ids(ukeys)
    order = np.argsort(int_ids, kind="stable")
    ukeys = [ukeys[i] for i in order]
    cam_ids = [int_ids[i] for i in order]
    c_index = {k: i for i, k in enumerate(ukeys)}
    n = len(ukeys)

    grid: List[List[int]] = [[-1] * n for _ in range(num_t)]
    for i, (fr, k, lab) in enumerate(zip(frames, keys, labels)):
        t, c = t_index[lab], c_index[k]
        if grid[t][c] != -1:
            raise VvcDataError(
                path, f"frames[{i}] repeats camera {k!r} at time/frame {lab} (already frames[{grid[t][c]}])"
            )
        grid[t][c] = i
    counts = [sum(grid[t][c] != -1 for t in range(num_t)) for c in range(n)]
    if min(counts) != num_t:
        c = int(np.argmin(counts))
        raise VvcDataError(
            path,
            f"camera {ukeys[c]!r} has {counts[c]} frames but there are {num_t} time steps "
            "(cameras with different frame counts)",
        )

    # ---- intrinsics / poses
    K = np.zeros((num_t, n, 3, 3))
    c2w = np.zeros((num_t, n, 4, 4))
    width = np.zeros(n, dtype=np.int64)
    height = np.zeros(n, dtype=np.int64)
    rel: List[List[str]] = [[""] * n for _ in range(num_t)]
    for t in range(num_t):
        for c in range(n):
            i = grid[t][c]
            fr = frames[i]
            where = f"frames[{i}]"
            w, h = _intrinsic(fr, meta, "w"), _intrinsic(fr, meta, "h")
            if w is None or h is None:
                raise VvcDataError(path, f"{where}: missing image size 'w'/'h' (per frame or top level)")
            try:
                w, h = int(w), int(h)
                fx = _intrinsic(fr, meta, "fl_x")
                if fx is None:
                    ang = _intrinsic(fr, meta, "camera_angle_x")
                    if ang is None:
                        raise VvcDataError(path, f"{where}: missing focal length 'fl_x' (or 'camera_angle_x')")
                    fx = 0.5 * w / math.tan(0.5 * float(ang))
                fx = float(fx)
                fy = _intrinsic(fr, meta, "fl_y")
                fy = float(fy) if fy is not None else fx
                cx = _intrinsic(fr, meta, "cx")
                cy = _intrinsic(fr, meta, "cy")
                cx = float(cx) if cx is not None else w / 2.0
                cy = float(cy) if cy is not None else h / 2.0
            except (TypeError, ValueError) as e:
                raise VvcDataError(path, f"{where}: intrinsics must be numbers ({e})") from e
            if t == 0:
                width[c], height[c] = w, h
            elif (w, h) != (width[c], height[c]):
                raise VvcDataError(
                    path, f"{where}: size {w}x{h} differs from {width[c]}x{height[c]} of camera {ukeys[c]!r} at frame 0"
                )
            K[t, c] = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]
            check_intrinsics(K[t, c], path, where)
            m = as_array(fr["transform_matrix"], (-1, 4), path, f"{where} transform_matrix")
            if m.shape[0] == 3:
                m = np.concatenate([m, [[0, 0, 0, 1]]], 0)
            elif m.shape[0] != 4:
                raise VvcDataError(path, f"{where} transform_matrix has shape {m.shape}, expected (4, 4)")
            check_pose(m, path, where, allow_reflection=True)
            c2w[t, c] = m
            if not isinstance(fr["file_path"], str):
                raise VvcDataError(path, f"{where}: 'file_path' must be a string")
            rel[t][c] = fr["file_path"]

    c2w, mirrored = resolve_handedness(c2w, [path] * n, [repr(k) for k in ukeys])
    static = np.allclose(K, K[:1]) and np.allclose(c2w, c2w[:1])
    if static:
        K, c2w = K[:1], c2w[:1]

    # ---- split
    test_ids: List[int] = []
    splits: Dict[int, set] = {}
    for fr, k in zip(frames, keys):
        if "split" in fr:
            splits.setdefault(c_index[k], set()).add("test" if fr["split"] in ("test", "val") else str(fr["split"]))
    if splits:
        for c, s in splits.items():
            if len(s) > 1:
                raise VvcDataError(path, f"camera {ukeys[c]!r} has frames in several splits {sorted(s)}")
        test_ids = [cam_ids[c] for c, s in splits.items() if "test" in s]
    elif "test_camera_ids" in meta:
        tc = meta["test_camera_ids"]
        if not isinstance(tc, list):
            raise VvcDataError(path, "'test_camera_ids' must be a list")
        lookup = {str(k): cam_ids[i] for i, k in enumerate(ukeys)}
        lookup.update({str(cid): cid for cid in cam_ids})
        for k in tc:
            if str(k) not in lookup:
                raise VvcDataError(path, f"'test_camera_ids' names unknown camera {k!r}")
        test_ids = sorted({lookup[str(k)] for k in tc})
    elif n > 1:
        test_ids = [cam_ids[0]]

    def image_path(frame: int, cam: int) -> Path:
        return root / rel[frame][cam]

    near = meta.get("near", meta.get("near_plane"))
    far = meta.get("far", meta.get("far_plane"))
    return RawVideoScene(
        format="transforms",
        root=root,
        cam_ids=cam_ids,
        num_frames=num_t,
        fps=fps,
        width=width,
        height=height,
        intrinsics=K,
        c2w=c2w,
        default_test_cam_ids=sorted(test_ids),
        image_path=image_path,
        near_hint=float(near) if near is not None else None,
        far_hint=float(far) if far is not None else None,
        extra={"camera_keys": ukeys, "time_labels": uniq, "meta_files": [str(path)], "mirrored_world_z": mirrored},
    )
