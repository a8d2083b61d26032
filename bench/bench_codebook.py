#!/usr/bin/env python
"""vvc-codebook benchmark (issue 12 item 8): ablations (paper Table 3) and an RD curve over k, CPU preset.

Usage (from the repo root):
    .venv/bin/python bench/bench_codebook.py [--data ../shared/data/panoptic-basketball] [--out bench_out/codebook]
        [--frames 30] [--downscale 4] [--ks 256 1024 4096] [--contraction 0.5] [--scene-box-size 1.5]
        [--outer-opacity world]
        [--rate-aware-summary bench_out/rd_panoptic/summary.json] [--no-lpips] [--preset vvc-codebook-cpu]
        [--dynamic-codes 256]
        [--train-args ...]

Defaults: panoptic-basketball frames 0–29 at 160×90 (downscale 4), all 27 training and the 4 test cameras.
1. Trains ONE run of the preset (training is independent of k) with the default k, then, for every other k,
   copies that run after its `importance` stage and runs the remaining stages only (stages.json resume).
   Every k is measured with and without its dynamic codes (`sequence-nodyn.vvc`); `--dynamic-codes N ...` adds
   runs with N dynamic density codes per fragment at the smallest k (forked after its `quantize` stage).
2. Measures every stream from its decoded file with `ns-vvc eval` (test PSNR / SSIM / LPIPS), and the
   uncompressed float planes by rendering the run's trained planes directly (same cameras, same metrics).
3. Writes summary.json (ablation rows: PSNR / SSIM / LPIPS, total MB, KB/frame, train + compression minutes,
   peak RSS; the k curve; CPU decode seconds: open + GLOBALS, a fragment's first frame, a later frame) and
   rd_psnr.png (vvc-codebook over k, with vvc-rate-aware's curve when its rd-sweep summary.json is given).
Resumable: rerun the same command. Heavy (tens of minutes on 2 cores): not part of the test suite.
Exits 0 with a message if the data set is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from nerfstudio_vvc.jsonio import strict_json  # noqa: E402
from nerfstudio_vvc.methods.codebook.spec import METHOD, NODYN_BITSTREAM_NAME  # noqa: E402

STREAM, NODYN = str(METHOD.bitstream), NODYN_BITSTREAM_NAME

BIN = Path(sys.executable).parent
METHOD_ENV = ("vvc-codebook=nerfstudio_vvc.method_configs.codebook:vvc_codebook,"
              "vvc-codebook-cpu=nerfstudio_vvc.method_configs.codebook:vvc_codebook_cpu")
REDO_FROM = "codebook"
"""Stages from this one on depend on k; earlier ones (train, importance) are shared by the k curve."""


def _env() -> Dict[str, str]:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    env.setdefault("NERFSTUDIO_METHOD_CONFIGS", METHOD_ENV)  # harmless once the entry points are installed
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _done(run: Path) -> List[str]:
    p = run / "stages.json"
    return json.loads(p.read_text())["done"] if p.exists() else []


def train(args, runs: Path, name: str, k: int, extra: Sequence[str] = ()) -> Path:
    run = runs / "bench" / args.preset / name
    if "code" in _done(run):
        return run
    cmd = [
        str(BIN / "ns-train"),
        args.preset,
        "--output-dir",
        str(runs),
        "--experiment-name",
        "bench",
        "--timestamp",
        name,
        "--vis",
        "tensorboard",
        "--machine.device-type",
        args.device,
        "--pipeline.model.contraction",
        str(args.contraction),
        "--pipeline.model.outer-opacity",
        args.outer_opacity,
        *args.train_args,
        *extra,
        "--pipeline.model.codebook-size",
        str(k),
        "vvc-data",
        "--data",
        str(args.data),
        "--frame-start",
        "0",
        "--num-frames",
        str(args.frames),
        "--downscale-factor",
        str(args.downscale),
        *(["--scene-box-size", str(args.scene_box_size)] if args.scene_box_size > 0 else []),
    ]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env=_env())
    return run


def fork_run(base: Path, dst: Path, redo_from: str = REDO_FROM) -> None:
    """A copy of `base` whose stages from `redo_from` on are not done (the earlier ones reused)."""
    if dst.exists():
        return
    shutil.copytree(
        base, dst, ignore=shutil.ignore_patterns("frames", "*.vvc", "*.part", "eval*", "planes_float32.bin")
    )
    state = json.loads((dst / "stages.json").read_text())
    keep = state["done"][: state["done"].index(redo_from)]
    state["done"] = keep
    state["stats"] = {k: v for k, v in state["stats"].items() if k in keep}
    (dst / "stages.json").write_text(strict_json(state, indent=1))
    for p in (dst / "stages").glob("*.pt"):
        if p.stem.split(".")[0] not in keep:
            p.unlink()


def evaluate(run: Path, stream: str, lpips: bool) -> Dict:
    out = run / f"eval-{stream.removesuffix('.vvc')}"
    metrics = out / "metrics.json"
    if not metrics.exists():
        subprocess.run(
            [
                str(BIN / "ns-vvc"),
                "eval",
                str(run / stream),
                "--load-config",
                str(run / "config.yml"),
                "--output-dir",
                str(out),
                "--train-views",
                "0",
                *([] if lpips else ["--no-lpips"]),
            ],
            check=True,
            env=_env(),
        )
    m = json.loads(metrics.read_text())
    return _row(m["frames"], m["file_bytes"])


def _row(frames: List[Dict], nbytes: int) -> Dict:
    import numpy as np

    mean = lambda k: (
        float(np.mean([f[k] for f in frames if f.get(k) is not None]))
        if any(f.get(k) is not None for f in frames)
        else None
    )  # noqa: E731
    return {
        "psnr_db": mean("psnr_db"),
        "ssim": mean("ssim"),
        "lpips": mean("lpips"),
        "total_mb": nbytes / 1e6,
        "kb_per_frame": nbytes / 1e3 / max(len(frames), 1),
    }


def evaluate_float_planes(run: Path, lpips: bool) -> Dict:
    """Test-view metrics of the trained float planes (the uncompressed row), rendered from the checkpoint."""
    out = run / "eval-planes" / "metrics.json"
    if out.exists():
        return json.loads(out.read_text())
    os.environ.setdefault("NERFSTUDIO_METHOD_CONFIGS", METHOD_ENV)
    import torch
    from nerfstudio.utils.eval_utils import eval_setup

    from nerfstudio_vvc.eval.metrics import image_metrics

    _, pipeline, _, _ = eval_setup(run / "config.yml", test_mode="test")
    dm, model = pipeline.datamanager, pipeline.model
    frames = []
    for f in range(len(json.loads((run / "compression.json").read_text())[STREAM]["frame_bytes"])):
        per = []
        for idx in dm.frame_image_indices(f, "test").tolist():
            camera, batch = dm.camera(idx, "test")
            bundle = camera.generate_rays(camera_indices=0, keep_shape=True)
            h, w = bundle.origins.shape[:2]
            o, d, t = bundle.origins.reshape(-1, 3), bundle.directions.reshape(-1, 3), bundle.times.reshape(-1)
            with torch.no_grad():
                rgb = torch.cat(
                    [
                        model.render_grouped(o[i : i + 4096], d[i : i + 4096], t[i : i + 4096], jitter=False)["rgb"]
                        for i in range(0, len(o), 4096)
                    ]
                ).reshape(h, w, 3)
            per.append(image_metrics(rgb.clamp(0, 1).cpu(), batch["image"].cpu()[..., :3], use_lpips=lpips))
        frames.append(
            {
                k: sum(p[k] for p in per) / len(per) if all(p.get(k) is not None for p in per) else None
                for k in ("psnr_db", "ssim", "lpips")
            }
        )
    row = _row(frames, (run / "planes_float32.bin").stat().st_size)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(strict_json(row, indent=1))
    return row


def decode_timing(path: Path, repeats: int = 3) -> Dict:
    """Seconds to open the file (header + GLOBALS), to decode each fragment's first frame into a renderable field
    (`decode_step` + `frame_field`: what playback starting at that fragment waits for) and each later frame; median
    over `repeats` passes with a fresh decoder, on this process's torch threads."""
    import statistics
    import time

    import torch

    from nerfstudio_vvc.methods.codebook.decoder import frame_field
    from nerfstudio_vvc.playback.registry import open_decoder

    opens: List[float] = []
    firsts: List[float] = []
    others: List[float] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        dec = open_decoder(path)
        opens.append(time.perf_counter() - t0)
        prev = None
        for f in dec.frames():
            t0 = time.perf_counter()
            prev = dec.decode_step(f, prev)
            frame_field(dec.spec, prev, torch.device("cpu"))
            (firsts if dec.is_iframe(f) else others).append(time.perf_counter() - t0)
    med = statistics.median
    return {
        "open_globals_s": med(opens),
        "fragment_first_frame_s": med(firsts),
        "fragment_first_frame_max_s": max(firsts),
        "other_frame_s": med(others) if others else None,
        "torch_threads": torch.get_num_threads(),
    }


