#!/usr/bin/env python
"""vvc-mv-inr benchmark (issue 13 item 7a + ablations): clip (a) of panoptic-basketball, CPU preset.

Usage (from the repo root):
    .venv/bin/python bench/bench_mv_inr.py [--data ../shared/data/panoptic-basketball] [--out bench_out/mv_inr]
        [--cameras 15 12 22 5] [--frames 16] [--downscale 2] [--ablations] [--no-lpips] [--preset vvc-mv-inr-cpu]
        [--train-args ...]

Defaults: cameras 15, 12, 22, 5 (neighbours 25–31° apart), frames 0–15 at 320×180 (downscale 2).
1. Trains the preset once (`full`), and with --ablations also without grid embedding and without inter-view
   compensation (paper Table III), each a resumable ns-train run.
2. Measures each file with `ns-vvc eval` (every decoded view against its original: PSNR / SSIM / LPIPS), and the
   decode speed (view-frames per second, all views of every frame, from the file, after the GLOBALS are read).
3. Writes summary.json: per run the non-basic views' mean PSNR, the basic view's, total bytes, bpp, KB/frame,
   compression ratios Q / Q+P / Q+P+E (paper Table IV; Q+P counts nonzero 8-bit values only), the Huffman figure
   (a comparison: the file uses constriction), stage seconds, peak RSS.
For the RD curve against x265 simulcast (item 7b) use `ns-vvc rd-sweep --preset vvc-mv-inr-cpu` (docs/evaluation.md).
Resumable: rerun the same command. Heavy (≈15–20 min per run on 2 cores): not part of the test suite.
Exits 0 with a message if the data set is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from nerfstudio_vvc.jsonio import strict_json  # noqa: E402
from nerfstudio_vvc.methods.mv_inr.spec import METHOD  # noqa: E402

BIN = Path(sys.executable).parent
METHOD_ENV = ("vvc-mv-inr=nerfstudio_vvc.method_configs.mv_inr:vvc_mv_inr,"
              "vvc-mv-inr-cpu=nerfstudio_vvc.method_configs.mv_inr:vvc_mv_inr_cpu")
RUNS = {"full": [], "wo-embedding": ["--pipeline.model.grid-embedding", "False"],
        "wo-compensation": ["--pipeline.model.compensation", "False"]}


def _env() -> Dict[str, str]:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    env.setdefault("NERFSTUDIO_METHOD_CONFIGS", METHOD_ENV)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _done(run: Path) -> List[str]:
    p = run / "stages.json"
    return json.loads(p.read_text())["done"] if p.exists() else []


def train(args, runs: Path, name: str) -> Path:
    run = runs / "bench" / args.preset / name
    if "code" in _done(run):
        return run
    cmd = [str(BIN / "ns-train"), args.preset, "--output-dir", str(runs), "--experiment-name", "bench",
           "--timestamp", name, "--vis", "tensorboard", "--machine.device-type", args.device, *RUNS[name],
           *args.train_args, "vvc-data", "--data", str(args.data), "--train-cameras", *[str(c) for c in args.cameras],
           "--num-frames", str(args.frames), "--downscale-factor", str(args.downscale)]
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, env=_env(), check=True)
    return run


def measure(run: Path, lpips: bool) -> Dict:
    from nerfstudio_vvc.playback.eval_views import eval_decoded_views
    from nerfstudio_vvc.playback.registry import open_decoder

    path = run / str(METHOD.bitstream)
    t0 = time.perf_counter()
    decoder = open_decoder(path)
    open_s = time.perf_counter() - t0
    views = eval_decoded_views(decoder, run / "config.yml", run / "eval", use_lpips=lpips)
    stages = json.loads((run / "stages.json").read_text())
    comp = json.loads((run / "compression.json").read_text())
    n_frames = len(decoder.frames())
    inr = [v for v in views["per_view"].values() if v["role"] == "inr"]
    mean = lambda k: sum(v[k] for v in inr) / len(inr) if all(v[k] is not None for v in inr) else None  # noqa: E731
    return {
        "file_bytes": path.stat().st_size,
        "kb_per_frame": path.stat().st_size / 1000 / n_frames,
        "bpp": views["summary"]["bpp"],
        "hevc_bytes": comp["hevc_bytes"],
        "inr_bytes": comp["inr_bytes"],
        "non_basic_psnr_db": mean("psnr_db"),
        "non_basic_ssim": mean("ssim"),
        "non_basic_lpips": mean("lpips"),
        "basic_view_psnr_db": views["summary"]["basic_view_psnr_db"],
        "basic_camera": comp["basic_camera"],
        "per_view": views["per_view"],
        "decode_open_s": open_s,
        "decode_view_frames_per_s": views["summary"]["decode_view_frames_per_s"],
        "compression_ratios": comp["compression_ratios"],
        "entropy_coding": comp["entropy_coding"],
        "stage_seconds": {k: v.get("seconds") for k, v in stages["stats"].items()},
        "train_minutes": sum(
            v.get("seconds", 0.0) for k, v in stages["stats"].items() if k in ("fit", "finetune", "qat")
        )
        / 60,
        "peak_rss_mb": stages.get("peak_rss_mb"),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "panoptic-basketball")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "bench_out" / "mv_inr")
    ap.add_argument("--preset", default="vvc-mv-inr-cpu")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cameras", type=int, nargs="+", default=[15, 12, 22, 5])
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--downscale", type=int, default=2)
    ap.add_argument("--ablations", action="store_true", help="also train without grid embedding / compensation")
    ap.add_argument("--no-lpips", action="store_true")
    ap.add_argument("--train-args", nargs=argparse.REMAINDER, default=[], help="extra ns-train arguments (last)")
    args = ap.parse_args(argv)
    if not (args.data / "train_meta.json").exists() and not (args.data / "transforms.json").exists():
        print(strict_json({"skipped": f"{args.data}: data set not found (expected panoptic-basketball)"}))
        return 0
    runs_dir = args.out / "runs"
    names = list(RUNS) if args.ablations else ["full"]
    rows = {n: measure(train(args, runs_dir, n), not args.no_lpips) for n in names}
    summary = {
        "scale": {
            "data": str(args.data),
            "cameras": args.cameras,
            "frames": args.frames,
            "downscale": args.downscale,
            "preset": args.preset,
            "train_args": args.train_args,
            "device": args.device,
        },
        "runs": rows,
        "note": "sizes are the bytes of sequence.vvc; qualities from the views decoded from it; Huffman and the "
        "Q / Q+P ratios are comparisons, not sizes of a file",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(strict_json(summary, indent=1))
    print(strict_json(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
