"""`ns-vvc eval` for view codecs (vvc-mv-inr): every decoded view against the original image of that camera and frame.

The originals come from the run's dataset (its config.yml names the data and the dataparser settings, e.g. the
downscale factor), so the comparison is at the resolution that was coded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
import yaml
from nerfstudio.utils.rich_utils import CONSOLE
from PIL import Image
from rich.table import Table

from nerfstudio_vvc.data.datamanager import load_rgb
from nerfstudio_vvc.eval.metrics import ImageMetrics
from nerfstudio_vvc.jsonio import strict_json


def originals_of(load_config: Path):
    """(image filename by (camera id, frame), dataparser outputs) of the run's training split."""
    config = yaml.load(load_config.read_text(), Loader=yaml.Loader)
    dm = config.pipeline.datamanager
    if getattr(dm, "data", None) is not None:
        dm.dataparser.data = Path(dm.data)
    outs = dm.dataparser.setup().get_dataparser_outputs("train")
    meta = outs.metadata
    files = {(int(c), int(f)): Path(p) for c, f, p in zip(meta["cam_id"].tolist(), meta["frame_idx"].tolist(),
                                                          outs.image_filenames)}
    return files


def test_frames_of(load_config: Path, num_frames: int) -> List[Dict]:
    """The run's test cameras as transforms.json frame entries (``split: test``, absolute paths of the original
    images, OpenGL camera-to-world in the run's scene coordinates = the stream's), frames 0..num_frames-1."""
    if not load_config.exists():
        raise SystemExit(f"{load_config}: no such file (pass the config.yml of the run that coded the file)")
    config = yaml.load(load_config.read_text(), Loader=yaml.Loader)
    dm = config.pipeline.datamanager
    if getattr(dm, "data", None) is not None:
        dm.dataparser.data = Path(dm.data)
    outs = dm.dataparser.setup().get_dataparser_outputs("test")
    meta, cams = outs.metadata, outs.cameras
    frames = []
    for i, (c, f, p) in enumerate(zip(meta["cam_id"].tolist(), meta["frame_idx"].tolist(), outs.image_filenames)):
        if f >= num_frames:
            continue
        c2w = cams.camera_to_worlds[i].double().tolist() + [[0.0, 0.0, 0.0, 1.0]]
        frames.append({"file_path": str(Path(p).resolve()), "transform_matrix": c2w, "frame_idx": int(f),
                       "camera_id": int(c), "split": "test", "fl_x": float(cams.fx[i, 0]), "fl_y": float(cams.fy[i, 0]),
                       "cx": float(cams.cx[i, 0]), "cy": float(cams.cy[i, 0]), "w": int(cams.width[i, 0]),
                       "h": int(cams.height[i, 0])})
    return frames


def eval_decoded_views(decoder, load_config: Path, out_dir: Path, use_lpips: bool = True) -> Dict:
    """Per-view PSNR / SSIM / LPIPS of every decoded view and frame; writes metrics.json and one side-by-side PNG
    per view (first frame). Returns the metrics dict."""
    files = originals_of(load_config)
    metric = ImageMetrics(use_lpips=use_lpips)
    cfg = decoder.config
    rows: List[Dict] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for d in decoder.iter_decoded():
        for i, cam in enumerate(cfg.cameras):
            key = (cam.cam_id, d.frame_idx)
            if key not in files:
                raise SystemExit(f"{decoder.path}: camera {cam.cam_id} frame {d.frame_idx} is not in the run's dataset "
                                 f"({load_config}): was the file coded from another run?")
            gt = (load_rgb(files[key]) * 255.0).round().to(torch.uint8)
            pred = d.images[i]
            if tuple(gt.shape) != tuple(pred.shape):
                raise SystemExit(f"{files[key]}: {tuple(gt.shape)} pixels, the stream codes {tuple(pred.shape)}")
            m = metric(pred, gt)
            rows.append({"camera": cam.cam_id, "frame": d.frame_idx, "role": "basic" if i == cfg.basic else "inr", **m})
            if d.frame_idx == decoder.frames()[0]:
                Image.fromarray(np.concatenate([gt.numpy(), pred.numpy()], axis=1)).save(
                    out_dir / f"cam{cam.cam_id:03d}.png"
                )
    per_view = {}
    for cam in cfg.cameras:
        r = [x for x in rows if x["camera"] == cam.cam_id]
        per_view[cam.cam_id] = {
            "role": r[0]["role"],
            **{k: _mean([x[k] for x in r]) for k in ("psnr_db", "ssim", "lpips")},
        }
    size = decoder.path.stat().st_size
    pixels = len(cfg.cameras) * len(decoder.frames()) * cfg.width * cfg.height
    summary = {
        "file_bytes": size,
        "kb_per_frame": size / 1000 / max(len(decoder.frames()), 1),
        "bpp": 8 * size / pixels,
        "inr_views_psnr_db": _mean([v["psnr_db"] for v in per_view.values() if v["role"] == "inr"]),
        "basic_view_psnr_db": _mean([v["psnr_db"] for v in per_view.values() if v["role"] == "basic"]),
        "decode_view_frames_per_s": len(cfg.cameras)
        * len(decoder.frames())
        / max(sum(decoder.decode_seconds.values()), 1e-9),
    }
    table = Table(title=f"decoded views of {decoder.path} ({size} bytes, {summary['bpp']:.4f} bpp)")
    for col in ("camera", "role", "PSNR dB", "SSIM", "LPIPS"):
        table.add_column(col, justify="right")
    fmt = lambda v, p: "n/a" if v is None else f"{v:.{p}f}"  # noqa: E731
    for cid, v in per_view.items():
        table.add_row(str(cid), v["role"], fmt(v["psnr_db"], 2), fmt(v["ssim"], 4), fmt(v["lpips"], 4))
    CONSOLE.print(table)
    CONSOLE.print(
        f"INR views {fmt(summary['inr_views_psnr_db'], 2)} dB · basic view {fmt(summary['basic_view_psnr_db'], 2)} dB"
        f" · {summary['kb_per_frame']:.1f} KB/frame · decode {summary['decode_view_frames_per_s']:.1f} view-frames/s"
    )
    result = {"file": str(decoder.path), "summary": summary, "per_view": per_view, "frames": rows}
    (out_dir / "metrics.json").write_text(strict_json(result, indent=1))
    return result


def _mean(values) -> Optional[float]:
    v = [x for x in values if x is not None]
    return float(np.mean(v)) if v else None
