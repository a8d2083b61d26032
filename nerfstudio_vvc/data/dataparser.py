"""nerfstudio DataParser for synchronized multi-view video (``vvc-data``).

Reads the Panoptic/Dynamic-3D-Gaussians layout, N3DV/DyNeRF videos or a time-extended nerfstudio
``transforms.json`` (see :mod:`nerfstudio_vvc.data.formats`), selects frames and cameras, normalises
the scene (subject at the origin inside the scene box) and returns per-image ``Cameras`` with times.
See ``docs/data.md``.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Literal, Optional, Tuple, Type

import numpy as np
import torch
from nerfstudio.cameras.cameras import Cameras, CameraType
from nerfstudio.data.dataparsers.base_dataparser import DataParser, DataParserConfig, DataparserOutputs
from nerfstudio.data.scene_box import SceneBox

from nerfstudio_vvc.data.formats import load_raw
from nerfstudio_vvc.data.formats.common import (
    RawVideoScene,
    VvcDataError,
    cache_root,
    check_images,
    downscale_image,
    downscaled_size,
)

logger = logging.getLogger(__name__)


@dataclass
class VvcDataParserConfig(DataParserConfig):
    """Multi-view video dataparser (Panoptic/D3DGS, N3DV/DyNeRF, nerfstudio transforms.json + time)."""

    _target: Type = field(default_factory=lambda: VvcDataParser)
    data: Path = Path("data/sample")
    """Folder holding the multi-view video."""
    format: Literal["auto", "panoptic", "n3dv", "transforms"] = "auto"
    """Input layout; 'auto' detects it from train_meta.json / poses_bounds.npy / transforms.json."""
    frame_start: int = 0
    """First source frame to use."""
    num_frames: Optional[int] = None
    """Number of frames to use (after frame_step); None = all frames from frame_start."""
    frame_step: int = 1
    """Use every frame_step-th source frame."""
    downscale_factor: int = 1
    """Downscale images by this integer factor (cached as PNG; intrinsics scaled to match)."""
    train_cameras: Optional[Tuple[int, ...]] = None
    """Camera ids used for training; None = the format's default split."""
    test_cameras: Optional[Tuple[int, ...]] = None
    """Camera ids held out for evaluation; None = the format's default split (docs/data.md)."""
    max_train_cameras: Optional[int] = None
    """Keep at most this many training cameras (evenly spaced in id order)."""
    near_plane: Optional[float] = None
    """Near plane in output scene units; None = the format's default (docs/data.md)."""
    far_plane: Optional[float] = None
    """Far plane in output scene units; None = beyond the farthest camera's view of the scene box."""
    center_method: Literal["focus", "poses", "none"] = "focus"
    """Scene centre: 'focus' (where the optical axes meet), 'poses' (mean camera position), 'none'."""
    orientation_method: Literal["up", "none"] = "up"
    """'up' rotates the mean camera up vector to +z; 'none' keeps the source axes."""
    auto_scale: bool = True
    """Scale so the mean camera distance to the centre becomes camera_distance."""
    camera_distance: float = 3.0
    """Target mean camera-to-centre distance (output units) when auto_scale is on."""
    scale_factor: float = 1.0
    """Extra multiplier applied after auto scaling."""
    scene_box_size: float = 1.5
    """Half side of the cubic scene box around the origin (output units)."""
    cache_dir: Optional[Path] = None
    """Where downscaled images / decoded video frames go; None = <data>/.vvc_cache (docs/data.md)."""
    check_all_image_sizes: bool = True
    """Read the header of every selected image to catch size changes."""


