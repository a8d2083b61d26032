#!/usr/bin/env python
"""Cost model of one training step, per phase, measurable without a GPU (issue 26, item 1).

Usage (from the repo root):
    .venv/bin/python bench/bench_step_cost.py [--data DIR] [--presets vvc-rate-aware-cpu vvc-rate-aware]
        [--repeats 3] [--compare /tmp/wt-before] [--checkout /tmp/wt-after] [--profile 16] [--out FILE.json]
    .venv/bin/python bench/bench_step_cost.py --rate-term-only [--presets ...] [--repeats 3]

For each preset it builds the preset's pipeline on frame 0 (an I-frame) of DIR (default: a 1-frame sample scene
made in a temp folder), trains `--warm-steps` real steps (the occupancy grid prunes as it does mid-frame), then
runs steps exactly as the frame-sequential trainer does (zero_grad, rays, render, losses, backward, Adam step,
`after_optimizer_step`) and times each phase:

    ray_sampling   datamanager.next_train (random pixels → RayBundle)
    occupancy      the model's train_step_hook (an occupancy-grid update every `occupancy_update_every` steps)
    field          the rest of model(ray_bundle): ray marching, grid lookups, MLP, compositing
    loss           get_loss_dict without the rate term (photometric, TV, ...)
    rate_term      rate_bits_per_voxel() (the context model over all grids; every `rate_every`-th step only)
    backward       backward of the photometric loss
    rate_backward  backward of the rate term (its own backward call, so the two can be told apart; the gradients
                   add up exactly as one backward of the sum would)
    optimizer      zero_grad + Adam steps + after_optimizer_step

Two kinds of steps are reported: a "plain" step and a "rate" step (one with the rate term), and their average
per step with the preset's `rate_every`. Besides wall time (medians over the measured steps, then over repeats),
each phase reports the number of torch operators dispatched (an aten-level `TorchDispatchMode` counter, forward
and backward): on a GPU every one of them is at least one kernel launch, so the count bounds a launch-bound step.

`--compare OTHER_CHECKOUT` measures OTHER_CHECKOUT (e.g. `git worktree add /tmp/wt-before HEAD~3`) and this
checkout alternately, each repeat in fresh processes (A B A B ...), so machine load hits both alike, and prints
their ratios. The presets run on the CPU whatever their target device. Prints JSON.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PHASES = ("ray_sampling", "occupancy", "field", "loss", "rate_term", "backward", "rate_backward", "optimizer")
DEFAULT_WARM = {"vvc-rate-aware-cpu": 200, "vvc-rate-aware": 4}


# ----------------------------------------------------------------------------------------------- child process
def _preset(name: str):
    from nerfstudio_vvc.method_configs import rate_aware

    return {"vvc-rate-aware-cpu": rate_aware.vvc_rate_aware_cpu, "vvc-rate-aware": rate_aware.vvc_rate_aware}[name]


class _OpCounter:
    """Counts aten operators dispatched while active (forward and backward)."""

    def __init__(self) -> None:
        from torch.utils._python_dispatch import TorchDispatchMode

        counter = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                counter.ops[str(func.overloadpacket.__name__)] += 1
                return func(*args, **(kwargs or {}))

        self.ops: Counter = Counter()
        self.mode = Mode()

    def total(self) -> int:
        return sum(self.ops.values())


def measure(preset: str, data: Path, warm_steps: int, cycles: int, profile_steps: int, threads: int,
            ab_pairs: int = 0) -> dict:
    import torch
    from nerfstudio.engine.optimizers import Optimizers

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = copy.deepcopy(_preset(preset).config)
    cfg.pipeline.datamanager.data = data
    cfg.pipeline.datamanager.dataparser.data = data
    pipe = cfg.pipeline.setup(device="cpu", test_mode="val")
    dm, model = pipe.datamanager, pipe.model
    model.num_frames, model.gop_size = dm.num_frames, 1
    dm.set_frame(0)
    model.begin_frame(0, True)
    model.train()
    opts = Optimizers(copy.deepcopy(cfg.optimizers), model.get_param_groups())
    k = max(int(model.config.rate_every), 1)

    timer = {"t": 0.0}
    hook, rate_fn = model.train_step_hook, model.rate_bits_per_voxel

    def timed(fn, key):
        def wrapped(*a, **kw):
            t0 = time.perf_counter()
            out = fn(*a, **kw)
            timer[key] = timer.get(key, 0.0) + time.perf_counter() - t0
            return out

        return wrapped

    def step(record: dict | None, counter: _OpCounter | None = None) -> None:
        """One trainer step; with `record`, seconds (or op counts with `counter`) per phase into it."""
        for key in ("occupancy", "rate_term"):
            timer[key] = 0.0
        marks = []

        def mark(name):
            marks.append((name, time.perf_counter(), counter.total() if counter else 0))

        mark("start")
        opts.zero_grad_all()
        mark("optimizer")
        ray_bundle, batch = dm.next_train(0)
        mark("ray_sampling")
        outputs = model(ray_bundle)
        mark("field")
        losses = model.get_loss_dict(outputs, batch)
        mark("loss")
        rate = losses.pop("rate_loss", None)
        sum(losses.values()).backward()
        mark("backward")
        if rate is not None:
            rate.backward()
        mark("rate_backward")
        lrs = {name: float(o.param_groups[0]["lr"]) for name, o in opts.optimizers.items()}
        opts.optimizer_step_all()
        if hasattr(model, "after_optimizer_step"):
            model.after_optimizer_step(opts.optimizers, lrs)
        mark("optimizer")
        if record is None:
            return
        for (_, t0, n0), (name, t1, n1) in zip(marks, marks[1:]):
            record[name] = record.get(name, 0) + ((n1 - n0) if counter else (t1 - t0))
        if counter is None:  # occupancy / rate_term ran inside field / loss: move their time there
            record["field"] -= timer["occupancy"]
            record["occupancy"] = timer["occupancy"]
            record["loss"] -= timer["rate_term"]
            record["rate_term"] = timer["rate_term"]

    # instance attributes shadow the methods, so get_outputs / get_loss_dict call the timed versions
    model.train_step_hook = timed(hook, "occupancy")
    model.rate_bits_per_voxel = timed(rate_fn, "rate_term")

    t_warm = time.perf_counter()
    for _ in range(warm_steps):
        step(None)
    warm_s = time.perf_counter() - t_warm
    # align so that the next step is a rate step (model.frame_step is incremented by train_step_hook)
    while (model.frame_step + 1) % k != 0:
        step(None)

    if ab_pairs:
        return _ab_rate_term(model, step, timed, rate_fn, k, ab_pairs, preset, warm_steps)

    times = {"rate": [], "plain": []}
    for _ in range(cycles):
        for i in range(k):
            rec: dict = {}
            step(rec)
            times["rate" if i == 0 else "plain"].append(rec)

    # operator counts (a rate step, then a plain step; the counter slows execution, so it is a pass of its own)
    ops: dict = {}
    op_names: dict = {}
    for kind in ("rate", "plain") if k > 1 else ("rate",):
        counter = _OpCounter()
        rec = {}
        with counter.mode:
            step(rec, counter)
        # the occupancy update and rate term ran inside field / loss: count them on their own below
        ops[kind] = rec
        op_names[kind] = dict(counter.ops.most_common(12))
    counter = _OpCounter()
    with counter.mode:
        rate_val = model.rate_bits_per_voxel()
    ops["rate_term_forward_only"] = counter.total()
    counter = _OpCounter()
    with counter.mode:
        rate_val.backward()
    ops["rate_term_backward_only"] = counter.total()
    opts.zero_grad_all()
    counter = _OpCounter()
    with counter.mode:
        model.occupancy.update(model.field.density, model.step_size())
    ops["occupancy_update"] = counter.total()

    def med(kind: str) -> dict:
        recs = times[kind]
        return {p: statistics.median(r.get(p, 0.0) for r in recs) for p in PHASES}

    rate_t, plain_t = med("rate"), med("plain") if k > 1 else med("rate")
    out = {
        "preset": preset,
        "threads": torch.get_num_threads(),
        "rays": cfg.pipeline.datamanager.train_num_rays_per_batch,
        "grid_voxels": sum(int(p.numel()) for p in model.field.delta),
        "rate_every": k,
        "warm_steps": warm_steps,
        "warm_s": round(warm_s, 2),
        "occupied_fraction": round(float(model.occupancy.binary.float().mean()), 4),
        "measured_steps": {kind: len(v) for kind, v in times.items()},
        "rate_step_s": {p: round(v, 5) for p, v in rate_t.items()},
        "plain_step_s": {p: round(v, 5) for p, v in plain_t.items()},
        "rate_step_total_s": round(sum(rate_t.values()), 5),
        "plain_step_total_s": round(sum(plain_t.values()), 5),
        "mean_step_s": round((sum(rate_t.values()) + (k - 1) * sum(plain_t.values())) / k, 5),
        "ops": ops,
        "ops_rate_step_total": sum(ops["rate"].values()),
        "ops_plain_step_total": sum(ops.get("plain", ops["rate"]).values()),
        "top_ops_rate_step": op_names["rate"],
    }
    if profile_steps:
        import cProfile
        import io
        import pstats

        pr = cProfile.Profile()
        pr.enable()
        for _ in range(profile_steps):
            step(None)
        pr.disable()
        s = io.StringIO()
        st = pstats.Stats(pr, stream=s)
        st.sort_stats("tottime")
        rows = []
        for func, (cc, nc, tt, ct, _callers) in sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:15]:
            rows.append({"function": f"{Path(func[0]).name}:{func[1]}({func[2]})", "calls": nc,
                         "tottime_s": round(tt, 4), "cumtime_s": round(ct, 4)})
        out["profile"] = {"steps": profile_steps, "top_tottime": rows}
    return out


def _ab_rate_term(model, step, timed, batched_fn, k: int, pairs: int, preset: str, warm_steps: int) -> dict:
    """In one process, interleaved: cycles of `rate_every` trainer steps (one rate step, k-1 plain ones) with the rate
    term computed per grid and phase (`GridContextModel.forward` per grid, the code before issue 26) and batched
    (`rate_bits_per_voxel`), in ABBA order. Paired in time, so the machine's load hits both alike."""
    import torch

    def per_grid_fn():
        f = model.field
        syms = f.symbols()
        prev = model._reference_symbols(syms[0].device)
        bits = sum(model.entropy(s_, p) for s_, p in zip(syms, prev))
        return bits / sum(s_.numel() for s_ in syms)

    fns = {"per_grid": timed(per_grid_fn, "rate_term"), "batched": timed(batched_fn, "rate_term")}
    cycles: dict = {name: [] for name in fns}
    for i in range(pairs):
        for name in ("per_grid", "batched") if i % 2 == 0 else ("batched", "per_grid"):
            model.rate_bits_per_voxel = fns[name]
            total: dict = {}
            for _ in range(k):
                rec: dict = {}
                step(rec)
                for ph, v in rec.items():
                    total[ph] = total.get(ph, 0.0) + v
            cycles[name].append(total)

    def summary(recs):
        no_occ = [sum(v for ph, v in r.items() if ph != "occupancy") for r in recs]
        return {"cycle_s_without_occupancy": [round(x, 4) for x in no_occ],
                "median_cycle_s_without_occupancy": round(statistics.median(no_occ), 4),
                "median_mean_step_s_without_occupancy": round(statistics.median(no_occ) / k, 4),
                "median_rate_term_s": round(statistics.median(r["rate_term"] + r["rate_backward"] for r in recs), 4),
                "median_phase_s": {ph: round(statistics.median(r.get(ph, 0.0) for r in recs), 4) for ph in PHASES}}

    out = {"preset": preset, "mode": "A/B in one process, ABBA order", "threads": torch.get_num_threads(),
           "rate_every": k, "warm_steps": warm_steps, "pairs": pairs,
           "occupied_fraction": round(float(model.occupancy.binary.float().mean()), 4),
           "per_grid": summary(cycles["per_grid"]), "batched": summary(cycles["batched"])}
    pg, bt = out["per_grid"], out["batched"]
    out["rate_term_s_per_grid_over_batched"] = round(pg["median_rate_term_s"] / bt["median_rate_term_s"], 2)
    out["mean_step_s_per_grid_over_batched"] = round(pg["median_cycle_s_without_occupancy"]
                                                     / bt["median_cycle_s_without_occupancy"], 2)
    out["paired_cycle_ratios"] = [round(a / b, 2) for a, b in zip(pg["cycle_s_without_occupancy"],
                                                                  bt["cycle_s_without_occupancy"])]
    return out


