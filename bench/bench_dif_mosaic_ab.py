#!/usr/bin/env python
"""vvc-rate-aware playback with and without the 2-D grid mosaics (`components/heads.py::GridMosaic`), alternated
render by render in one process on one decoded frame (the machine's load drifts; alternating is the comparison it
affects least).

Usage (from the repo root):
    .venv/bin/python bench/bench_dif_mosaic_ab.py FILE.vvc [--frame 1] [--width 256] [--height 253] [--repeats 8]
        [--threads 1] [--render-workers 1] [--paper-grids]

Both sides are `render_rays_playback` on the same decoder, field and camera; only the DiF look-up differs
(`DiFSplit(field, mosaics=...)`; the baking is done once per side before the timed renders, as the decoder does once
per frame: `bake_ms`). Prints JSON: median and every render's seconds per side, the ratio mosaic / 3-D, the largest
pixel difference between the two pictures and against the exact renderer. `--paper-grids` resamples the decoded
grids (trilinear, corners aligned) to the paper preset's resolutions (basis 32…128³, coefficients 32³: `DiFSpec`'s
defaults) before rendering: nearly the same field and the same samples, with the look-up cost of a file the GPU
preset wrote (the CPU preset's grids are 12…32³ and stay in the CPU's caches).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))
from bench_render import default_camera  # noqa: E402

from nerfstudio_vvc.components.rendering import set_playback_workers  # noqa: E402
from nerfstudio_vvc.methods.rate_aware.decoder import DiFSplit, RateAwareDecoder  # noqa: E402
from nerfstudio_vvc.methods.rate_aware.field import DiFSpec  # noqa: E402
from nerfstudio_vvc.playback.decoder import MethodDecoder  # noqa: E402
from nerfstudio_vvc.playback.registry import open_decoder  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--frame", type=int, default=1)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--height", type=int, default=253)
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--render-workers", type=int, default=1, help="playback worker threads (0: one per core)")
    ap.add_argument("--paper-grids", action="store_true",
                    help="resample the grids to the paper preset's resolutions (look-up cost of a GPU-preset file)")
    a = ap.parse_args()
    if not a.file.is_file():
        print(f"{a.file}: no such file", file=sys.stderr)
        return 2
    torch.set_num_threads(a.threads)
    set_playback_workers(a.render_workers)
    decoder = open_decoder(a.file)
    if not isinstance(decoder, RateAwareDecoder):
        print(f"{a.file}: a {decoder.header.method_id} file; this bench compares vvc-rate-aware's DiF look-ups",
              file=sys.stderr)
        return 2
    decoded = decoder.decode_frame(a.frame)
    field, occ = decoder.field_for(decoded)
    if a.paper_grids:
        paper = DiFSpec()
        sizes = [paper.coeff_resolution, *paper.basis_resolutions]
        field.set_grids([torch.nn.functional.interpolate(g[None], size=(r, r, r), mode="trilinear",
                                                         align_corners=True)[0] for g, r in zip(field.grids, sizes)])
    c2w, fx, fy, cx, cy = default_camera(decoder.header.scene_box, a.width, a.height)
    origins, dirs = MethodDecoder.camera_rays(c2w, fx, fy, cx, cy, a.width, a.height)
    settings = decoder.render_settings
    splits, bake_ms = {}, {}
    for name, on in (("grid_3d", False), ("mosaic", True)):
        t0 = time.perf_counter()
        splits[name] = DiFSplit(field, mosaics=on)
        bake_ms[name] = round(1000 * (time.perf_counter() - t0), 1)
    times = {name: [] for name in splits}
    pictures = {}
    with torch.no_grad():
        want = settings.render(field, origins, dirs, occ)["rgb"]
        for i in range(a.repeats + 1):  # the first round warms up and is not counted
            for name, split in splits.items():
                t0 = time.perf_counter()
                pictures[name] = settings.render_playback(split, origins, dirs, occ)["rgb"]
                if i:
                    times[name].append(round(time.perf_counter() - t0, 4))
    med = {name: statistics.median(t) for name, t in times.items()}
    print(json.dumps({
        "file": str(a.file), "frame": a.frame, "width": a.width, "height": a.height, "threads": a.threads,
        "render_workers": a.render_workers, "paper_grids": a.paper_grids,
        "grids": [list(g.shape) for g in field.grids], "bake_ms": bake_ms,
        "median_s": {k: round(v, 4) for k, v in med.items()}, "renders_s": times,
        "ratio_mosaic_over_3d": round(med["mosaic"] / med["grid_3d"], 3),
        "max_abs_diff_mosaic_vs_3d": float((pictures["mosaic"] - pictures["grid_3d"]).abs().max()),
        "max_abs_diff_vs_exact": {k: float((p - want).abs().max()) for k, p in pictures.items()},
    }, indent=1))
    decoder.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
