#!/usr/bin/env python
"""x265 simulcast anchor on panoptic-basketball: every training camera encoded separately with libx265.

Usage (from the repo root):
    .venv/bin/python bench/bench_x265_anchor.py [--data ../shared/data/panoptic-basketball]
        [--downscale 2] [--frames 20] [--crfs 22 28 33 38] [--preset veryfast] [--out bench_out/x265_anchor]
        [--no-lpips]

Reads the 27 training cameras listed in ``train_meta.json`` (``fn[t][i]`` under ``ims/``), downscales each JPEG
by an integer factor with PIL bicubic (default 2: 640x360 -> 320x180), encodes every camera as its own raw HEVC
stream per CRF (yuv444p, see ``nerfstudio_vvc/eval/x265_anchor.py``), decodes the files back and prints one JSON
document with the RD points (bytes = sum of .hevc file sizes; KB = 1000 bytes). Also writes
``<out>/results.json``, ``<out>/rd_psnr.png``, ``<out>/rd_ssim.png`` and ``<out>/frame_bytes_crf<q>.png``.
Exits 0 with a message if the data set is absent.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from nerfstudio_vvc.eval.plots import plot_frame_bytes, plot_rd_curves  # noqa: E402
from nerfstudio_vvc.eval.x265_anchor import DEFAULT_CRFS, run_x265_anchor  # noqa: E402
from nerfstudio_vvc.jsonio import strict_json  # noqa: E402


def load_panoptic_train(data: Path, num_frames: int, downscale: int):
    from PIL import Image

    meta = json.loads((data / "train_meta.json").read_text())
    fns = meta["fn"]
    if num_frames > len(fns):
        raise SystemExit(f"requested {num_frames} frames, data set has {len(fns)}")
    frames = {}
    for i, rel in enumerate(fns[0]):
        cam = str(meta["cam_id"][0][i]) if "cam_id" in meta else rel.split("/")[0]
        seq = []
        for t in range(num_frames):
            img = Image.open(data / "ims" / fns[t][i]).convert("RGB")
            if downscale != 1:
                img = img.resize((img.width // downscale, img.height // downscale), Image.BICUBIC)
            seq.append(np.asarray(img, dtype=np.uint8))
        frames[cam] = seq
    return frames


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "panoptic-basketball")
    ap.add_argument("--downscale", type=int, default=2)
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--crfs", type=int, nargs="+", default=list(DEFAULT_CRFS))
    ap.add_argument("--preset", default="veryfast")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "bench_out" / "x265_anchor")
    ap.add_argument("--no-lpips", action="store_true")
    args = ap.parse_args(argv)

    if not (args.data / "train_meta.json").is_file():
        print(f"SKIP: data set not found at {args.data} (expected train_meta.json and ims/)")
        return 0
    t0 = time.perf_counter()
    frames = load_panoptic_train(args.data, args.frames, args.downscale)
    load_s = time.perf_counter() - t0
    results = run_x265_anchor(frames, args.out, crfs=args.crfs, preset=args.preset, use_lpips=not args.no_lpips)

    args.out.mkdir(parents=True, exist_ok=True)
    plot_rd_curves({"x265 simulcast": results}, "psnr_db", args.out / "rd_psnr.png", title="x265 simulcast anchor")
    plot_rd_curves({"x265 simulcast": results}, "ssim", args.out / "rd_ssim.png", title="x265 simulcast anchor")
    for r in results:
        plot_frame_bytes(r["per_frame"], args.out / f"frame_bytes_crf{r['crf']}.png", title=f"x265 CRF {r['crf']}")
    summary = {
        "dataset": str(args.data),
        "cameras": list(frames.keys()),
        "downscale": args.downscale,
        "load_s": round(load_s, 3),
        "points": [{k: v for k, v in r.items() if k != "per_frame"} for r in results],
    }
    (args.out / "results.json").write_text(
        strict_json({**summary, "per_frame": {r["crf"]: r["per_frame"] for r in results}}, indent=2)
    )
    print(strict_json(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
