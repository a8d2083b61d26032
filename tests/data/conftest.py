"""Builders for tiny synthetic multi-view video datasets (8x6 images) in every supported layout."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np
import pytest
import torch

W, H = 8, 6
REPO = Path(__file__).resolve().parents[2]
PANOPTIC_REAL = REPO.parent / "shared" / "data" / "panoptic-basketball"


def look_at_w2c(eye, target=(0.0, 0.0, 0.0), up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """OpenCV world-to-camera looking from eye to target."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-6:
        x = np.cross(z, [0.0, 1.0, 0.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])  # rows: camera axes in world
    w2c = np.eye(4)
    w2c[:3, :3] = R
    w2c[:3, 3] = -R @ eye
    return w2c


def ring_w2c(n: int, radius: float = 4.0, target=(0.3, -0.2, 0.5)) -> List[np.ndarray]:
    out = []
    for i in range(n):
        a = 2 * math.pi * i / n
        eye = np.array([radius * math.cos(a), radius * math.sin(a), 1.0 + 0.3 * (i % 2)]) + np.array(target)
        out.append(look_at_w2c(eye, target))
    return out


def intrinsics(i: int, w: int = W, h: int = H) -> np.ndarray:
    return np.array([[6.0 + i, 0, w / 2 + 0.3], [0, 6.5 + i, h / 2 - 0.2], [0, 0, 1.0]])


def write_image(path: Path, w: int = W, h: int = H, seed: int = 0) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)


def project_opencv(K: np.ndarray, w2c: np.ndarray, X: np.ndarray) -> np.ndarray:
    pc = w2c[:3, :3] @ X + w2c[:3, 3]
    uv = K @ (pc / pc[2])
    return uv[:2]


def project_nerfstudio(cameras, i: int, X_out: np.ndarray) -> np.ndarray:
    """Project an output-space point through camera i of a nerfstudio Cameras (OpenGL c2w)."""
    c2w = cameras.camera_to_worlds[i].double().numpy()
    pc = c2w[:3, :3].T @ (X_out - c2w[:3, 3])  # x right, y up, z back
    fx, fy = float(cameras.fx[i]), float(cameras.fy[i])
    cx, cy = float(cameras.cx[i]), float(cameras.cy[i])
    return np.array([fx * pc[0] / -pc[2] + cx, fy * -pc[1] / -pc[2] + cy])


def ray_distance(cameras, i: int, uv: np.ndarray, X_out: np.ndarray) -> float:
    """Distance from X_out to the ray nerfstudio generates through pixel position uv."""
    rb = cameras.generate_rays(camera_indices=i, coords=torch.tensor([[uv[1], uv[0]]], dtype=torch.float32))
    o = rb.origins.reshape(3).double().numpy()
    d = rb.directions.reshape(3).double().numpy()
    v = X_out - o
    return float(np.linalg.norm(v - (v @ d) * d))


def to_output_space(outputs, X: np.ndarray) -> np.ndarray:
    T = outputs.dataparser_transform.double().numpy()
    return (T[:, :3] @ X + T[:, 3]) * outputs.dataparser_scale


@pytest.fixture
def make_panoptic(tmp_path) -> Callable[..., Path]:
    """Panoptic/D3DGS layout: train cams 0..n_train-1, test cams after; returns the folder."""

    def build(
        n_train: int = 3, n_test: int = 1, frames: int = 3, root: Optional[Path] = None, ext: str = "jpg"
    ) -> Path:
        root = root or tmp_path / "panoptic"
        poses = ring_w2c(n_train + n_test)
        for split, ids in (("train", range(n_train)), ("test", range(n_train, n_train + n_test))):
            meta = {"w": W, "h": H, "k": [], "w2c": [], "fn": [], "cam_id": []}
            for t in range(frames):
                meta["k"].append([intrinsics(i).tolist() for i in ids])
                meta["w2c"].append([poses[i].tolist() for i in ids])
                meta["fn"].append([f"{i}/{t:06d}.{ext}" for i in ids])
                meta["cam_id"].append(list(ids))
                for i in ids:
                    write_image(root / "ims" / str(i) / f"{t:06d}.{ext}", seed=t * 100 + i)
            (root / f"{split}_meta.json").write_text(json.dumps(meta))
        return root

    return build


