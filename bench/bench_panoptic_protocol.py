#!/usr/bin/env python
"""All three methods on the Panoptic protocol: panoptic-basketball at 640×360, 27 training cameras, test cameras
0/10/15/30, frame by frame, from decoded files (issue 26 items 4–5).

Usage (from the repo root):
    .venv/bin/python bench/bench_panoptic_protocol.py [--data ../shared/data/panoptic-basketball]
        [--out bench_out/protocol] [--frames 30] [--downscale 1] [--methods rate-aware codebook mv-inr]
        [--points NAME ...] [--device cpu] [--no-lpips] [--no-x265] [--dry-run] [--train-args ...]

For every (method, RD point) it runs, each step skipped when its result is already there (rerun the same command
after a kill: ns-train resumes its own run, finished steps are not redone):
1. `ns-train <preset> ... vvc-data --data D --num-frames N --downscale-factor 1` (the method's Panoptic set-up from
   docs/data.md; see POINTS), writing `<out>/runs/<method>/<point>/sequence.vvc`;
2. vvc-rate-aware / vvc-codebook: `ns-vvc eval` renders the test cameras from the decoded file;
   vvc-mv-inr codes camera views, not a scene, so it is measured end to end: `ns-vvc decode --as-dataset
   --test-views-from` writes the decoded training views plus the original test views, a 3-D method (`vvc-grid`, no
   compression: `RECONSTRUCT`, `RECONSTRUCT_DATA`) trains on the decoded views and `ns-vvc eval-run` renders the
   same test cameras. The figure is bounded by that 3-D method and by how consistent the decoded views are across
   cameras (docs/evaluation.md: controls on the original views);
3. the summary: KB/frame = bytes of the file the decoder read / 1000 / frames, per-frame and mean test
   PSNR / SSIM / LPIPS, into `<out>/summary.json`, `<out>/table.md` and `<out>/rd_psnr.png` with the x265 simulcast
   of the 27 training views (its PSNR is on those views, marked as a reference) from `bench/bench_x265_anchor.py`.
Heavy: hours per method on 2 cores at 640×360 (it prints the scale it ran at). Exits 0 with a message if the data
set is absent.

The ledger (`--ledger`, default bench/results/protocol/, committed): a run spans sessions, but `<out>` (bench_out/)
does not survive a new machine. After every step the bench copies what a later session needs to go on, all small
files, into the ledger, mirroring `<out>`: a finished run's config.yml, progress.json / stages.json,
dataparser_transforms.json and its .vvc files (no checkpoint: `ns-vvc eval` measures the file with the run's config
alone), an eval's metrics.json or its per-frame journal, x265's results.json, and each finished point's figures
(`points/<method>/<point>.json`). At start it copies back what `<out>` lacks, so finished steps are skipped and an
eval resumes at its first unjournaled frame. `--save-ledger` copies the current state (an eval in progress
included) and exits: run it, then commit the ledger, before a session ends.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from nerfstudio_vvc.jsonio import strict_json  # noqa: E402
from nerfstudio_vvc.methods.spec import method_for_preset, run_finished  # noqa: E402

BIN = Path(sys.executable).parent
DEFAULT_LEDGER = REPO_ROOT / "bench" / "results" / "protocol"
PROTOCOL_SCALE = (30, 1)
"""(--frames, --downscale) of the runs the default ledger holds; a shorter slice or a smaller picture keeps none."""
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "panoptic-basketball"
PUBLISHED = {"Dynamic 3D Gaussians (Luiten et al. 2024), 640×360, 150 frames": 28.22}
"""Published test PSNR on basketball at the protocol's scale, for the table."""

