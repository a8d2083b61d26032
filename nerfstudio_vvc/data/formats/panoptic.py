"""CMU Panoptic / Dynamic 3D Gaussians layout.

::

    <root>/train_meta.json   {"w", "h", "k": [T][N] 3x3, "w2c": [T][N] 4x4 OpenCV,
    <root>/test_meta.json     "fn": [T][N] "<cam>/<frame>.jpg", "cam_id": [T][N]}
    <root>/ims/<cam>/<frame>.jpg

Optional extra keys (written by our sample scene, ignored by D3DGS): ``fps``, ``near``, ``far``
(source units).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

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
    w2c_opencv_to_c2w_opengl,
)

META_FILES = ("train_meta.json", "test_meta.json")
DEFAULT_FPS = 30.0  # Panoptic HD cameras run at 29.97 fps
DEFAULT_NEAR = 0.5  # source units; cameras in the dome wall see the wall a few cm in front of them


def detect(root: Path) -> bool:
    return (root / "train_meta.json").exists()


def _parse_meta(path: Path) -> Tuple[dict, int, List[int], np.ndarray, np.ndarray, List[List[str]]]:
    meta = load_json(path)
    require_keys(meta, ["w", "h", "k", "w2c", "fn", "cam_id"], path)
    try:
        w, h = int(meta["w"]), int(meta["h"])
    except (TypeError, ValueError) as e:
        raise VvcDataError(path, f"'w'/'h' must be integers ({e})") from e
    if w <= 0 or h <= 0:
        raise VvcDataError(path, f"invalid image size w={w}, h={h}")
    lists = {k: meta[k] for k in ("k", "w2c", "fn", "cam_id")}
    for k, v in lists.items():
        if not isinstance(v, list) or not v:
            raise VvcDataError(path, f"'{k}' must be a non-empty list (one entry per frame)")
    num_t = len(lists["fn"])
    for k, v in lists.items():
        if len(v) != num_t:
            raise VvcDataError(path, f"'{k}' has {len(v)} frames but 'fn' has {num_t}")
    cams0 = lists["cam_id"][0]
    if not isinstance(cams0, list) or not cams0:
        raise VvcDataError(path, "'cam_id[0]' must be a non-empty list")
    try:
        cam_ids = [int(c) for c in cams0]
    except (TypeError, ValueError) as e:
        raise VvcDataError(path, f"'cam_id' entries must be integers ({e})") from e
    if len(set(cam_ids)) != len(cam_ids):
        raise VvcDataError(path, f"duplicate camera ids in 'cam_id[0]': {cam_ids}")
    n = len(cam_ids)
    for t in range(num_t):
        for k in ("k", "w2c", "fn"):
            if not isinstance(lists[k][t], list) or len(lists[k][t]) != n:
                got = len(lists[k][t]) if isinstance(lists[k][t], list) else "no"
                raise VvcDataError(
                    path, f"frame {t}: '{k}' has {got} cameras, expected {n} (cameras with different frame counts?)"
                )
        try:
            ids_t = [int(c) for c in lists["cam_id"][t]]
        except (TypeError, ValueError) as e:
            raise VvcDataError(path, f"frame {t}: 'cam_id' entries must be integers ({e})") from e
        if ids_t != cam_ids:
            raise VvcDataError(
                path,
                f"frame {t}: camera list {ids_t} differs from frame 0 {cam_ids} "
                "(cameras with different frame counts are not supported)",
            )
    K = as_array(lists["k"], (num_t, n, 3, 3), path, "'k'")
    w2c = as_array(lists["w2c"], (num_t, n, 4, 4), path, "'w2c'")
    fns = lists["fn"]
    for t in range(num_t):
        for i in range(n):
            if not isinstance(fns[t][i], str):
                raise VvcDataError(path, f"frame {t} camera {cam_ids[i]}: 'fn' must be a string")
    return meta, num_t, cam_ids, K, w2c, fns


def load(root: Path) -> RawVideoScene:
    root = Path(root)
    metas = []
    for name in META_FILES:
        p = root / name
        if name == "test_meta.json" and not p.exists():
            continue  # a test split is optional: the dataparser can hold out cameras itself
        metas.append((p, _parse_meta(p)))

    (p0, (meta0, num_t, _, _, _, _)) = metas[0]
    size = (int(meta0["w"]), int(meta0["h"]))
    cam_ids: List[int] = []
    Ks, w2cs, fns, test_ids = [], [], [], []
    for p, (meta, nt, ids, K, w2c, fn) in metas:
        if nt != num_t:
            raise VvcDataError(p, f"has {nt} frames but {p0.name} has {num_t} (cameras with different frame counts)")
        if (int(meta["w"]), int(meta["h"])) != size:
            raise VvcDataError(p, f"declared size {meta['w']}x{meta['h']} differs from {p0.name} {size[0]}x{size[1]}")
        dup = set(ids) & set(cam_ids)
        if dup:
            raise VvcDataError(p, f"camera id(s) {sorted(dup)} also appear in another meta file")
        if p.name == "test_meta.json":
            test_ids.extend(ids)
        cam_ids.extend(ids)
        Ks.append(K)
        w2cs.append(w2c)
        fns.append(fn)
    K_all = np.concatenate(Ks, axis=1)
    w2c_all = np.concatenate(w2cs, axis=1)
    fn_all: List[List[str]] = [sum((f[t] for f in fns), []) for t in range(num_t)]
    src_of_cam: List[Path] = sum(([p] * len(m[2]) for p, m in metas), [])

    order = np.argsort(cam_ids, kind="stable")
    cam_ids = [cam_ids[i] for i in order]
    K_all = K_all[:, order]
    w2c_all = w2c_all[:, order]
    fn_all = [[row[i] for i in order] for row in fn_all]
    src_of_cam = [src_of_cam[i] for i in order]

    # static rig? then keep a single calibration (saves memory for 150 frames x 31 cameras)
    static = np.allclose(K_all, K_all[:1], atol=1e-9) and np.allclose(w2c_all, w2c_all[:1], atol=1e-9)
    if static:
        K_all, w2c_all = K_all[:1], w2c_all[:1]
    for t in range(K_all.shape[0]):
        for i, cid in enumerate(cam_ids):
            what = f"camera {cid}" + ("" if static else f" frame {t}")
            check_intrinsics(K_all[t, i], src_of_cam[i], what)
            check_pose(w2c_all[t, i], src_of_cam[i], what, allow_reflection=True)
    c2w, mirrored = resolve_handedness(w2c_opencv_to_c2w_opengl(w2c_all), src_of_cam, [str(c) for c in cam_ids])

    ims = root / "ims"

    def image_path(frame: int, cam: int) -> Path:
        return ims / fn_all[frame][cam]

    fps = float(meta0.get("fps", DEFAULT_FPS))
    near = meta0.get("near", DEFAULT_NEAR)
    far = meta0.get("far", None)
    n = len(cam_ids)
    return RawVideoScene(
        format="panoptic",
        root=root,
        cam_ids=cam_ids,
        num_frames=num_t,
        fps=fps,
        width=np.full(n, size[0]),
        height=np.full(n, size[1]),
        intrinsics=K_all,
        c2w=c2w,
        default_test_cam_ids=sorted(test_ids),
        image_path=image_path,
        near_hint=float(near) if near is not None else None,
        far_hint=float(far) if far is not None else None,
        extra={"meta_files": [str(p) for p, _ in metas], "mirrored_world_z": mirrored},
    )