@pytest.fixture
def make_transforms(tmp_path) -> Callable[..., Path]:
    def build(
        n_cams: int = 3,
        frames: int = 3,
        time_key: str = "time",
        cam_key: Optional[str] = "camera_id",
        split: bool = False,
        root: Optional[Path] = None,
    ) -> Path:
        root = root or tmp_path / "transforms"
        poses = ring_w2c(n_cams)
        out = {"w": W, "h": H, "fl_x": 7.0, "fl_y": 7.5, "cx": 4.2, "cy": 2.9, "frames": []}
        for t in range(frames):
            for i in range(n_cams):
                rel = f"images/cam{i:02d}/{t:04d}.png"
                write_image(root / rel, seed=t * 100 + i)
                c2w = np.linalg.inv(poses[i]) @ np.diag([1.0, -1.0, -1.0, 1.0])
                fr = {"file_path": rel, "transform_matrix": c2w.tolist()}
                if time_key == "time":
                    fr["time"] = t / max(frames - 1, 1)
                elif time_key == "seconds":
                    fr["time"] = 10.0 + t / 25.0
                else:
                    fr[time_key] = t
                if cam_key:
                    fr[cam_key] = i
                if i == 1:  # per-frame intrinsics override for one camera
                    fr.update({"fl_x": 9.0, "fl_y": 9.0, "cx": 3.9, "cy": 3.1})
                if split:
                    fr["split"] = "test" if i == n_cams - 1 else "train"
                out["frames"].append(fr)
        (root / "transforms.json").write_text(json.dumps(out))
        return root

    return build


N3DV_W, N3DV_H = 32, 24


def write_video(path: Path, frames: int, w: int = N3DV_W, h: int = N3DV_H, seed: int = 0) -> None:
    import av

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=30)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for t in range(frames):
            img = np.full((h, w, 3), 20 * t % 255, dtype=np.uint8) + rng.integers(0, 30, (h, w, 3), dtype=np.uint8)
            for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


def llff_rows(w2cs: List[np.ndarray], focal: float, h: int, w: int) -> np.ndarray:
    """poses_bounds.npy rows from OpenCV w2c (LLFF columns: down, right, back)."""
    rows = []
    for w2c in w2cs:
        c2w_cv = np.linalg.inv(w2c)  # columns: right, down, forward
        right, down, fwd, t = c2w_cv[:3, 0], c2w_cv[:3, 1], c2w_cv[:3, 2], c2w_cv[:3, 3]
        m = np.stack([down, right, -fwd, t, np.array([h, w, focal])], axis=1)  # 3x5
        rows.append(np.concatenate([m.reshape(-1), [1.0, 10.0]]))
    return np.array(rows)


@pytest.fixture
def make_n3dv(tmp_path) -> Callable[..., Path]:
    def build(n_cams: int = 3, frames: int = 4, root: Optional[Path] = None, frame_counts=None) -> Path:
        root = root or tmp_path / "n3dv"
        root.mkdir(parents=True, exist_ok=True)
        poses = ring_w2c(n_cams, radius=3.0)
        # calibrated at 2x the video resolution (as N3DV: hwf for 2704x2028, videos may be smaller)
        np.save(root / "poses_bounds.npy", llff_rows(poses, focal=40.0, h=2 * N3DV_H, w=2 * N3DV_W))
        for i in range(n_cams):
            n = frame_counts[i] if frame_counts else frames
            write_video(root / f"cam{i:02d}.mp4", n, seed=i)
        return root

    return build