def minutes(run: Path, stages: Optional[List[str]] = None) -> float:
    st = json.loads((run / "stages.json").read_text())["stats"]
    return sum(v["seconds"] for k, v in st.items() if stages is None or k in stages) / 60.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "panoptic-basketball")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "bench_out" / "codebook")
    ap.add_argument("--preset", default="vvc-codebook-cpu")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--downscale", type=int, default=4)
    ap.add_argument(
        "--ks",
        type=int,
        nargs="+",
        default=[256, 1024, 4096],
        help="codebook sizes; the first after the preset's default 1024 is trained, the others reuse its training",
    )
    ap.add_argument(
        "--dynamic-codes",
        type=int,
        nargs="*",
        default=[],
        help="more dynamic density codes per "
        "fragment (appearance: half) at the smallest k, forked from that run after `quantize`",
    )
    ap.add_argument("--contraction", type=float, default=0.5)
    ap.add_argument(
        "--outer-opacity",
        choices=("contracted", "world"),
        default="world",
        help="opacity outside the box (contracted scenes): 'world' suits the Panoptic dome (docs/codebook.md)",
    )
    ap.add_argument("--scene-box-size", type=float, default=1.5, help="0: the dataparser's default")
    ap.add_argument(
        "--rate-aware-summary",
        type=Path,
        default=None,
        help="rd-sweep summary.json of vvc-rate-aware on the same frames",
    )
    ap.add_argument("--no-lpips", action="store_true")
    ap.add_argument("--train-args", nargs=argparse.REMAINDER, default=[], help="extra ns-train arguments (last)")
    args = ap.parse_args(argv)
    if not (args.data / "train_meta.json").exists():
        print(f"{args.data}: no data set there; nothing to benchmark")
        return 0
    lpips = not args.no_lpips
    runs = args.out / "runs"
    base_k = 1024 if 1024 in args.ks else args.ks[0]
    base = train(args, runs, f"k{base_k}", base_k)
    curve = []
    for k in args.ks:
        run = base if k == base_k else runs / "bench" / args.preset / f"k{k}"
        if k != base_k:
            fork_run(base, run)
            train(args, runs, f"k{k}", k)
        row = evaluate(run, STREAM, lpips)
        point = {"k": k, **row, "compression_minutes": minutes(run, [s for s in _done(run) if s != "train"])}
        if (run / NODYN).exists():  # the dynamic codes' gain at every k, not only the default
            point["without_dynamic_codes"] = evaluate(run, NODYN, lpips)
        curve.append(point)
    dyn_k = min(args.ks)
    dynamic_curve = []
    for n in args.dynamic_codes:
        name = f"k{dyn_k}-dyn{n}"
        run = runs / "bench" / args.preset / name
        fork_run(runs / "bench" / args.preset / f"k{dyn_k}", run, redo_from="dynamic")
        train(
            args,
            runs,
            name,
            dyn_k,
            [
                "--pipeline.model.dynamic-density-codes",
                str(n),
                "--pipeline.model.dynamic-appearance-codes",
                str(max(n // 2, 1)),
            ],
        )
        dynamic_curve.append(
            {
                "k": dyn_k,
                "dynamic_density_codes": n,
                "dynamic_appearance_codes": max(n // 2, 1),
                **evaluate(run, STREAM, lpips),
                "dynamic_seconds": json.loads((run / "stages.json").read_text())["stats"]["dynamic"]["seconds"],
            }
        )
    ablation = {
        "uncompressed planes": evaluate_float_planes(base, lpips),
        "without dynamic codes": evaluate(base, NODYN, lpips),
        "with dynamic codes": evaluate(base, STREAM, lpips),
    }
    stages = json.loads((base / "stages.json").read_text())
    summary = {
        "scene": str(args.data),
        "frames": args.frames,
        "downscale": args.downscale,
        "preset": args.preset,
        "ablation": ablation,
        "k_curve": curve,
        "dynamic_curve": dynamic_curve,
        "train_minutes": minutes(base, ["train"]),
        "compression_minutes": minutes(base) - minutes(base, ["train"]),
        "stage_seconds": {k: v["seconds"] for k, v in stages["stats"].items()},
        "peak_rss_mb": stages.get("peak_rss_mb"),
        "decode_cpu": decode_timing(base / STREAM),
    }
    from nerfstudio_vvc.eval.plots import plot_rd_curves

    curves = {"vvc-codebook (k)": curve}
    if args.rate_aware_summary and args.rate_aware_summary.exists():
        ra = json.loads(args.rate_aware_summary.read_text())
        curves["vvc-rate-aware"] = [p for p in ra.get("points", []) if str(p.get("run", "")).startswith("full")]
    plot_rd_curves(
        curves, metric="psnr_db", out_png=args.out / "rd_psnr.png", title=f"{args.data.name}, {args.frames} frames"
    )
    (args.out / "summary.json").write_text(strict_json(summary, indent=1))
    print(strict_json(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