RATE_AWARE = dict(
    preset="vvc-rate-aware-cpu",
    args=["--gop-size", "10", "--iframe-iterations", "1800", "--pipeline.model.tv-mult", "3e-2"],
    data_args=["--scene-box-size", "3.0"],
    points={f"lambda-{lam:g}": ["--pipeline.model.lambda-rate", f"{lam:g}"] for lam in (1e-3, 2e-3, 5e-3)},
)
CODEBOOK = dict(
    preset="vvc-codebook-cpu",
    args=["--pipeline.model.contraction", "0.5", "--pipeline.model.outer-opacity", "world"],
    data_args=[],
    points={f"k-{k}": ["--pipeline.model.codebook-size", str(k)] for k in (256, 1024, 4096)},
)
MV_INR = dict(
    preset="vvc-mv-inr-cpu",
    # 26 non-basic views x 30 frames = 780 images per epoch: 10 + 2 + 2 epochs are ~11,000 steps, as many as the
    # issue-13 clip's 150 + 15 + 15 epochs over 48 images (docs/mv_inr.md); the preset's 300 + 30 + 30 would be
    # about 60 hours at 640x360 on 2 cores.
    args=["--pipeline.model.epochs", "10", "--pipeline.model.finetune-epochs", "2", "--pipeline.model.qat-epochs", "2"],
    data_args=[],
    points={
        f"c{c}-qp{qp}": ["--pipeline.model.grid-channels", str(c), "--pipeline.model.qp", str(qp)]
        for c, qp in ((20, 43), (40, 33), (80, 23))
    },
)
METHODS = {"rate-aware": RATE_AWARE, "codebook": CODEBOOK, "mv-inr": MV_INR}
RECONSTRUCT = ["vvc-grid", "--iframe-iterations", "600", "--pframe-iterations", "200", "--gop-size", "10"]
"""The 3-D method trained on vvc-mv-inr's decoded views (no compression of its own: the bytes are the .vvc file's)."""
RECONSTRUCT_DATA = list(RATE_AWARE["data_args"])
"""Its `vvc-data` options: the protocol's scene box, as vvc-rate-aware's points have it. At vvc-data's default (1.5)
the box cuts through the dome and the grid learns fog: c20-qp43's first measurement (session 25) gave 16.13 dB, and
the same recipe on the original views 16.31 dB over frames 0-9 (with box 3.0: 20.73 dB; docs/evaluation.md)."""
RECONSTRUCT_NAME = "mv-inr-reconstruction-box3"
"""Experiment folder of the reconstructions (renamed with the recipe, so an earlier recipe's run is never reused)."""


def _env() -> Dict[str, str]:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _run(cmd: List[str], dry: bool) -> None:
    print("$ " + " ".join(cmd), flush=True)
    if not dry:
        subprocess.run(cmd, env=_env(), check=True)