def rate_term_ops(preset: str, repeats: int, threads: int) -> dict:
    """The rate term alone on the preset's grid shapes (random symbols): operators and seconds of forward + backward,
    the per-grid, per-phase path (`GridContextModel.forward` per grid) against the batched `total_bits`, in this
    checkout and process (interleaved repeats), for an I-frame (no reference) and a P-frame (reference symbols)."""
    import torch

    from nerfstudio_vvc.codec.context import GridContextModel
    from nerfstudio_vvc.methods.rate_aware.field import DiFSpec

    if threads:
        torch.set_num_threads(threads)
    c = _preset(preset).config.pipeline.model
    spec = DiFSpec(tuple(c.basis_dims), tuple(c.basis_resolutions), tuple(c.basis_freqs), c.coeff_resolution,
                   c.hidden_dim, c.geo_dim)
    gen = torch.Generator().manual_seed(0)
    m = GridContextModel(hidden=c.entropy_hidden, num_channels=spec.feature_dim)
    grids = [torch.round(torch.randn(s, generator=gen) * 3).requires_grad_() for s in spec.grid_shapes()]
    refs = [torch.round(torch.randn(s, generator=gen) * 3) for s in spec.grid_shapes()]
    out: dict = {"preset": preset, "grid_voxels": sum(g.numel() for g in grids), "threads": torch.get_num_threads()}
    for kind, prevs in (("iframe", [None] * len(grids)), ("pframe", refs)):
        fns = {"per_grid": lambda: sum(m(g, p) for g, p in zip(grids, prevs)),
               "batched": lambda: m.total_bits(grids, prevs)}
        res: dict = {}
        for name, fn in fns.items():
            fn().backward()  # warm-up (caches)
            counter = _OpCounter()
            with counter.mode:
                v = fn()
            n_fwd = counter.total()
            counter = _OpCounter()
            with counter.mode:
                v.backward()
            res[name] = {"ops_forward": n_fwd, "ops_backward": counter.total(), "bits": float(v.detach()), "s": []}
        for _ in range(repeats):
            for name, fn in fns.items():
                t0 = time.perf_counter()
                fn().backward()
                res[name]["s"].append(round(time.perf_counter() - t0, 4))
        for r in res.values():
            r["median_s"] = statistics.median(r["s"])
        pg, bt = res["per_grid"], res["batched"]
        res["ops_per_grid_over_batched"] = round((pg["ops_forward"] + pg["ops_backward"])
                                                 / (bt["ops_forward"] + bt["ops_backward"]), 1)
        res["s_per_grid_over_batched"] = round(pg["median_s"] / bt["median_s"], 2)
        res["relative_bits_difference"] = abs(pg["bits"] - bt["bits"]) / pg["bits"]
        out[kind] = res
    return out


