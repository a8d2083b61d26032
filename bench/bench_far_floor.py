#!/usr/bin/env python
"""Far content and scene contraction on the sample scene (issue 10 item 3): where the test PSNR is lost.

Usage (from the repo root):
    .venv/bin/python bench/bench_far_floor.py [--out bench_out/far_floor] [--contraction 0.5]
        [--train-args ...]

Renders frame 0 of the sample twice — bounded, and with `far_floor=True` (a 200 m ground plane to the horizon) —
then trains and codes it with vvc-rate-aware-cpu three times: bounded without contraction, bounded with
`--contraction`, far floor with `--contraction`. Each run is measured from its decoded file (`ns-vvc eval`,
test cameras), and its test PSNR is split into **near** pixels (ground truth identical in both samples) and
**far** pixels (where the far floor changes the ground truth). Comparing the rows separates the cost of the
contraction itself (rows 1 → 2) from the cost of far content (rows 2 → 3), and, within row 3, the far ground
from the near field. PSNRs are computed from the 8-bit side-by-side PNGs `ns-vvc eval` writes. Prints
summary.json. Resumable (finished runs are kept). A few minutes per run on 2 cores; not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from nerfstudio_vvc.jsonio import strict_json  # noqa: E402
from nerfstudio_vvc.methods.rate_aware.spec import METHOD  # noqa: E402

BIN = Path(sys.executable).parent
PRESET = str(METHOD.cpu_preset)
STREAM = str(METHOD.bitstream)


def _env() -> Dict[str, str]:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def sample(out: Path, far: bool) -> Path:
    from nerfstudio_vvc.data.sample_scene import make_sample

    path = out / ("sample-far" if far else "sample-bounded")
    if not (path / "scene.json").exists():
        make_sample(path, num_frames=1, far_floor=far)
    return path


def run(out: Path, name: str, data: Path, contraction: float, train_args: List[str]) -> Path:
    runs = out / "runs"
    run_dir = runs / "ff" / PRESET / name
    if not (run_dir / STREAM).exists() or not (run_dir / "progress.json").exists():
        subprocess.run(
            [
                str(BIN / "ns-train"),
                PRESET,
                "--output-dir",
                str(runs),
                "--experiment-name",
                "ff",
                "--timestamp",
                name,
                "--vis",
                "tensorboard",
                "--machine.device-type",
                "cpu",
                "--max-frames",
                "1",
                "--pipeline.model.contraction",
                str(contraction),
                *train_args,
                "vvc-data",
                "--data",
                str(data),
                "--num-frames",
                "1",
                "--downscale-factor",
                "1",
            ],
            check=True,
            env=_env(),
        )
    ev = out / f"eval-{name}"
    if not (ev / "metrics.json").exists():
        subprocess.run(
            [
                str(BIN / "ns-vvc"),
                "eval",
                str(run_dir / STREAM),
                "--load-config",
                str(run_dir / "config.yml"),
                "--output-dir",
                str(ev),
                "--train-views",
                "0",
                "--no-lpips",
            ],
            check=True,
            env=_env(),
        )
    return ev


def _halves(png: Path):
    from PIL import Image

    a = np.asarray(Image.open(png).convert("RGB"), dtype=np.float64) / 255.0
    w = a.shape[1] // 2
    return a[:, :w], a[:, w:]  # ground truth | render


def _psnr(gt: np.ndarray, pred: np.ndarray, mask: np.ndarray) -> float:
    if not mask.any():
        return float("nan")
    mse = float(((gt - pred) ** 2)[mask].mean())
    return float(-10.0 * np.log10(max(mse, 1e-12)))


def split_psnr(ev: Path, ev_bounded: Path, ev_far: Path) -> Dict:
    """Test PSNR of run `ev` over all, near and far pixels (far: the two samples' ground truths differ)."""
    rows = {"all": [], "near": [], "far": []}
    far_fraction = []
    for png in sorted(ev.glob("frame*_cam*.png")):
        gt, pred = _halves(png)
        gt_b, _ = _halves(ev_bounded / png.name)
        gt_f, _ = _halves(ev_far / png.name)
        far = np.abs(gt_f - gt_b).max(axis=-1) > 2.5 / 255.0
        far3 = np.repeat(far[..., None], 3, axis=-1)
        rows["all"].append(_psnr(gt, pred, np.ones_like(far3)))
        rows["near"].append(_psnr(gt, pred, ~far3))
        rows["far"].append(_psnr(gt, pred, far3))
        far_fraction.append(float(far.mean()))
    return {
        **{f"psnr_{k}_db": float(np.nanmean(v)) for k, v in rows.items()},
        "far_pixel_fraction": float(np.mean(far_fraction)),
        "images": len(far_fraction),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "bench_out" / "far_floor")
    ap.add_argument("--contraction", type=float, default=0.5)
    ap.add_argument("--train-args", nargs=argparse.REMAINDER, default=[], help="extra ns-train arguments (last)")
    args = ap.parse_args(argv)
    try:
        return _bench(args)
    except (OSError, subprocess.CalledProcessError, ValueError, KeyError) as e:  # one line, not a traceback
        print(f"bench_far_floor: {args.out}: {type(e).__name__}: {e}")
        return 1


def _bench(args) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    bounded, far = sample(args.out, far=False), sample(args.out, far=True)
    c = args.contraction
    evals = {
        "bounded, no contraction": run(args.out, "bounded-c0", bounded, 0.0, args.train_args),
        f"bounded, contraction {c:g}": run(args.out, f"bounded-c{c:g}", bounded, c, args.train_args),
        f"far floor, contraction {c:g}": run(args.out, f"far-c{c:g}", far, c, args.train_args),
    }
    ev_b, ev_f = evals["bounded, no contraction"], evals[f"far floor, contraction {c:g}"]
    summary = {
        "scale": "sample scene frame 0, 128², 24 training + 4 test cameras, vvc-rate-aware-cpu, CPU, one seed",
        "train_args": args.train_args,
        "rows": {},
    }
    for name, ev in evals.items():
        m = json.loads((ev / "metrics.json").read_text())
        summary["rows"][name] = {
            "file_bytes": m["file_bytes"],
            "psnr_db_eval": m["frames"][0]["psnr_db"],
            **split_psnr(ev, ev_b, ev_f),
        }
    (args.out / "summary.json").write_text(strict_json(summary, indent=1))
    print(strict_json(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
