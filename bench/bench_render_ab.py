#!/usr/bin/env python
"""Playback renderer before/after in one process: the working tree's `render_rays_playback` against the one in
`components/rendering.py` at a git revision, alternated render by render on one decoded frame (the machine's load
drifts; alternating in one process is the comparison that drift and process start-up affect least).

Usage (from the repo root):
    .venv/bin/python bench/bench_render_ab.py FILE.vvc --ref REV [--frame 1] [--width 256] [--height 253]
        [--repeats 8] [--threads 1] [--chunk 16384]

Only the renderer function differs between the two (decoder, field, camera and chunking are the working tree's);
the REV module must have the same `render_rays_playback` signature. Prints JSON: median and every render's seconds
per version, the ratio after/before, and the largest pixel difference between the two pictures.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))
from bench_render import default_camera  # noqa: E402

from nerfstudio_vvc.components import rendering  # noqa: E402
from nerfstudio_vvc.playback.registry import open_decoder  # noqa: E402


def renderer_at(rev: str):
    """`render_rays_playback` of components/rendering.py at git revision `rev` (loaded as a separate module)."""
    src = subprocess.run(["git", "show", f"{rev}:nerfstudio_vvc/components/rendering.py"], cwd=REPO_ROOT,
                         capture_output=True, text=True)
    if src.returncode != 0:
        raise SystemExit(f"git show {rev}: {src.stderr.strip()}")
    path = Path(tempfile.mkdtemp()) / f"rendering_{rev.replace('/', '_')}.py"
    path.write_text(src.stdout)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = mod  # (its dataclasses look their module up)
    spec.loader.exec_module(mod)
    return mod.render_rays_playback


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--ref", required=True, help="git revision of the 'before' renderer")
    ap.add_argument("--frame", type=int, default=1)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--height", type=int, default=253)
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--chunk", type=int, default=16384)
    a = ap.parse_args()
    if not a.file.exists():
        raise SystemExit(f"{a.file}: no such file")
    torch.set_num_threads(a.threads)
    impl = {"before": renderer_at(a.ref), "after": rendering.render_rays_playback}
    dec = open_decoder(a.file)
    decoded = dec.decode_frame(a.frame)
    c2w, fx, fy, cx, cy = default_camera(dec.header.scene_box, a.width, a.height)
    times = {k: [] for k in impl}
    images = {}
    try:
        for rep in range(a.repeats + 1):  # the first round warms both up and is not counted
            for name in ("before", "after") if rep % 2 == 0 else ("after", "before"):
                rendering.render_rays_playback = impl[name]
                t0 = time.perf_counter()
                images[name] = dec.render(decoded, c2w, fx, fy, cx, cy, a.width, a.height, chunk=a.chunk,
                                          playback=True)
                if rep:
                    times[name].append(time.perf_counter() - t0)
    finally:
        rendering.render_rays_playback = impl["after"]
    med = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps({
        "file": str(a.file), "frame": a.frame, "width": a.width, "height": a.height, "threads": a.threads,
        "chunk": a.chunk, "ref": a.ref, "median_s": {k: round(v, 3) for k, v in med.items()},
        "renders_s": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "after_over_before": round(med["after"] / med["before"], 3),
        "max_abs_diff": float((images["after"] - images["before"]).abs().max()),
    }, indent=1))


if __name__ == "__main__":
    main()