@dataclass
class VvcDataParser(DataParser):
    """Parse multi-view video into per-(frame, camera) nerfstudio images and cameras."""

    config: VvcDataParserConfig
    includes_time: bool = True

    def __init__(self, config: VvcDataParserConfig):
        super().__init__(config=config)
        self.config = config
        self._raw: Optional[RawVideoScene] = None
        self._norm: Optional[dict] = None

    # ------------------------------------------------------------------ selection helpers
    def raw(self) -> RawVideoScene:
        if self._raw is None:
            self._raw = load_raw(Path(self.config.data), self.config.format)
        return self._raw

    def source_frames(self) -> List[int]:
        """Source frame indices of the selected range."""
        raw, c = self.raw(), self.config
        where = raw.extra.get("meta_files", [raw.root])[0]
        if c.frame_step < 1:
            raise VvcDataError(where, f"frame_step must be >= 1 (got {c.frame_step})")
        if c.frame_start < 0 or c.frame_start >= raw.num_frames:
            raise VvcDataError(where, f"frame_start={c.frame_start} is outside the {raw.num_frames} available frames")
        avail = list(range(c.frame_start, raw.num_frames, c.frame_step))
        if c.num_frames is None:
            return avail
        if c.num_frames < 1:
            raise VvcDataError(where, f"empty frame range (num_frames={c.num_frames})")
        if c.num_frames > len(avail):
            raise VvcDataError(
                where,
                f"frame range start={c.frame_start} step={c.frame_step} num_frames={c.num_frames} needs source "
                f"frame {c.frame_start + (c.num_frames - 1) * c.frame_step} but only {raw.num_frames} frames exist",
            )
        return avail[: c.num_frames]

    def split_cameras(self) -> Dict[str, List[int]]:
        """Indices (into raw.cam_ids) of train and test cameras."""
        raw, c = self.raw(), self.config
        index = {cid: i for i, cid in enumerate(raw.cam_ids)}
        for name, ids in (("train_cameras", c.train_cameras), ("test_cameras", c.test_cameras)):
            unknown = [i for i in (ids or ()) if i not in index]
            if unknown:
                raise VvcDataError(raw.root, f"{name} names unknown camera id(s) {unknown}; available: {raw.cam_ids}")
        test = list(c.test_cameras) if c.test_cameras is not None else None
        train = list(c.train_cameras) if c.train_cameras is not None else None
        if test is None:
            test = [i for i in raw.default_test_cam_ids if train is None or i not in train]
        if train is None:
            train = [i for i in raw.cam_ids if i not in test]
        if not train:
            raise VvcDataError(raw.root, "no training cameras left after the train/test split")
        train = sorted(set(train))
        if c.max_train_cameras is not None and len(train) > c.max_train_cameras:
            if c.max_train_cameras < 1:
                raise VvcDataError(raw.root, f"max_train_cameras must be >= 1 (got {c.max_train_cameras})")
            keep = np.round(np.linspace(0, len(train) - 1, c.max_train_cameras)).astype(int)
            train = [train[k] for k in keep]
        if not test:
            logger.warning("%s: no test cameras; evaluating on the training cameras", raw.root)
            test = train
        return {"train": [index[i] for i in train], "test": [index[i] for i in sorted(set(test))]}

    # ------------------------------------------------------------------ normalisation
    def normalization(self) -> dict:
        """Rotation R, centre, scale, near/far (output units) mapping source to output space."""
        if self._norm is not None:
            return self._norm
        raw, c = self.raw(), self.config
        frames = self.source_frames()
        poses = np.stack([raw.pose(f, i) for f in sorted({frames[0], frames[-1]}) for i in range(len(raw.cam_ids))])
        origins = poses[:, :3, 3]
        forward = -poses[:, :3, 2]
        forward /= np.linalg.norm(forward, axis=-1, keepdims=True)

        R = np.eye(3)
        if c.orientation_method == "up":
            up = poses[:, :3, 1].mean(0)
            R = _rotation_to_z(up)

        centre = np.zeros(3)
        if c.center_method == "poses":
            centre = origins.mean(0)
        elif c.center_method == "focus":
            centre = _focus_point(origins, forward, raw)
        dists = np.linalg.norm(origins - centre, axis=-1)
        scale = 1.0
        if c.auto_scale:
            mean_d = float(dists.mean())
            scale = c.camera_distance / mean_d if mean_d > 1e-9 else 1.0
        scale *= c.scale_factor

        near = c.near_plane
        if near is None:
            if raw.near_hint is not None:
                near = (0.9 if raw.format == "n3dv" else 1.0) * raw.near_hint * scale
            else:
                near = 0.05
        far = c.far_plane
        if far is None:
            if raw.format == "n3dv" and raw.far_hint is not None:
                far = raw.far_hint * scale
            else:
                far = float(dists.max() * scale + np.sqrt(3.0) * c.scene_box_size)
                if raw.far_hint is not None:
                    far = max(far, raw.far_hint * scale)
        if not (0 <= near < far):
            raise VvcDataError(raw.root, f"invalid near/far planes {near}/{far}")
        transform = np.concatenate([R, -R @ centre[:, None]], axis=1)  # [3, 4]
        self._norm = {"R": R, "centre": centre, "scale": float(scale), "transform": transform,
                      "near": float(near), "far": float(far)}
        return self._norm

    # ------------------------------------------------------------------ images
    def _image_paths(self, frames: List[int], cams: List[int]) -> List[List[Path]]:
        raw, ds = self.raw(), self.config.downscale_factor
        if ds < 1:
            raise VvcDataError(raw.root, f"downscale_factor must be >= 1 (got {ds})")
        cache = cache_root(raw.root, self.config.cache_dir)
        if raw.materialize is not None:
            got = raw.materialize(frames, cams, cache, ds)
            return [[got[(f, c)] for c in cams] for f in frames]
        assert raw.image_path is not None
        src = [[raw.image_path(f, c) for c in cams] for f in frames]
        check_images(src, [raw.width[c] for c in cams], [raw.height[c] for c in cams],
                     check_headers=self.config.check_all_image_sizes)
        if ds == 1:
            return src
        out_root = cache / f"ds{ds}"

        def dst_of(p: Path) -> Path:
            try:
                rel = p.relative_to(raw.root)
            except ValueError:
                rel = Path("_abs") / str(p).lstrip(os.sep)
            return (out_root / rel).with_suffix(".png")

        dst = [[dst_of(p) for p in row] for row in src]
        jobs = [(s, d) for rs, rd in zip(src, dst) for s, d in zip(rs, rd)]
        with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as ex:
            list(ex.map(lambda sd: downscale_image(sd[0], sd[1], ds), jobs))
        return dst

    # ------------------------------------------------------------------ main entry
    def _generate_dataparser_outputs(self, split: str = "train", **kwargs) -> DataparserOutputs:
        raw, c = self.raw(), self.config
        frames = self.source_frames()
        cams = self.split_cameras()["train" if split == "train" else "test"]
        norm = self.normalization()
        paths = self._image_paths(frames, cams)

        ds = c.downscale_factor
        num_f = len(frames)
        fx, fy, cx, cy, ws, hs, c2ws = [], [], [], [], [], [], []
        frame_idx, source_frame, cam_id, image_filenames = [], [], [], []
        T = np.eye(4)
        T[:3, :] = norm["transform"]
        for k, f in enumerate(frames):
            for j, ci in enumerate(cams):
                K = raw.K(f, ci)
                w, h = int(raw.width[ci]), int(raw.height[ci])
                nw, nh = downscaled_size(w, h, ds)
                sx, sy = nw / w, nh / h
                fx.append(K[0, 0] * sx)
                fy.append(K[1, 1] * sy)
                cx.append(K[0, 2] * sx)
                cy.append(K[1, 2] * sy)
                ws.append(nw)
                hs.append(nh)
                pose = T @ raw.pose(f, ci)
                pose[:3, 3] *= norm["scale"]
                c2ws.append(pose[:3, :4])
                frame_idx.append(k)
                source_frame.append(f)
                cam_id.append(raw.cam_ids[ci])
                image_filenames.append(Path(paths[k][j]))

        def col(v, dtype=torch.float32):
            return torch.tensor(np.asarray(v), dtype=dtype)[:, None]

        times = col(frame_idx) / max(num_f - 1, 1)
        cameras = Cameras(
            camera_to_worlds=torch.tensor(np.stack(c2ws), dtype=torch.float32),
            fx=col(fx), fy=col(fy), cx=col(cx), cy=col(cy),
            width=col(ws, torch.long), height=col(hs, torch.long),
            camera_type=CameraType.PERSPECTIVE,
            times=times,
        )
        s = c.scene_box_size
        scene_box = SceneBox(aabb=torch.tensor([[-s, -s, -s], [s, s, s]], dtype=torch.float32))
        metadata = {
            "frame_idx": torch.tensor(frame_idx, dtype=torch.long),
            "source_frame": torch.tensor(source_frame, dtype=torch.long),
            "cam_id": torch.tensor(cam_id, dtype=torch.long),
            "num_frames": num_f,
            "fps": float(raw.fps) / c.frame_step,
            "near_plane": norm["near"],
            "far_plane": norm["far"],
            "format": raw.format,
        }
        return DataparserOutputs(
            image_filenames=image_filenames,
            cameras=cameras,
            scene_box=scene_box,
            dataparser_scale=norm["scale"],
            dataparser_transform=torch.tensor(norm["transform"], dtype=torch.float32),
            metadata=metadata,
        )


