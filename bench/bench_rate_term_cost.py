#!/usr/bin/env python
"""Time per training step of vvc-rate-aware's rate term against its render pass (issue 10, "rate term cost").

Usage (from the repo root):
    .venv/bin/python bench/bench_rate_term_cost.py [--data DIR] [--warm-steps 300] [--repeats 8] \
        [--preset vvc-rate-aware-cpu]

Builds the preset's pipeline on frame 0 of DIR (default: a 1-frame sample scene made in a temp folder), trains
`--warm-steps` real steps so the occupancy grid prunes as it does mid-frame, then times, interleaved A/B in one
process (machine load hits both alike), the render pass (rays → photometric loss → backward) and the rate pass
(bits per voxel of all grids → backward). Prints JSON: medians in seconds, their ratio, and the per-step average
cost of the rate term with the preset's `rate_every`.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--warm-steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--preset", default="vvc-rate-aware-cpu", choices=["vvc-rate-aware-cpu", "vvc-rate-aware"])
    args = ap.parse_args(argv)

    import torch

    from nerfstudio_vvc.method_configs import rate_aware

    data = args.data
    if data is None:
        from nerfstudio_vvc.data.sample_scene import make_sample

        data = Path(tempfile.mkdtemp()) / "sample"
        make_sample(data, num_frames=1)
    spec = rate_aware.vvc_rate_aware_cpu if args.preset == "vvc-rate-aware-cpu" else rate_aware.vvc_rate_aware
    cfg = copy.deepcopy(spec.config)
    cfg.pipeline.datamanager.data = data
    cfg.pipeline.datamanager.dataparser.data = data
    pipe = cfg.pipeline.setup(device="cpu", test_mode="val")
    dm, model = pipe.datamanager, pipe.model
    model.num_frames, model.gop_size = dm.num_frames, 1
    dm.set_frame(0)
    model.begin_frame(0, True)
    model.train()

    def photometric_loss():
        ray_bundle, batch = dm.next_train(0)
        losses = model.get_loss_dict(model(ray_bundle), batch)
        return sum(v for k, v in losses.items() if k != "rate_loss")

    opt = torch.optim.Adam([p for g in model.get_param_groups().values() for p in g], lr=1e-2)
    for _ in range(args.warm_steps):
        model.train_step_hook()
        opt.zero_grad()
        (photometric_loss() + model.config.lambda_rate * model.rate_bits_per_voxel()).backward()
        opt.step()

    def render_pass():
        photometric_loss().backward()

    def rate_pass():
        model.rate_bits_per_voxel().backward()

    render_pass(), rate_pass()
    t_render, t_rate = [], []
    for _ in range(args.repeats):
        for fn, acc in ((render_pass, t_render), (rate_pass, t_rate)):
            t0 = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - t0)
    r, q = statistics.median(t_render), statistics.median(t_rate)
    k = max(int(model.config.rate_every), 1)
    print(
        json.dumps(
            {
                "preset": args.preset,
                "data": str(data),
                "rays": cfg.pipeline.datamanager.train_num_rays_per_batch,
                "warm_steps": args.warm_steps,
                "occupied_fraction": round(float(model.occupancy.binary.float().mean()), 4),
                "threads": torch.get_num_threads(),
                "render_pass_s": round(r, 4),
                "rate_pass_s": round(q, 4),
                "rate_over_render": round(q / r, 3),
                "rate_every": k,
                "rate_per_step_over_render": round(q / r / k, 3),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
