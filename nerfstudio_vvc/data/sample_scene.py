"""Embedded default scene: a small dynamic multi-view video rendered on the CPU with pybullet.

A textured humanoid replays a DeepMimic motion-capture clip shipped with ``pybullet_data`` on a
textured floor patch, while a small red marker ball circles it. A capture-like dome of cameras
(three rings at different heights, test cameras interleaved) looks at the subject. Images are
rendered supersampled and box-filtered down (anti-aliased, like a real lens), and the textures are
smooth (no per-texel noise), so the ground truth carries no detail finer than a pixel that no
multi-view method could recover. ``far_floor`` adds a checkered ground plane that reaches the
horizon, far outside any scene box (a test of unbounded content). Images and exact calibrations are written in the
Panoptic / Dynamic-3D-Gaussians layout, so the sample and real captures share one parser path::

    <out>/train_meta.json, test_meta.json   calibration (OpenCV K and world-to-camera per frame)
    <out>/ims/<cam>/<frame:06d>.png         RGB renders (lossless)
    <out>/seg/<cam>/<frame:06d>.png         foreground masks (humanoid + marker)
    <out>/scene.json                        generator settings + marker ball positions per frame
    <out>/README.md

The world is y-up (as in DeepMimic); the dataparser's auto-orientation turns it z-up.
Rendering uses pybullet's TinyRenderer in DIRECT mode (headless, deterministic): the same seed and
arguments give bit-identical images.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

BACKGROUND = (255, 255, 255)
MOTIONS = ("walk", "jump", "dance_a", "dance_b", "kick", "punch", "run", "spin", "backflip", "cartwheel")
OPENCV_FROM_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])
# TinyRenderer samples pixel column i at x_window = i and row j at y_window = H - 1 - j (GL window
# coordinates, y up), i.e. half a pixel off the usual "pixel centre at +0.5" convention. Measured
# with the marker ball (tests/data/test_data_sample_scene.py); the written intrinsics include it.
TINY_RENDERER_PIXEL_OFFSET = (0.5, -0.5)


def pixel_offset(supersample: int) -> Tuple[float, float]:
    """Offset of the box-filtered pixel's sample mean from the ideal pixel centre.

    An s x s block of TinyRenderer samples at high-res window coords s*i .. s*i + s - 1 averages to
    i + (s - 1) / (2 s) in output pixels: the half-pixel offset shrinks to 1 / (2 s).
    """
    s = max(int(supersample), 1)
    return TINY_RENDERER_PIXEL_OFFSET[0] / s, TINY_RENDERER_PIXEL_OFFSET[1] / s

# DeepMimic frame layout -> humanoid.urdf joint indices (quaternions stored w, x, y, z)
_SPHERICAL = {1: 8, 2: 12, 9: 16, 11: 21, 3: 25, 12: 30, 14: 35, 6: 39}  # joint: offset
_REVOLUTE = {10: 20, 4: 29, 13: 34, 7: 43}


@contextmanager
def _quiet():
    """Silence pybullet's C-level prints (URDF warnings) on stdout/stderr."""
    try:
        fds = [sys.stdout.fileno(), sys.stderr.fileno()]
    except (AttributeError, OSError, ValueError):
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in fds]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in fds:
            os.dup2(devnull, fd)
        yield
    finally:
        for fd, s in zip(fds, saved):
            os.dup2(s, fd)
            os.close(s)
        os.close(devnull)