def _rotation_to_z(up: np.ndarray) -> np.ndarray:
    """Rotation taking direction ``up`` to +z (identity if up is degenerate)."""
    n = np.linalg.norm(up)
    if n < 1e-8:
        return np.eye(3)
    a = up / n
    b = np.array([0.0, 0.0, 1.0])
    v = np.cross(a, b)
    cos = float(a @ b)
    if np.linalg.norm(v) < 1e-10:
        return np.eye(3) if cos > 0 else np.diag([1.0, -1.0, -1.0])
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx * (1.0 / (1.0 + cos))


def _focus_point(origins: np.ndarray, dirs: np.ndarray, raw: RawVideoScene) -> np.ndarray:
    """Least-squares point closest to all optical axes; falls back for (near-)parallel axes."""
    P = np.eye(3)[None] - dirs[:, :, None] * dirs[:, None, :]
    A = P.sum(0)
    b = (P @ origins[:, :, None]).sum(0)[:, 0]
    ev = np.linalg.eigvalsh(A)
    if len(origins) >= 2 and ev[0] > 0.02 * ev[-1]:
        x = np.linalg.solve(A, b)
        # the point must lie in front of the cameras on average
        if float(np.mean(np.einsum("ij,ij->i", x - origins, dirs))) > 0:
            return x
    # forward-facing rigs: a point in front of the rig at a typical scene depth
    mean_dir = dirs.mean(0)
    mean_dir /= max(np.linalg.norm(mean_dir), 1e-9)
    if raw.near_hint is not None and raw.far_hint is not None and raw.near_hint > 0:
        depth = float(np.sqrt(raw.near_hint * raw.far_hint))
    else:
        spread = float(np.linalg.norm(origins - origins.mean(0), axis=-1).max())
        depth = max(spread, 1.0)
    return origins.mean(0) + mean_dir * depth
