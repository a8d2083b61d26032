#!/usr/bin/env python
"""CPU grid look-ups split over torch threads or not (`components/heads.py::sample_grid`), alternated in one process.

Usage (from the repo root):
    .venv/bin/python bench/bench_grid_split_ab.py FILE.vvc [--width 256] [--height 253] [--repeats 4] [--threads 2]

Decodes frame 1 and renders the viewer's start view with the exact and the playback renderer, each render done twice
in a row: once with the split (`SPLIT_MIN_POINTS` = 8192) and once without (one batch entry); prints JSON with the
median seconds of each and whether the two pictures are identical (they must be: the same floats per point).
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

from nerfstudio_vvc.components import heads  # noqa: E402
from nerfstudio_vvc.playback.registry import open_decoder  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--height", type=int, default=253)
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    if not a.file.exists():
        raise SystemExit(f"{a.file}: no such file")
    torch.set_num_threads(a.threads)
    decoder = open_decoder(a.file)
    decoded = decoder.decode_frame(1 if 1 in decoder.frames() else decoder.frames()[0])
    c2w, fx, fy, cx, cy = default_camera(decoder.header.scene_box, a.width, a.height)
    split_default = heads.SPLIT_MIN_POINTS
    out = {"file": str(a.file), "width": a.width, "height": a.height, "threads": a.threads, "repeats": a.repeats}
    for renderer in ("exact", "playback"):
        times = {"split": [], "one_entry": []}
        images = {}
        for r in range(a.repeats + 1):  # the first round warms caches and is not counted
            for mode in times:
                heads.SPLIT_MIN_POINTS = split_default if mode == "split" else 1 << 62
                t0 = time.perf_counter()
                images[mode] = decoder.render(decoded, c2w, fx, fy, cx, cy, a.width, a.height,
                                              playback=renderer == "playback")
                if r:
                    times[mode].append(time.perf_counter() - t0)
        heads.SPLIT_MIN_POINTS = split_default
        med = {m: statistics.median(v) for m, v in times.items()}
        out[renderer] = {"split_s": round(med["split"], 3), "one_entry_s": round(med["one_entry"], 3),
                         "ratio": round(med["split"] / med["one_entry"], 3),
                         "identical": bool(torch.equal(images["split"], images["one_entry"]))}
    decoder.close()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
