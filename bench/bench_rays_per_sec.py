#!/usr/bin/env python
"""Training throughput (rays/s) of vvc-grid vs nerfacto (torch implementation) on the same scene and device.

Usage (from the repo root):
    .venv/bin/python bench/bench_rays_per_sec.py [--data demo_out/sample] [--rays 1024] [--steps 40] [--warmup 5]

Both methods are built from their registered nerfstudio configs, on CPU, with the same rays per batch, and
timed over `--steps` training iterations after `--warmup` (forward + backward + optimizer step, data included).
nerfacto's model constructs torchmetrics' LPIPS, which downloads AlexNet weights; for this training-only
measurement that metric is replaced by a stub that refuses to be called (it is only used in evaluation).
Prints one JSON document. The methods run one after the other in this process: compare the ratio.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from nerfstudio_vvc.jsonio import strict_json  # noqa: E402
from nerfstudio_vvc.methods.spec import find_method  # noqa: E402


class _NoLPIPS(torch.nn.Module):
    def __init__(self, *a, **k):
        super().__init__()

    def forward(self, *a, **k):
        raise RuntimeError("LPIPS is stubbed out in this throughput benchmark")


def _trainer(method: str, data: Path, rays: int, out: Path):
    import torchmetrics.image.lpip as lpip_mod
    from nerfstudio.configs.method_configs import all_methods

    lpip_mod.LearnedPerceptualImagePatchSimilarity = _NoLPIPS  # type: ignore[misc]
    from nerfstudio_vvc.data.dataparser import VvcDataParserConfig

    cfg = all_methods[method]
    cfg.machine.device_type = "cpu"
    cfg.vis = "tensorboard"
    cfg.output_dir = out
    cfg.timestamp = method
    cfg.mixed_precision = False
    cfg.pipeline.datamanager.data = data
    cfg.pipeline.datamanager.dataparser = VvcDataParserConfig(data=data)
    cfg.pipeline.datamanager.train_num_rays_per_batch = rays
    if method == "nerfacto":
        cfg.pipeline.model.implementation = "torch"
        cfg.pipeline.datamanager.eval_num_rays_per_batch = rays
    cfg.set_timestamp()
    cfg.save_config()
    trainer = cfg.setup(local_rank=0, world_size=1)
    trainer.setup()
    spec = find_method(method)  # nerfacto has none
    if spec is not None and spec.trainer == "frame-sequential":
        trainer.pipeline.datamanager.set_frame(0)
        trainer.pipeline.model.begin_frame(0, True)
        trainer.optimizers = trainer.setup_optimizers()
    return trainer


def measure(method: str, data: Path, rays: int, steps: int, warmup: int, out: Path) -> dict:
    trainer = _trainer(method, data, rays, out)
    trainer.pipeline.train()
    for s in range(warmup):
        trainer.train_iteration(s)
    t0 = time.perf_counter()
    for s in range(warmup, warmup + steps):
        trainer.train_iteration(s)
    dt = time.perf_counter() - t0
    return {"method": method, "rays_per_batch": rays, "steps": steps, "seconds": dt, "rays_per_s": rays * steps / dt}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REPO_ROOT / "demo_out" / "sample")
    ap.add_argument("--rays", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "bench_out" / "rays_per_sec")
    args = ap.parse_args(argv)
    if not (args.data / "train_meta.json").exists() and not args.data.exists():
        raise SystemExit(f"{args.data}: no scene (make one with `ns-vvc make-sample --out {args.data}`)")
    res = [measure(m, args.data, args.rays, args.steps, args.warmup, args.out) for m in ("vvc-grid", "nerfacto")]
    report = {"scene": str(args.data), "device": "cpu", "threads": torch.get_num_threads(), "results": res,
              "vvc_grid_over_nerfacto": res[0]["rays_per_s"] / res[1]["rays_per_s"]}
    print(strict_json(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