def _json(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def train_seconds(run: Path) -> Optional[float]:
    """Training wall seconds the run recorded (frame-sequential: per-frame train + finalize; whole-sequence: stage
    seconds). A run resumed after a kill counts each frame / stage once, as the run that finished it measured it."""
    progress, stages = _json(run / "progress.json"), _json(run / "stages.json")
    if progress and progress.get("frames"):
        return sum(f.get("train_s", 0.0) + f.get("finalize_s", 0.0) for f in progress["frames"])
    if stages and isinstance(stages.get("stats"), dict):
        return sum(v.get("seconds", 0.0) for v in stages["stats"].values() if isinstance(v, dict))
    return None


def train_cmd(preset: str, out: Path, name: str, point: str, args: List[str], data: Path, data_args: List[str],
              frames: int, downscale: int, device: str) -> List[str]:
    return [str(BIN / "ns-train"), preset, "--output-dir", str(out), "--experiment-name", name, "--timestamp", point,
            "--vis", "tensorboard", "--machine.device-type", device, *args,
            "vvc-data", "--data", str(data), "--num-frames", str(frames), "--downscale-factor", str(downscale),
            *data_args]


LEDGER_RUN_FILES = ("config.yml", "progress.json", "stages.json", "dataparser_transforms.json", "*.vvc")
"""A finished run's files that a later session needs (the bitstream and what `ns-vvc eval` loads besides it)."""
LEDGER_EVAL_FILES = ("metrics.json", "frames.partial.jsonl")
"""An eval's figures, or its per-frame journal while it runs (`playback/evaluate.py` JOURNAL_NAME)."""
LEDGER_MAX_FILE_BYTES = 8_000_000
"""A file bigger than this is never put in the ledger (a git repository): the bench refuses with a message."""


def _point_dirs(a, method: str, point: str):
    spec = METHODS[method]
    return a.out / "runs" / method / spec["preset"] / point, a.out / "eval" / method / point


def _ledger_copy(src: Path, dst: Path) -> bool:
    """Copy `src` to `dst` (atomically) unless `dst` has the same bytes; True when it copied."""
    if src.stat().st_size > LEDGER_MAX_FILE_BYTES:
        raise SystemExit(f"{src}: {src.stat().st_size} bytes, over the ledger's {LEDGER_MAX_FILE_BYTES} per file")
    if dst.exists() and dst.read_bytes() == src.read_bytes():
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
    return True


def save_ledger(a) -> List[Path]:
    """Copy the small files of every finished run, every eval (finished or journaled) and the x265 anchor from
    `a.out` into `a.ledger`, plus each finished point's figures. A run still training is not copied (it resumes
    from its checkpoint, which the ledger does not keep). Returns the ledger files written."""
    written: List[Path] = []

    def keep(src: Path) -> None:
        dst = a.ledger / src.relative_to(a.out)
        if _ledger_copy(src, dst):
            written.append(dst)

    for method, spec in METHODS.items():
        for point in spec["points"]:
            run, eval_dir = _point_dirs(a, method, point)
            if run_finished(run, a.frames):
                for pattern in LEDGER_RUN_FILES:
                    for f in sorted(run.glob(pattern)):
                        keep(f)
            for name in LEDGER_EVAL_FILES:
                if (eval_dir / name).is_file():
                    keep(eval_dir / name)
            res = None if a.dry_run else result(a, method, point, quiet=True, ledger=False)
            if res is not None:
                dst = a.ledger / "points" / method / f"{point}.json"
                text = strict_json(res, indent=1)
                if not dst.exists() or dst.read_text() != text:
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    dst.write_text(text)
                    written.append(dst)
    x265 = a.out / "x265" / "results.json"
    if x265.is_file():
        keep(x265)
    return written


def restore_ledger(a) -> List[Path]:
    """Copy every ledger file that `a.out` lacks back into it (a new machine, or bench_out removed). Files `a.out`
    already has are left alone: they are as new as the ledger's or newer; so is a run folder that has its own
    config.yml (a run of this machine, perhaps still training). Returns the files restored."""
    restored: List[Path] = []
    if not a.ledger.is_dir():
        return restored
    fresh_runs = set()  # run folders this call is restoring (a run folder of this machine is left alone)
    for src in sorted(a.ledger.rglob("*")):
        rel = src.relative_to(a.ledger)
        if not src.is_file() or rel.parts[0] == "points" or src.name.endswith(".tmp"):
            continue
        dst = a.out / rel
        if rel.parts[0] == "runs":
            if dst.parent not in fresh_runs and (dst.parent / "config.yml").exists():
                continue  # this machine has its own run there (training, or finished): no mixing of files
            fresh_runs.add(dst.parent)
        if not dst.exists():
            _ledger_copy(src, dst)
            restored.append(dst)
    return restored


LEDGER_POINT_KEYS = ("method", "point", "kb_per_frame", "psnr_db", "ssim", "lpips")
"""What a ledger's `points/<method>/<point>.json` must hold for the point to count as measured (the table's columns;
SSIM / LPIPS may be null)."""


def ledger_point(a, method: str, point: str) -> Optional[dict]:
    """The figures the ledger recorded for a finished point, None when it has none. A record that is there but
    unreadable stops the bench with one line: silently ignoring it would neither measure the point again nor report
    it."""
    path = a.ledger / "points" / method / f"{point}.json"
    if not path.is_file():
        return None
    try:
        rec = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise SystemExit(f"{path}: not readable JSON ({type(e).__name__}: {e}); restore it from git, or delete it "
                         "to measure the point again") from None
    missing = [k for k in LEDGER_POINT_KEYS if not isinstance(rec, dict) or k not in rec]
    if missing or (rec["method"], rec["point"]) != (method, point):
        what = f"lacks {', '.join(missing)}" if missing else f"is the record of {rec['method']} {rec['point']}"
        raise SystemExit(f"{path}: {what}, not the figures of {method} {point}; restore it from git, or delete it "
                         "to measure the point again")
    return rec


def run_point(a, method: str, point: str) -> Optional[dict]:
    """Train and evaluate one point (each step skipped when done; nothing with --collect), then its result."""
    if not a.collect:
        produce(a, method, point)
    return result(a, method, point)


def produce(a, method: str, point: str) -> None:
    if a.ledger_on and ledger_point(a, method, point) is not None:
        return  # measured (perhaps on another machine): delete the ledger's points/ entry to measure it again
    spec = METHODS[method]
    runs = a.out / "runs"
    run, eval_dir = _point_dirs(a, method, point)
    if not run_finished(run, a.frames):
        args = [*spec["args"], *spec["points"][point], *a.train_args]
        _run(train_cmd(spec["preset"], runs, method, point, args, a.data, spec["data_args"], a.frames, a.downscale,
                       a.device), a.dry_run)
        if a.ledger_on and not a.dry_run:
            save_ledger(a)
    method_spec = method_for_preset(spec["preset"])
    bitstream = run / str(method_spec.bitstream)
    if (eval_dir / "metrics.json").exists():
        return
    # test cameras only: the fit-vs-generalisation training views would double the render time at 640×360
    lpips = ["--train-views", "0"] + ([] if a.lpips else ["--no-lpips"])
    if method_spec.output == "views":  # a view codec: a 3-D method trained on its decoded views gives the test views
        ds = a.out / "decoded" / point
        if not (ds / "transforms.json").exists():
            _run([str(BIN / "ns-vvc"), "decode", str(bitstream), "--out", str(ds), "--as-dataset",
                  "--test-views-from", str(run / "config.yml")], a.dry_run)
        rec = runs / RECONSTRUCT_NAME / RECONSTRUCT[0] / point
        if not run_finished(rec, a.frames):
            _run([str(BIN / "ns-train"), *RECONSTRUCT[:1], "--output-dir", str(runs), "--experiment-name",
                  RECONSTRUCT_NAME, "--timestamp", point, "--vis", "tensorboard", "--machine.device-type",
                  a.device, *RECONSTRUCT[1:], "vvc-data", "--data", str(ds), *RECONSTRUCT_DATA], a.dry_run)
        _run([str(BIN / "ns-vvc"), "eval-run", "--load-config", str(rec / "config.yml"), "--output-dir",
              str(eval_dir), *lpips], a.dry_run)
    else:
        _run([str(BIN / "ns-vvc"), "eval", str(bitstream), "--load-config", str(run / "config.yml"),
              "--output-dir", str(eval_dir), *lpips], a.dry_run)
    if a.ledger_on and not a.dry_run:
        save_ledger(a)


def result(a, method: str, point: str, quiet: bool = False, ledger: bool = True) -> Optional[dict]:
    """The point's figures from its decoded file's size and its eval metrics; else (with `ledger`) the figures the
    ledger recorded when it finished (`points/<method>/<point>.json`: a point whose run folder is gone); None when
    not finished."""
    spec = METHODS[method]
    run, eval_dir = _point_dirs(a, method, point)
    bitstream = run / str(method_for_preset(spec["preset"]).bitstream)
    metrics = _json(eval_dir / "metrics.json")
    if a.dry_run or metrics is None or not bitstream.exists():
        recorded = ledger_point(a, method, point) if ledger and a.ledger_on else None
        if recorded is not None and not a.dry_run:
            return recorded
        if a.collect and not quiet:
            print(f"{method} {point}: not finished (no {eval_dir / 'metrics.json'})", file=sys.stderr)
        return None
    rows = metrics["frames"]
    mean = lambda k: (  # noqa: E731
        sum(r[k] for r in rows) / len(rows) if rows and all(r.get(k) is not None for r in rows) else None
    )
    nbytes = bitstream.stat().st_size
    return {
        "method": method, "point": point, "preset": spec["preset"], "bitstream": str(bitstream),
        "file_bytes": nbytes, "frames": a.frames, "kb_per_frame": nbytes / 1000 / a.frames,
        "psnr_db": mean("psnr_db"), "ssim": mean("ssim"), "lpips": mean("lpips"),
        "per_frame": [{k: r.get(k) for k in ("frame", "psnr_db", "ssim", "lpips")} for r in rows],
        "train_s": train_seconds(run),
        "train_args": [*spec["args"], *spec["points"][point], *a.train_args], "data_args": spec["data_args"],
        "measured_by": (f"ns-vvc eval-run on `ns-train {' '.join(RECONSTRUCT)} vvc-data {' '.join(RECONSTRUCT_DATA)}` "
                        "trained on the decoded views") if method == "mv-inr"
        else "ns-vvc eval (test cameras rendered from the decoded file)",
    }


def x265_points(a) -> List[dict]:
    out = a.out / "x265"
    if not (out / "results.json").exists() and not a.collect:
        _run([sys.executable, str(REPO_ROOT / "bench" / "bench_x265_anchor.py"), "--data", str(a.data),
              "--downscale", str(a.downscale), "--frames", str(a.frames), "--out", str(out), "--no-lpips"], a.dry_run)
    res = _json(out / "results.json")
    return [] if res is None else res["points"]


BD_MIN_POINTS = 3
"""Points per curve for the BD figures here (3 per method is what the protocol runs; the JVET convention is 4, so
these are labelled as 3-point figures)."""
BD_METRICS = (("psnr_db", 1), ("ssim", 1), ("lpips", -1))


def operational(pts: List[dict], metric: str, sign: int) -> tuple:
    """(kept, dropped) points of one method's curve for `metric`, as `ns-vvc rd-sweep` fits them: a point another
    point beats with no more bytes and at least its quality is not on the operational curve (`bdrate.pareto`)."""
    from nerfstudio_vvc.eval.bdrate import pareto

    pts = [p for p in pts if p.get(metric) is not None]
    kept, dropped = pareto([p["kb_per_frame"] for p in pts], [sign * p[metric] for p in pts])
    return [pts[i] for i in kept], [pts[i] for i in dropped]


def bd_between(points: List[dict]) -> Dict[str, dict]:
    """Pairwise BD-rate / BD-quality (PCHIP, `nerfstudio_vvc.eval.bdrate`) between methods on the test cameras:
    "<test> vs <anchor> (<metric>)" for every pair of methods with `BD_MIN_POINTS` finished points, each curve fitted
    on its operational points (`operational`; the dropped ones are listed); curves that do not overlap, or keep fewer
    than `BD_MIN_POINTS` points, get the reason instead of a number."""
    from nerfstudio_vvc.eval.bdrate import bd_figures

    curves: Dict[str, List[dict]] = {}
    for p in points:
        curves.setdefault(p["method"], []).append(p)
    names = [m for m in METHODS if len(curves.get(m, [])) >= BD_MIN_POINTS]
    out: Dict[str, dict] = {}
    for i, anchor in enumerate(names):
        for test in names[i + 1:]:
            for metric, sign in BD_METRICS:
                (a_pts, a_drop), (t_pts, t_drop) = (operational(curves[m], metric, sign) for m in (anchor, test))
                figures = bd_figures(
                    ([p["kb_per_frame"] for p in a_pts], [p[metric] for p in a_pts]),
                    ([p["kb_per_frame"] for p in t_pts], [p[metric] for p in t_pts]), sign, BD_MIN_POINTS,
                ) | {"points": [len(a_pts), len(t_pts)]}
                dropped = {m: [p.get("point", f"{p['kb_per_frame']:g} KB") for p in d]
                           for m, d in ((anchor, a_drop), (test, t_drop)) if d}
                out[f"{test} vs {anchor} ({metric})"] = figures | ({"dropped": dropped} if dropped else {})
    return out


def table(points: List[dict], x265: List[dict], scale: str) -> str:
    fmt = lambda v, f="{:.2f}": "n/a" if v is None else f.format(v)  # noqa: E731
    lines = [f"Panoptic protocol run: {scale}. KB = 1000 bytes of the file the decoder reads, per frame; test PSNR /",
             "SSIM / LPIPS on cameras 0/10/15/30, rendered from what the decoder rebuilt.", "",
             "| method | point | KB/frame | test PSNR | SSIM | LPIPS | train min (2 cores) |",
             "|---|---|---|---|---|---|---|"]
    for p in points:
        lines.append(f"| {p['method']} | {p['point']} | {fmt(p['kb_per_frame'])} | {fmt(p['psnr_db'])} | "
                     f"{fmt(p['ssim'], '{:.4f}')} | {fmt(p['lpips'], '{:.4f}')} | "
                     f"{fmt(None if p.get('train_s') is None else p['train_s'] / 60, '{:.0f}')} |")
    for x in x265:
        lines.append(f"| x265 simulcast, 27 training views (PSNR on those views) | CRF {x['crf']} | "
                     f"{fmt(x['kb_per_frame'])} | {fmt(x.get('psnr_db'))} | {fmt(x.get('ssim'), '{:.4f}')} | n/a | |")
    for name, psnr in PUBLISHED.items():
        lines.append(f"| {name} (published) | | | {psnr:.2f} | | | |")
    return "\n".join(lines) + "\n"


def bd_lines(bd: Dict[str, dict]) -> str:
    """The BD figures under the table (none until two methods have their points)."""
    if not bd:
        return (f"\nBD-rate: not yet (needs {BD_MIN_POINTS} finished points for at least two methods).\n")
    lines = ["", f"BD figures between methods (PCHIP, {BD_MIN_POINTS}+ points per curve; negative BD-rate = the first "
             "method needs fewer bytes at equal quality):", ""]
    from nerfstudio_vvc.eval.bdrate import bd_text

    for name, v in bd.items():
        dropped = "; ".join(f"{m} {', '.join(pts)}" for m, pts in v.get("dropped", {}).items())
        lines.append(f"- {name}: {bd_text(v)}" + (f" (not on the operational curve, left out: {dropped})"
                                                    if dropped else ""))
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "bench_out" / "protocol")
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--downscale", type=int, default=1)
    ap.add_argument("--methods", nargs="+", choices=sorted(METHODS), default=list(METHODS))
    ap.add_argument("--points", nargs="+", default=None, help="point names (default: every point of each method)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-lpips", dest="lpips", action="store_false")
    ap.add_argument("--no-x265", dest="x265", action="store_false")
    ap.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    ap.add_argument("--collect", action="store_true",
                    help="run nothing: summary, table and plot of the points (and x265 anchor) already finished")
    ap.add_argument("--ledger", type=Path, default=None,
                    help="committed folder that carries finished steps and eval journals across machines (default: "
                    "bench/results/protocol at the protocol's scale, --frames 30 --downscale 1; "
                    "no ledger at other scales unless given)")
    ap.add_argument("--no-ledger", dest="ledger_on", action="store_false", help="neither read nor write the ledger")
    ap.add_argument("--save-ledger", action="store_true",
                    help="copy the current state (an eval in progress included) into the ledger, run nothing")
    ap.add_argument("--train-args", nargs=argparse.REMAINDER, default=[],
                    help="extra ns-train options for every method run, after the method's own (last option)")
    a = ap.parse_args(argv)
    if not (a.data / "train_meta.json").is_file():
        print(strict_json({"skipped": f"{a.data}: data set not found (expected panoptic-basketball)"}))
        return 0
    unknown = set(a.points or []) - {p for m in a.methods for p in METHODS[m]["points"]}
    if unknown:
        raise SystemExit(f"unknown --points {sorted(unknown)}; known: "
                         f"{ {m: sorted(METHODS[m]['points']) for m in a.methods} }")
    if a.ledger is None:
        a.ledger_on = a.ledger_on and (a.frames, a.downscale) == PROTOCOL_SCALE
        a.ledger = DEFAULT_LEDGER
    if a.ledger_on and a.ledger.exists() and not a.ledger.is_dir():
        raise SystemExit(f"{a.ledger}: --ledger must be a folder, not a file")
    if a.save_ledger:
        if not a.ledger_on:
            raise SystemExit("--save-ledger: no ledger (--no-ledger, or a scale other than the protocol's without "
                             "--ledger DIR)")
        written = save_ledger(a)
        print(strict_json({"ledger": str(a.ledger), "written": [str(p) for p in written]}, indent=1))
        return 0
    if a.ledger_on and not a.dry_run:
        for f in restore_ledger(a):
            print(f"restored from the ledger: {f}", file=sys.stderr)
    scale = (f"{640 // a.downscale}×{360 // a.downscale}, {a.frames} frames, 27 training cameras, device {a.device}, "
             f"CPU presets")
    t0 = time.time()
    points = []
    for m in a.methods:
        for p in METHODS[m]["points"]:
            if a.points is None or p in a.points:
                res = run_point(a, m, p)
                if res is not None:
                    points.append(res)
    x265 = x265_points(a) if a.x265 else []
    if a.dry_run:
        return 0
    a.out.mkdir(parents=True, exist_ok=True)
    bd = bd_between(points)
    summary = {"scale": scale, "published": PUBLISHED, "points": points, "x265": x265, "bd": bd,
               "bd_note": f"PCHIP over {BD_MIN_POINTS}+ points per method (the JVET convention is 4)",
               "wall_s_this_invocation": round(time.time() - t0, 1)}
    (a.out / "summary.json").write_text(strict_json(summary, indent=1))
    (a.out / "table.md").write_text(table(points, x265, scale) + bd_lines(bd))
    if points:
        from nerfstudio_vvc.eval.plots import plot_rd_curves

        curves: Dict[str, List[dict]] = {}
        for p in points:
            curves.setdefault(f"vvc-{p['method']}", []).append(p)
        if x265:
            curves["x265 simulcast (training views, reference)"] = x265
        title = f"basketball {640 // a.downscale}×{360 // a.downscale}, {a.frames} frames, test cams 0/10/15/30"
        plot_rd_curves(curves, "psnr_db", a.out / "rd_psnr.png", title=title)
    print(strict_json({k: v for k, v in summary.items() if k != "points"} | {
        "points": [{k: v for k, v in p.items() if k != "per_frame"} for p in points]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