def _texture(kind: str, rng: np.random.Generator, size: int = 256) -> np.ndarray:
    """Deterministic colourful textures (uint8 HxWx3), smooth at the scale of a texel: no noise,
    lines several texels wide (a one-texel line is finer than a pixel at the sample's resolution)."""
    yy, xx = np.mgrid[0:size, 0:size]
    if kind == "far_floor":  # low-contrast grey-green checker, like a distant ground
        cells = 40
        check = ((yy * cells // size) + (xx * cells // size)) % 2
        img = np.array([120.0, 135.0, 110.0]) * (0.8 + 0.35 * check[..., None])
        return np.clip(img, 0, 255).astype(np.uint8)
    if kind == "floor":
        cells = 12
        palette = rng.integers(70, 220, size=(cells, cells, 3))
        img = palette[yy * cells // size, xx * cells // size].astype(np.float64)
        cell = size / cells
        lines = ((xx % cell) < 2.5) | ((yy % cell) < 2.5)
        img[lines] = 40
        return img.astype(np.uint8)
    # body: diagonal colour stripes + a coarse grid, good for multi-view correspondence
    phase = (xx + yy) / size * 4 * math.pi
    img = np.stack(
        [128 + 100 * np.sin(phase), 128 + 100 * np.sin(phase + 2.1), 128 + 100 * np.sin(phase + 4.2)], -1
    )
    grid = ((xx % 64) < 8) | ((yy % 64) < 8)
    img[grid] *= 0.35
    return np.clip(img, 0, 255).astype(np.uint8)


def camera_positions(
    num_cameras: int, num_test_cameras: int, radius: float, heights: Sequence[float], seed: int
) -> Tuple[np.ndarray, List[int]]:
    """Evenly spaced azimuths on a dome (rings alternate in height); test cameras interleaved."""
    n = num_cameras + num_test_cameras
    rng = np.random.default_rng(seed)
    offset = float(rng.uniform(0, 2 * math.pi / n))
    pos = []
    for i in range(n):
        az = offset + 2 * math.pi * i / n
        y = heights[i % len(heights)]
        pos.append([radius * math.cos(az), y, radius * math.sin(az)])
    test = sorted({int(math.floor((k + 0.5) * n / num_test_cameras)) % n for k in range(num_test_cameras)})
    return np.array(pos), test


def _box_down(img: np.ndarray, s: int) -> np.ndarray:
    """Mean over s x s pixel blocks of an [H*s, W*s, C] array."""
    if s == 1:
        return img
    h, w, ch = img.shape[0] // s, img.shape[1] // s, img.shape[2]
    return img.reshape(h, s, w, s, ch).mean(axis=(1, 3))


def view_projection_to_opencv(view: Sequence[float], proj: Sequence[float], width: int, height: int,
                              supersample: int = 1):
    """Exact OpenCV K (3x3) and world-to-camera (4x4) from pybullet's column-major GL matrices.

    Ideal GL mapping: u = W/2 (ndc_x + 1), v = H/2 (1 - ndc_y) (v downward, pixel centres at +0.5);
    TinyRenderer's rasteriser shifts this by ``pixel_offset(supersample)``, which K includes.
    """
    V = np.asarray(view, dtype=np.float64).reshape(4, 4).T  # world -> eye (OpenGL)
    P = np.asarray(proj, dtype=np.float64).reshape(4, 4).T
    fx = P[0, 0] * width / 2.0
    fy = P[1, 1] * height / 2.0
    # ndc_x = (P00 x + P02 z) / -z, with x_cv = x, z_cv = -z  ->  u = fx x_cv/z_cv + W/2 (1 - P02)
    off = pixel_offset(supersample)
    cx = width / 2.0 * (1.0 - P[0, 2]) + off[0]
    cy = height / 2.0 * (1.0 + P[1, 2]) + off[1]
    K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    w2c = OPENCV_FROM_OPENGL @ V
    return K, w2c


def project_with_pybullet(point: Sequence[float], view, proj, width: int, height: int) -> np.ndarray:
    """Ideal pixel (u, v) of a world point from pybullet's own matrices (clip -> NDC -> pixels),
    without TinyRenderer's rasteriser offset."""
    V = np.asarray(view, dtype=np.float64).reshape(4, 4).T
    P = np.asarray(proj, dtype=np.float64).reshape(4, 4).T
    clip = P @ V @ np.append(np.asarray(point, dtype=np.float64), 1.0)
    ndc = clip[:3] / clip[3]
    return np.array([width / 2.0 * (ndc[0] + 1.0), height / 2.0 * (1.0 - ndc[1])])


def _load_motion(name: str) -> List[List[float]]:
    import pybullet_data

    path = Path(pybullet_data.getDataPath()) / "data" / "motions" / f"humanoid3d_{name}.txt"
    with open(path) as f:
        return json.load(f)["Frames"]


def _q(wxyz: Sequence[float]) -> List[float]:
    return [wxyz[1], wxyz[2], wxyz[3], wxyz[0]]


def make_sample(
    out_dir: Path,
    num_frames: int = 16,
    num_cameras: int = 24,
    num_test_cameras: int = 4,
    resolution: Tuple[int, int] = (128, 128),
    seed: int = 0,
    motion: str = "walk",
    motion_stride: int = 2,
    fov_deg: float = 40.0,
    radius: float = 3.2,
    ring_heights: Tuple[float, ...] = (0.5, 1.4, 2.3),
    target: Tuple[float, float, float] = (0.0, 0.85, 0.0),
    marker: bool = True,
    marker_radius: float = 0.06,
    shadows: bool = True,
    write_masks: bool = True,
    supersample: int = 3,
    far_floor: bool = False,
    verbose: bool = False,
) -> Path:
    """Render the sample scene into ``out_dir`` (Panoptic/D3DGS layout) and return ``out_dir``.

    Args:
        num_frames: frames to render.
        num_cameras: training cameras; num_test_cameras more are interleaved in azimuth.
        resolution: (width, height) in pixels.
        seed: controls the textures and the dome's azimuth offset. Same seed + args -> same bytes.
        motion: DeepMimic clip in pybullet_data (``humanoid3d_<motion>.txt``), played from its start.
        motion_stride: mocap frames (30 fps) per output frame; output fps = 30 / motion_stride.
        fov_deg: vertical field of view of every camera.
        radius, ring_heights, target: dome radius, camera heights (y-up, cycled over cameras) and
            look-at point (world units are metres).
        marker: add a small red ball circling the subject (positions in scene.json); used by the tests.
        marker_radius: its radius in metres (tests of moving content use a larger one at small resolutions).
        shadows: TinyRenderer shadow mapping.
        write_masks: write foreground masks under seg/.
        supersample: render s x s samples per pixel and box-filter them (anti-aliasing; 1 = off).
        far_floor: add a checkered ground plane reaching the horizon (200 x 200 m) under the floor patch.
    """
    import pybullet_data
    from PIL import Image

    with _quiet():
        import pybullet as p
    if num_frames < 1 or num_cameras < 1 or num_test_cameras < 0 or supersample < 1:
        raise ValueError("need num_frames >= 1, num_cameras >= 1, num_test_cameras >= 0, supersample >= 1")
    if motion not in MOTIONS:
        raise ValueError(f"unknown motion {motion!r}; choose one of {MOTIONS}")
    W, H = int(resolution[0]), int(resolution[1])
    ss = int(supersample)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t0 = time.time()

    frames = _load_motion(motion)
    mocap_dt = float(frames[0][0]) or 1.0 / 30.0
    fps = 1.0 / (mocap_dt * max(motion_stride, 1))  # stride 0: a still sequence
    idx = [(t * motion_stride) % len(frames) for t in range(num_frames)]
    # keep the subject centred: remove the mean horizontal root position of the played frames
    root_xz = np.mean([[frames[i][1], frames[i][3]] for i in idx], axis=0)

    cam_pos, test_idx = camera_positions(num_cameras, num_test_cameras, radius, ring_heights, seed)
    aspect = W / H
    proj = [float(v) for v in _projection(p, fov_deg, aspect)]
    views = [p.computeViewMatrix(list(map(float, c)), list(target), [0.0, 1.0, 0.0]) for c in cam_pos]
    calib = [view_projection_to_opencv(v, proj, W, H, supersample=ss) for v in views]

    cid = p.connect(p.DIRECT)
    tmp = tempfile.mkdtemp(prefix="vvc_sample_tex_")
    try:
        with _quiet():
            p.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=cid)
            human = p.loadURDF(
                "humanoid/humanoid.urdf", [0, 0.89, 0], globalScaling=0.25, useFixedBase=True, physicsClientId=cid
            )
        tex_paths = {}
        for kind in ("floor", "body", "far_floor"):
            tex_paths[kind] = os.path.join(tmp, f"{kind}.png")
            Image.fromarray(_texture(kind, rng)).save(tex_paths[kind])
        body_tex = p.loadTexture(tex_paths["body"], physicsClientId=cid)
        floor_tex = p.loadTexture(tex_paths["floor"], physicsClientId=cid)
        link_colors = rng.uniform(0.55, 1.0, size=(p.getNumJoints(human, physicsClientId=cid) + 1, 3))
        for link in range(-1, p.getNumJoints(human, physicsClientId=cid)):
            p.changeVisualShape(
                human, link, textureUniqueId=body_tex, rgbaColor=[*link_colors[link + 1], 1.0], physicsClientId=cid
            )
        floor_vs = p.createVisualShape(p.GEOM_BOX, halfExtents=[1.5, 0.01, 1.5], physicsClientId=cid)
        floor = p.createMultiBody(0, -1, floor_vs, basePosition=[0, -0.01, 0], physicsClientId=cid)
        p.changeVisualShape(floor, -1, textureUniqueId=floor_tex, rgbaColor=[1, 1, 1, 1], physicsClientId=cid)
        if far_floor:
            far_tex = p.loadTexture(tex_paths["far_floor"], physicsClientId=cid)
            far_vs = p.createVisualShape(p.GEOM_BOX, halfExtents=[100.0, 0.01, 100.0], physicsClientId=cid)
            far = p.createMultiBody(0, -1, far_vs, basePosition=[0, -0.03, 0], physicsClientId=cid)
            p.changeVisualShape(far, -1, textureUniqueId=far_tex, rgbaColor=[1, 1, 1, 1], physicsClientId=cid)
        ball = None
        if marker:
            ball_vs = p.createVisualShape(
                p.GEOM_SPHERE, radius=marker_radius, rgbaColor=[1, 0, 0, 1], physicsClientId=cid
            )
            ball = p.createMultiBody(0, -1, ball_vs, basePosition=[0, 1.5, 0], physicsClientId=cid)

        cam_ids = list(range(len(cam_pos)))
        split_of = {c: ("test" if c in test_idx else "train") for c in cam_ids}
        metas: Dict[str, dict] = {
            s: {"w": W, "h": H, "k": [], "w2c": [], "fn": [], "cam_id": []} for s in ("train", "test")
        }
        marker_pos = []
        for t, mi in enumerate(idx):
            fr = frames[mi]
            base = [fr[1] - root_xz[0], fr[2], fr[3] - root_xz[1]]
            p.resetBasePositionAndOrientation(human, base, _q(fr[4:8]), physicsClientId=cid)
            for j, o in _SPHERICAL.items():
                p.resetJointStateMultiDof(human, j, _q(fr[o : o + 4]), physicsClientId=cid)
            for j, o in _REVOLUTE.items():
                p.resetJointState(human, j, fr[o], physicsClientId=cid)
            if ball is not None:
                ang = 2 * math.pi * t / max(num_frames, 8)
                bp = [0.75 * math.cos(ang), 1.45 + 0.25 * math.sin(2 * ang), 0.75 * math.sin(ang)]
                p.resetBasePositionAndOrientation(ball, bp, [0, 0, 0, 1], physicsClientId=cid)
                marker_pos.append(bp)
            for s in metas.values():
                for key in ("k", "w2c", "fn", "cam_id"):
                    s[key].append([])
            for c in cam_ids:
                img = p.getCameraImage(
                    W * ss,
                    H * ss,
                    views[c],
                    proj,
                    renderer=p.ER_TINY_RENDERER,
                    shadow=int(shadows),
                    lightDirection=[1.0, 3.0, 2.0],
                    physicsClientId=cid,
                )
                rgb = np.reshape(np.asarray(img[2], dtype=np.uint8), (H * ss, W * ss, 4))[:, :, :3].astype(np.float64)
                seg = np.reshape(np.asarray(img[4]), (H * ss, W * ss))
                rgb[seg < 0] = BACKGROUND
                rgb = np.round(_box_down(rgb, ss)).astype(np.uint8)
                fn = f"{c}/{t:06d}.png"
                (out_dir / "ims" / str(c)).mkdir(parents=True, exist_ok=True)
                Image.fromarray(rgb).save(out_dir / "ims" / fn)
                if write_masks:
                    fg = np.isin(seg, [human] + ([ball] if ball is not None else [])).astype(np.float64)
                    fg = _box_down(fg[..., None], ss)[..., 0] >= 0.5
                    (out_dir / "seg" / str(c)).mkdir(parents=True, exist_ok=True)
                    Image.fromarray((fg * 255).astype(np.uint8)).save(out_dir / "seg" / fn)
                K, w2c = calib[c]
                m = metas[split_of[c]]
                m["k"][-1].append(K.tolist())
                m["w2c"][-1].append(w2c.tolist())
                m["fn"][-1].append(fn)
                m["cam_id"][-1].append(c)
    finally:
        p.disconnect(cid)
        for f in os.listdir(tmp):
            os.remove(os.path.join(tmp, f))
        os.rmdir(tmp)

    for split, m in metas.items():
        if split == "test" and not test_idx:
            continue
        m.update({"fps": fps, "near": 0.5})
        with open(out_dir / f"{split}_meta.json", "w") as f:
            json.dump(m, f)
    settings = {
        "num_frames": num_frames,
        "num_cameras": num_cameras,
        "num_test_cameras": num_test_cameras,
        "resolution": [W, H],
        "seed": seed,
        "motion": motion,
        "motion_stride": motion_stride,
        "fps": fps,
        "fov_deg": fov_deg,
        "radius": radius,
        "ring_heights": list(ring_heights),
        "target": list(target),
        "test_cam_ids": test_idx,
        "background": list(BACKGROUND),
        "world_up": [0, 1, 0],
        "supersample": ss,
        "far_floor": bool(far_floor),
        "view_matrices": {str(c): list(map(float, v)) for c, v in enumerate(views)},
        "projection_matrix": proj,
        "marker_radius": marker_radius if marker else None,
        "marker_positions": marker_pos,
    }
    with open(out_dir / "scene.json", "w") as f:
        json.dump(settings, f, indent=1)
    (out_dir / "README.md").write_text(_readme(settings))
    if verbose:
        print(
            f"sample scene: {num_frames} frames x {len(cam_pos)} cameras at {W}x{H} "
            f"in {time.time() - t0:.1f} s -> {out_dir}"
        )
    return out_dir


def _projection(p, fov_deg: float, aspect: float) -> Sequence[float]:
    return p.computeProjectionMatrixFOV(fov_deg, aspect, 0.05, 20.0)


def _readme(s: dict) -> str:
    return f"""# nerfstudio-vvc sample scene

Synthetic multi-view video rendered with pybullet's TinyRenderer (CPU, deterministic) by
`nerfstudio_vvc.data.sample_scene.make_sample` (seed {s["seed"]}).

- Content: the DeepMimic humanoid from `pybullet_data` replaying the `{s["motion"]}` motion-capture clip
  (every {s["motion_stride"]} mocap frame(s): {s["fps"]:.1f} fps), colour-textured, on a textured 3x3 m floor
  patch; a red marker ball (radius 0.06 m) circles it (`scene.json` lists its centre per frame).
- {s["num_frames"]} frames x {s["num_cameras"] + s["num_test_cameras"]} cameras ({s["num_cameras"]} train,
  test cameras {s["test_cam_ids"]} interleaved in azimuth), {s["resolution"][0]}x{s["resolution"][1]} PNG,
  vertical FOV {s["fov_deg"]} deg, dome radius {s["radius"]} m, ring heights {s["ring_heights"]} m, all looking
  at {s["target"]}.
- Background: constant white (pixels with no object in pybullet's segmentation mask).
- World frame: y up (metres), floor at y = 0.
- Layout (CMU Panoptic / Dynamic 3D Gaussians): `train_meta.json`, `test_meta.json` with `w`, `h`, per frame
  `k` (OpenCV intrinsics, exact from the projection matrix: fy = H / 2 / tan(fov / 2)), `w2c` (OpenCV
  world-to-camera = diag(1,-1,-1,1) @ GL view matrix), `fn`, `cam_id`; plus `fps` and `near` (metres).
  Images in `ims/<cam>/<frame:06d>.png`, foreground masks in `seg/`.
- Load with `ns-train <method> vvc-data --data <this folder>`.
"""


@dataclass
class MakeSampleConfig:
    """Render the built-in synthetic multi-view video (pybullet, CPU) in the Panoptic layout."""

    out: Path = Path("data/sample")
    """Output folder."""
    num_frames: int = 16
    """Frames to render."""
    num_cameras: int = 24
    """Training cameras."""
    num_test_cameras: int = 4
    """Held-out cameras, interleaved in azimuth."""
    resolution: Tuple[int, int] = (128, 128)
    """Image width and height in pixels."""
    seed: int = 0
    """Seed for textures and camera azimuth offset (same seed -> identical images)."""
    motion: str = "walk"
    """DeepMimic clip: walk, jump, dance_a, dance_b, kick, punch, run, spin, backflip, cartwheel."""
    motion_stride: int = 2
    """Mocap frames (30 fps) per output frame."""
    marker: bool = True
    """Add the red marker ball."""
    supersample: int = 3
    """Samples per pixel side, box-filtered down (anti-aliasing; 1 = off)."""
    far_floor: bool = False
    """Add a ground plane reaching the horizon (content far outside the scene box)."""

    def main(self) -> Path:
        return make_sample(
            self.out,
            num_frames=self.num_frames,
            num_cameras=self.num_cameras,
            num_test_cameras=self.num_test_cameras,
            resolution=self.resolution,
            seed=self.seed,
            motion=self.motion,
            motion_stride=self.motion_stride,
            marker=self.marker,
            supersample=self.supersample,
            far_floor=self.far_floor,
            verbose=True,
        )


def main() -> None:
    import tyro

    tyro.cli(MakeSampleConfig).main()


if __name__ == "__main__":
    main()