# ---------------------------------------------------------------------------------------------- parent process
def _run_child(repo: Path, preset: str, data: Path, args) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--repo", str(repo), "--presets", preset,
           "--data", str(data), "--cycles", str(args.cycles), "--profile", str(args.profile),
           "--threads", str(args.threads)]
    if args.warm_steps is not None:
        cmd += ["--warm-steps", str(args.warm_steps)]
    env = dict(os.environ, PYTHONWARNINGS="ignore", PYTHONPATH=str(repo))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(repo))
    if proc.returncode != 0:
        raise SystemExit(f"child failed ({repo}, {preset}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _combine(runs: list[dict]) -> dict:
    """Median over repeats of every timing; op counts and the rest from the first run (they do not vary)."""
    out = dict(runs[0])
    for key in ("rate_step_s", "plain_step_s"):
        out[key] = {p: round(statistics.median(r[key][p] for r in runs), 5) for p in PHASES}
    for key in ("rate_step_total_s", "plain_step_total_s", "mean_step_s"):
        out[key] = round(statistics.median(r[key] for r in runs), 5)
        out[key + "_repeats"] = [r[key] for r in runs]
    return out


def _ratios(before: dict, after: dict) -> dict:
    def ratio(a, b):
        return round(a / b, 2) if b else None

    return {
        "rate_term_ops_before_over_after": ratio(before["ops"]["rate_term_forward_only"]
                                                 + before["ops"]["rate_term_backward_only"],
                                                 after["ops"]["rate_term_forward_only"]
                                                 + after["ops"]["rate_term_backward_only"]),
        "rate_step_ops_before_over_after": ratio(before["ops_rate_step_total"], after["ops_rate_step_total"]),
        "plain_step_ops_before_over_after": ratio(before["ops_plain_step_total"], after["ops_plain_step_total"]),
        "rate_term_s_before_over_after": ratio(
            before["rate_step_s"]["rate_term"] + before["rate_step_s"]["rate_backward"],
            after["rate_step_s"]["rate_term"] + after["rate_step_s"]["rate_backward"],
        ),
        "rate_step_s_before_over_after": ratio(before["rate_step_total_s"], after["rate_step_total_s"]),
        "plain_step_s_before_over_after": ratio(before["plain_step_total_s"], after["plain_step_total_s"]),
        "mean_step_s_before_over_after": ratio(before["mean_step_s"], after["mean_step_s"]),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--presets", nargs="+", default=["vvc-rate-aware-cpu", "vvc-rate-aware"],
                    choices=["vvc-rate-aware-cpu", "vvc-rate-aware"])
    ap.add_argument("--warm-steps", type=int, default=None, help="default: 200 (CPU preset), 4 (GPU preset)")
    ap.add_argument("--cycles", type=int, default=2, help="measured cycles of rate_every steps per process")
    ap.add_argument("--repeats", type=int, default=3, help="processes per checkout and preset (interleaved)")
    ap.add_argument("--compare", type=Path, default=None, help="another checkout to measure alternately (before)")
    ap.add_argument("--checkout", type=Path, default=REPO_ROOT,
                    help="the checkout measured as 'after' (default: this one; a clean `git worktree` of a commit "
                         "keeps other uncommitted edits out of the measurement)")
    ap.add_argument("--profile", type=int, default=0, help="cProfile this many steps; top functions in the JSON")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--rate-term-only", action="store_true",
                    help="only the rate term on each preset's grid shapes: per-grid vs batched in this checkout")
    ap.add_argument("--ab-pairs", type=int, default=0,
                    help="instead: per-grid vs batched rate term inside full trainer steps, this many ABBA pairs of "
                         "rate_every-step cycles in one process (this checkout)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--repo", type=Path, default=REPO_ROOT, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        sys.path.insert(0, str(args.repo))
        preset = args.presets[0]
        warm = DEFAULT_WARM[preset] if args.warm_steps is None else args.warm_steps
        print(json.dumps(measure(preset, args.data, warm, args.cycles, args.profile, args.threads)))
        return 0
    if args.ab_pairs:
        sys.path.insert(0, str(args.checkout))
        data = args.data
        if data is None:
            from nerfstudio_vvc.data.sample_scene import make_sample

            data = Path(tempfile.mkdtemp()) / "sample"
            make_sample(data, num_frames=1)
        result = {"machine": f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at start", "presets": {}}
        for p in args.presets:
            warm = DEFAULT_WARM[p] if args.warm_steps is None else args.warm_steps
            result["presets"][p] = measure(p, data, warm, 0, 0, args.threads, ab_pairs=args.ab_pairs)
        result["load_at_end"] = round(os.getloadavg()[0], 1)
        text = json.dumps(result, indent=1)
        if args.out:
            args.out.write_text(text + "\n")
        print(text)
        return 0

    if args.rate_term_only:
        sys.path.insert(0, str(args.checkout))
        result = {"machine": f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at start",
                  "presets": {p: rate_term_ops(p, args.repeats, args.threads) for p in args.presets},
                  "load_at_end": round(os.getloadavg()[0], 1)}
        text = json.dumps(result, indent=1)
        if args.out:
            args.out.write_text(text + "\n")
        print(text)
        return 0

    data = args.data
    if data is None:
        sys.path.insert(0, str(REPO_ROOT))
        from nerfstudio_vvc.data.sample_scene import make_sample

        data = Path(tempfile.mkdtemp()) / "sample"
        make_sample(data, num_frames=1)
    checkouts = {"after": args.checkout} if args.compare is None else {"before": args.compare, "after": args.checkout}
    def commit(repo: Path) -> str:
        proc = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return proc.stdout.strip() + (" + uncommitted changes" if dirty else "")

    result: dict = {"data": str(data), "machine": f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at start",
                    "checkouts": {k: f"{v} ({commit(v)})" for k, v in checkouts.items()}, "presets": {}}
    for preset in args.presets:
        runs: dict = {name: [] for name in checkouts}
        for _ in range(args.repeats):
            for name, repo in checkouts.items():  # interleaved: before, after, before, after, ...
                runs[name].append(_run_child(repo, preset, data, args))
        res = {name: _combine(r) for name, r in runs.items()}
        if "before" in res:
            res["ratios"] = _ratios(res["before"], res["after"])
        result["presets"][preset] = res
    result["load_at_end"] = round(os.getloadavg()[0], 1)
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
