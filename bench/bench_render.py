#!/usr/bin/env python
"""Playback render rate: decode + render of one 640×360 view from a decoded frame, per method and device.

Usage (from the repo root):
    .venv/bin/python bench/bench_render.py FILE.vvc [FILE.vvc ...] [--frame 1] [--width 640] [--height 360]
        [--repeats 3] [--devices cpu cuda] [--renderers exact playback] [--threads N] [--chunk 16384]
        [--render-workers 1 0]

For every file (any registered method) and device (cuda only when present): the frame is decoded from its GOP's
I-frame (`decode_ms`), then one view of the scene box from outside (the viewer's default view, 60° vertical field of
view) is rendered `--repeats` times with each renderer: ``exact`` is `MethodDecoder.render_rays` (what `ns-vvc eval`
measures with), ``playback`` is `render_rays_playback` (what the viewers show). The first render of a frame also
builds its field (`first_render_ms`); `render_ms` is the median of the following ones, `views_per_s` = 1000 /
render_ms; `cpu_ms` is the process CPU time of a render (all threads; less sensitive to other jobs than wall
time). On a CPU the playback renderer splits a call's rays over `--render-workers` threads (`render_workers` in
each result: the number used). The playback render is compared with the exact one (`max_abs_diff`,
`psnr_vs_exact_db`, RGB in [0, 1]).
Prints one JSON document. Renderers run one after the other in this process: on a shared machine compare within
one run.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from nerfstudio_vvc.components.rendering import playback_workers, set_playback_workers  # noqa: E402
from nerfstudio_vvc.playback.registry import open_decoder  # noqa: E402


def default_camera(scene_box, width: int, height: int, fov_deg: float = 60.0):
    """(c2w [3, 4] OpenGL, fx, fy, cx, cy): outside the box, looking at its centre, z up (the viewer's start view)."""
    aabb = torch.tensor([list(scene_box[0]), list(scene_box[1])], dtype=torch.float32)
    center = aabb.mean(0)
    half_diag = float((aabb[1] - aabb[0]).norm()) / 2
    direction = torch.tensor([1.0, -1.0, 0.35])
    eye = center + direction / direction.norm() * 1.25 * half_diag
    back = torch.nn.functional.normalize(eye - center, dim=0)  # camera +z (it looks down -z)
    right = torch.nn.functional.normalize(torch.linalg.cross(torch.tensor([0.0, 0.0, 1.0]), back), dim=0)
    up = torch.linalg.cross(back, right)
    c2w = torch.stack([right, up, back, eye], 1)
    f = 0.5 * height / math.tan(math.radians(fov_deg) / 2)
    return c2w, f, f, width / 2, height / 2


def bench_file(path: Path, frame: int, width: int, height: int, repeats: int, device: str,
               renderers: List[str], chunk: int = 16384) -> Dict:
    decoder = open_decoder(path)
    frames = decoder.frames()
    f = frame if frame in frames else frames[min(len(frames) - 1, max(frame, 0))]
    t0 = time.perf_counter()
    decoded = decoder.decode_frame(f)
    decode_ms = 1000 * (time.perf_counter() - t0)
    c2w, fx, fy, cx, cy = default_camera(decoder.header.scene_box, width, height)
    out: Dict = {"file": str(path), "method": decoder.header.method_id, "frame": f, "is_iframe": decoder.is_iframe(f),
                 "device": device, "width": width, "height": height, "chunk": chunk, "decode_ms": round(decode_ms, 1),
                 "renderers": {}}
    images = {}
    for name in renderers:
        times, cpu = [], []
        for i in range(repeats + 1):
            if device == "cuda":
                torch.cuda.synchronize()
            t0, c0 = time.perf_counter(), time.process_time()
            img = decoder.render(decoded, c2w, fx, fy, cx, cy, width, height, chunk=chunk,
                                 playback=name == "playback", device=device)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(1000 * (time.perf_counter() - t0))
            cpu.append(1000 * (time.process_time() - c0))
            decoder.render_rays(decoded, c2w[:3, 3].to(device)[None], c2w[:3, 2].to(device)[None])  # keep caches warm
        images[name] = img.float().cpu()
        ms = statistics.median(times[1:])
        out["renderers"][name] = {"first_render_ms": round(times[0], 1), "render_ms": round(ms, 1),
                                  "views_per_s": round(1000 / ms, 3), "rays_per_s": round(width * height / ms * 1000),
                                  "decode_plus_render_ms": round(decode_ms + ms, 1),
                                  "cpu_ms": round(statistics.median(cpu[1:]), 1)}
    settings, field_for = getattr(decoder, "render_settings", None), getattr(decoder, "field_for", None)
    if settings is not None and field_for is not None and "playback" in out["renderers"]:
        # field work per ray, independent of other jobs on the machine: samples whose density the field computes
        from nerfstudio_vvc.playback.decoder import MethodDecoder

        rays = MethodDecoder.camera_rays(c2w.to(device), fx, fy, cx, cy, width, height)
        with torch.no_grad():
            for name in ("exact", "playback"):
                n = 0.0
                for i in range(0, len(rays[0]), 8192):
                    o, d = rays[0][i : i + 8192], rays[1][i : i + 8192]
                    if name == "exact":
                        n += float(settings.render(field_for(decoded, device)[0], o, d, field_for(decoded, device)[1])[
                            "num_samples"].sum())
                    else:
                        field, occ = field_for(decoded, device)
                        split = decoder.playback_split(field)
                        n += float(settings.render_playback(split, o, d, occ)["num_samples"].sum())
                if name in out["renderers"]:
                    out["renderers"][name]["field_samples_per_ray"] = round(n / (width * height), 2)
    if "exact" in images and "playback" in images:
        diff = (images["playback"] - images["exact"]).abs()
        mse = float((diff**2).mean())
        out["renderers"]["playback"].update(
            max_abs_diff=float(diff.max()), psnr_vs_exact_db=(None if mse == 0 else round(-10 * math.log10(mse), 2)),
            speedup=round(out["renderers"]["exact"]["render_ms"] / out["renderers"]["playback"]["render_ms"], 2))
    decoder.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--frame", type=int, default=1, help="frame to decode and render (a P-frame by default)")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--devices", nargs="+", default=["cpu", "cuda"])
    ap.add_argument("--renderers", nargs="+", default=["exact", "playback"], choices=["exact", "playback"])
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--chunk", type=int, default=16384, help="rays per render call (ns-vvc play's default)")
    ap.add_argument("--render-workers", type=int, nargs="+", default=[0],
                    help="CPU playback renders split over this many threads (0: one per core, ns-vvc play's default; "
                         "1: no split); several values: one result each, run after one another")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [d for d in args.devices if d != "cuda" or torch.cuda.is_available()]
    results = []
    for path in args.files:
        if not path.exists():
            raise SystemExit(f"{path}: no such file")
        for device in devices:
            for workers in args.render_workers if device == "cpu" else [1]:
                set_playback_workers(workers)
                res = bench_file(path, args.frame, args.width, args.height, args.repeats, device, args.renderers,
                                 args.chunk)
                results.append({**res, "render_workers": playback_workers()})
    doc = {"torch": torch.__version__, "cpu_threads": torch.get_num_threads(),
           "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
           "skipped_devices": [d for d in args.devices if d not in devices], "results": results}
    print(json.dumps(doc, indent=1, allow_nan=False))


if __name__ == "__main__":
    main()
