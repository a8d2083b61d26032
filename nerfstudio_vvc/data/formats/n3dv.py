"""Neural 3D Video (DyNeRF / N3DV) layout.

::

    <root>/poses_bounds.npy   [Ncam, 17]: a 3x5 matrix [R | t | (H, W, focal)] flattened row-major,
                              then (near, far) depth bounds. LLFF convention: the rotation columns
                              are the camera's (down, right, backward) axes in world space.
    <root>/cam00.mp4 ...      one video per camera; row i of poses_bounds.npy = i-th video sorted by name.

Frames are decoded with PyAV into a cache folder of PNGs (only the selected frames, on first use).
Following DyNeRF, ``cam00`` is the default test camera.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from nerfstudio_vvc.data.formats.common import (
    RawVideoScene,
    VvcDataError,
    atomic_save_image,
    check_pose,
    downscaled_size,
    resolve_handedness,
)

VIDEO_RE = re.compile(r"^cam(\d+)\.mp4$")


def detect(root: Path) -> bool:
    return (root / "poses_bounds.npy").exists()


def _videos(root: Path) -> List[Path]:
    vids = sorted((p for p in root.iterdir() if VIDEO_RE.match(p.name)), key=lambda p: p.name)
    return vids


def _open(path: Path):
    import av

    try:
        return av.open(str(path))
    except Exception as e:  # av raises many error types (InvalidDataError, FileNotFoundError, ...)
        raise VvcDataError(path, f"cannot open video ({e})") from e


def _probe(path: Path) -> tuple:
    """(num_frames, width, height, fps) of a video; counts frames by demuxing if the header lacks it."""
    container = _open(path)
    try:
        if not container.streams.video:
            raise VvcDataError(path, "no video stream")
        stream = container.streams.video[0]
        w, h = stream.codec_context.width, stream.codec_context.height
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 30.0
        n = int(stream.frames or 0)
        if n <= 0:
            n = sum(1 for pkt in container.demux(stream) if pkt.size)
    except VvcDataError:
        raise
    except Exception as e:
        raise VvcDataError(path, f"cannot read video ({e})") from e
    finally:
        container.close()
    if n <= 0 or w <= 0 or h <= 0:
        raise VvcDataError(path, f"video has no decodable frames ({n} frames, {w}x{h})")
    return n, w, h, fps


def llff_to_opengl(poses: np.ndarray) -> np.ndarray:
    """[N, 3, 5] LLFF (down, right, back | t | hwf) -> [N, 4, 4] OpenGL c2w (right, up, back)."""
    n = poses.shape[0]
    c2w = np.tile(np.eye(4), (n, 1, 1))
    c2w[:, :3, 0] = poses[:, :, 1]  # right
    c2w[:, :3, 1] = -poses[:, :, 0]  # up = -down
    c2w[:, :3, 2] = poses[:, :, 2]  # backward
    c2w[:, :3, 3] = poses[:, :, 3]
    return c2w


def load(root: Path) -> RawVideoScene:
    root = Path(root)
    pb_path = root / "poses_bounds.npy"
    try:
        pb = np.load(pb_path, allow_pickle=False)
    except Exception as e:
        raise VvcDataError(pb_path, f"cannot read numpy array ({e})") from e
    if pb.ndim != 2 or pb.shape[1] != 17:
        raise VvcDataError(pb_path, f"expected an array of shape [num_cameras, 17], got {tuple(pb.shape)}")
    pb = pb.astype(np.float64)
    vids = _videos(root)
    if not vids:
        raise VvcDataError(root, "no camNN.mp4 videos found next to poses_bounds.npy")
    if len(vids) != pb.shape[0]:
        raise VvcDataError(pb_path, f"has {pb.shape[0]} cameras but {len(vids)} camNN.mp4 videos were found")
    if not np.all(np.isfinite(pb)):
        bad = sorted(set(np.nonzero(~np.isfinite(pb))[0].tolist()))
        raise VvcDataError(pb_path, f"non-finite values for camera row(s) {bad}")
    poses = pb[:, :15].reshape(-1, 3, 5)
    bounds = pb[:, 15:17]
    c2w = llff_to_opengl(poses)
    for i, v in enumerate(vids):
        check_pose(c2w[i], pb_path, f"camera row {i} ({v.name})", allow_reflection=True)
    c2w, mirrored = resolve_handedness(
        c2w[None], [pb_path] * len(vids), [f"row {i} ({v.name})" for i, v in enumerate(vids)]
    )
    c2w = c2w[0]

    probes = [_probe(v) for v in vids]
    counts = [p[0] for p in probes]
    if len(set(counts)) != 1:
        worst = int(np.argmin(counts))
        raise VvcDataError(
            vids[worst],
            f"has {counts[worst]} frames but other cameras have {max(counts)} (cameras with different frame counts)",
        )
    widths = np.array([p[1] for p in probes])
    heights = np.array([p[2] for p in probes])
    fps = probes[0][3]

    K = np.zeros((1, len(vids), 3, 3))
    for i in range(len(vids)):
        h_decl, w_decl, focal = poses[i, :, 4]
        if h_decl <= 0 or w_decl <= 0 or focal <= 0:
            raise VvcDataError(pb_path, f"camera row {i}: invalid (H, W, focal) = {(h_decl, w_decl, focal)}")
        # poses_bounds hwf refers to the calibration resolution; scale focal to the video size
        if abs(widths[i] / w_decl - heights[i] / h_decl) > 0.01 * widths[i] / w_decl:
            raise VvcDataError(
                vids[i],
                f"video size {widths[i]}x{heights[i]} has a different aspect ratio than the calibrated "
                f"{int(w_decl)}x{int(h_decl)} in poses_bounds.npy",
            )
        s = widths[i] / w_decl
        K[0, i] = [[focal * s, 0, widths[i] / 2.0], [0, focal * s, heights[i] / 2.0], [0, 0, 1]]

    cam_ids = [int(VIDEO_RE.match(v.name).group(1)) for v in vids]  # type: ignore[union-attr]

    def materialize(frames: Sequence[int], cams: Sequence[int], cache: Path, downscale: int) -> Dict[tuple, Path]:
        return decode_frames(vids, frames, cams, cache / "n3dv" / f"ds{downscale}", downscale)

    return RawVideoScene(
        format="n3dv",
        root=root,
        cam_ids=cam_ids,
        num_frames=counts[0],
        fps=fps,
        width=widths,
        height=heights,
        intrinsics=K,
        c2w=c2w[None],
        default_test_cam_ids=[cam_ids[0]],
        materialize=materialize,
        near_hint=float(bounds[:, 0].min()) if bounds[:, 0].min() > 0 else None,
        far_hint=float(bounds[:, 1].max()) if bounds[:, 1].max() > 0 else None,
        forward_facing=True,
        extra={"bounds": bounds, "mirrored_world_z": mirrored},
    )


def decode_frames(
    vids: Sequence[Path], frames: Sequence[int], cams: Sequence[int], out_dir: Path, downscale: int
) -> Dict[tuple, Path]:
    """Decode the requested frames of the requested cameras to ``out_dir/<cam>/<frame:06d>.png``.

    Frames already present are not decoded again; a video is decoded only up to its last missing frame.
    """
    from PIL import Image

    wanted = sorted(set(int(f) for f in frames))
    result: Dict[tuple, Path] = {}
    for c in cams:
        vid = vids[c]
        cam_dir = out_dir / vid.stem
        paths = {f: cam_dir / f"{f:06d}.png" for f in wanted}
        missing = {f for f, p in paths.items() if not p.exists() or p.stat().st_mtime < vid.stat().st_mtime}
        if missing:
            last = max(missing)
            container = _open(vid)
            try:
                for i, frame in enumerate(container.decode(video=0)):
                    if i in missing:
                        img = frame.to_image()
                        if downscale > 1:
                            img = img.resize(downscaled_size(img.width, img.height, downscale), Image.Resampling.BOX)
                        atomic_save_image(img, paths[i])
                        missing.discard(i)
                    if i >= last:
                        break
            except Exception as e:
                raise VvcDataError(vid, f"cannot decode video ({e})") from e
            finally:
                container.close()
            if missing:
                raise VvcDataError(vid, f"video ended before frame(s) {sorted(missing)[:5]}")
        for f in wanted:
            result[(f, c)] = paths[f]
    return result
