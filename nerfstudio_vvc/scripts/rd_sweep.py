"""`ns-vvc rd-sweep`: train a method at each of its RD points on one scene, then measure every point
from its decoded file, add the x265 simulcast anchor, and write per-point JSON, a markdown table,
RD plots and BD-rates.

Layout of `--out`::

    runs/sweep/<preset>/<run>/     ns-train run folders (config.yml, sequence*.vvc, progress.json)
    points/<point>.json            one measured RD point (a finished point is never recomputed)
    points/<point>/                decoded frame states + side-by-side PNGs of that point
    x265/                          anchor bitstreams and x265.json
    summary.md, summary.json       the RD table and BD-rates
    rd_test_psnr.png, rd_test_ssim.png, rd_test_lpips.png, rd_train_psnr.png, frame_bytes_<run>.png

Resuming: rerun the same command. Finished points are read back from their JSON; an unfinished
training run resumes at its first unfinished frame (the frame-sequential trainer's resume).
KB means 1000 bytes everywhere in this report; a point's rate is its file size / frames.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from nerfstudio_vvc.eval.bdrate import bd_figures, bd_text, pareto
from nerfstudio_vvc.jsonio import strict_json
from nerfstudio_vvc.methods.codebook import spec as codebook_spec
from nerfstudio_vvc.methods.mv_inr import spec as mv_inr_spec
from nerfstudio_vvc.methods.rate_aware import spec as rate_aware_spec
from nerfstudio_vvc.methods.spec import RdRun, UnknownMethodSpecError, VvcMethod, method_for_preset, run_finished
from nerfstudio_vvc.user_errors import InputError

SweepRun = RdRun
"""One ns-train run of a sweep (the method specs' `RdRun`)."""

# The methods' RD tables live in their specs (methods/<name>/spec.py); these names stay for callers.
DEFAULT_RUNS = rate_aware_spec.DEFAULT_RUNS
BASELINE_EXPONENTS = rate_aware_spec.BASELINE_EXPONENTS
ABLATION_LAMBDA = rate_aware_spec.ABLATION_LAMBDA
CODEBOOK_DEFAULT_RUNS = codebook_spec.DEFAULT_RUNS
MV_INR_DEFAULT_RUNS = mv_inr_spec.DEFAULT_RUNS
rate_aware_runs = rate_aware_spec.rd_runs
codebook_runs = codebook_spec.rd_runs
mv_inr_runs = mv_inr_spec.rd_runs


def preset_method(preset: str) -> VvcMethod:
    """The spec of an ns-train preset; an `InputError` (one line) naming the known presets if none has it."""
    try:
        return method_for_preset(preset)
    except UnknownMethodSpecError as exc:
        raise SweepError(str(exc)) from None


def is_sequence_preset(preset: str) -> bool:
    """Presets trained as a whole sequence by the SequenceTrainer (finished = stages.json lists `code`)."""
    return preset_method(preset).trainer == "whole-sequence"


def is_view_codec(preset: str) -> bool:
    """Presets that code the camera views, not a 3D scene (vvc-mv-inr): measured view by view, and on the test
    cameras only end to end (a 3D method trained on the decoded views)."""
    return preset_method(preset).output == "views"


class SweepError(RuntimeError, InputError):
    """A step of the sweep failed; the message names the run and the command (reported as one line)."""


@dataclass
class RdSweep:
    """Train a method at its RD points on a scene, measure every point from its decoded file, add the x265 anchor."""

    data: Path
    """Scene folder (any format `vvc-data` reads)."""
    out: Path = Path("rd_sweep")
    """Output folder (see the module doc); rerunning with the same folder resumes."""
    preset: str = "vvc-rate-aware-cpu"
    """Method preset to train (any preset of a method spec with RD points, e.g. `vvc-codebook-cpu`)."""
    runs: Tuple[str, ...] = ()
    """Runs to sweep (names from the method spec's `rd_runs`); empty = its `rd_default_runs`."""
    lambdas: Tuple[float, ...] = ()
    """λs that `full-<λ>` runs may use; empty = the paper's four (`RD_LAMBDAS`). Add one to extend the Full curve."""
    num_frames: int = 10
    """Frames of the sequence (from `frame_start`)."""
    frame_start: int = 0
    """First source frame."""
    downscale: int = 2
    """Image downscale factor (panoptic 640x360 → 320x180 at 2)."""
    gop_size: int = 20
    """GOP size of the dynamic runs (ablations that need 1 set it themselves)."""
    train_view_cameras: int = 6
    """Training cameras (evenly spaced) rendered for the train-view metrics; 0 = all, -1 = none."""
    x265_crfs: Tuple[int, ...] = (22, 28, 33, 38)
    """CRFs of the x265 simulcast anchor (empty: no anchor)."""
    x265_preset: str = "veryfast"
    """x265 preset of the anchor."""
    lpips: bool = True
    """Compute LPIPS (offline weights; n/a when missing)."""
    device: str = "cpu"
    """--machine.device-type for ns-train."""
    train_args: Tuple[str, ...] = ()
    """More ns-train arguments for every run (method options, before the dataparser). On the command line they go
    after `--` (tyro takes no values that start with `--`): `ns-vvc rd-sweep ... -- --pipeline.model.seed 1`."""
    data_args: Tuple[str, ...] = ()
    """More `vvc-data` arguments (e.g. --train-cameras ...)."""
    workers: int = 1
    """RD runs trained and measured at once, as Ray tasks (1: in this process, no Ray); capped at the cores."""
    address: Optional[str] = None
    """Ray cluster for the runs (`auto`, `ray://host:10001`); None with --workers > 1 starts Ray on this machine.
    The --out folder must be on storage every node sees at the same path."""
    max_retries: int = 2
    """Ray retries of a failed or lost run task (a retry resumes the run at its first unfinished frame)."""
    threads_per_worker: Optional[int] = None
    """Torch threads (and CPUs declared) per Ray task; None = cores // workers."""
    e2e_preset: str = "vvc-rate-aware-cpu"
    """vvc-mv-inr presets: the 3D method trained on each point's decoded views (plus the original test cameras'
    images as held-out views) whose test-camera renders give the point's test metrics; "" skips it (test n/a).
    The point's bytes are the MV-INR file's only."""
    e2e_args: Tuple[str, ...] = ()
    """More ns-train arguments for the end-to-end 3D runs (method options)."""

    @property
    def method(self) -> VvcMethod:
        """The spec of `preset`."""
        return preset_method(self.preset)

    # ------------------------------------------------------------------ paths
    def run_dir(self, run: SweepRun) -> Path:
        return self.out / "runs" / "sweep" / self.preset / run.name

    def point_json(self, point: str) -> Path:
        return self.out / "points" / f"{point}.json"

    def dataparser_args(self) -> List[str]:
        """The `vvc-data` options of every run (scene, frame range, downscale, extra data args)."""
        return [
            "--data", str(self.data), "--frame-start", str(self.frame_start), "--num-frames", str(self.num_frames),
            "--downscale-factor", str(self.downscale), *self.data_args,
        ]

    def scale(self) -> Dict[str, object]:
        return {
            "scene": str(self.data),
            "preset": self.preset,
            "frames": self.num_frames,
            "frame_start": self.frame_start,
            "downscale": self.downscale,
            "gop_size": self.gop_size,
            "train_view_cameras": self.train_view_cameras,
            "data_args": list(self.data_args),
        }

    # ------------------------------------------------------------------ steps
    def _ns_train(self, run: SweepRun, threads: Optional[int] = None) -> None:
        if run_finished(self.run_dir(run), self.num_frames):
            return
        exe = Path(sys.executable).parent / "ns-train"
        gop = [] if self.method.trainer == "whole-sequence" else ["--gop-size", str(self.gop_size)]
        cmd = [
            str(exe),
            self.preset,
            "--output-dir",
            str(self.out / "runs"),
            "--experiment-name",
            "sweep",
            "--timestamp",
            run.name,
            "--vis",
            "tensorboard",
            "--machine.device-type",
            self.device,
            *gop,
            "--max-frames",
            str(self.num_frames),
            *self.train_args,
            *run.args,
            "vvc-data",
            *self.dataparser_args(),
        ]
        print("$ " + " ".join(cmd), flush=True)
        env = dict(os.environ, PYTHONWARNINGS="ignore")
        if threads:
            env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        proc = subprocess.run(cmd, env=env)
        if proc.returncode != 0:
            raise SweepError(
                f"run {run.name}: ns-train failed (exit {proc.returncode}); rerun to resume: {' '.join(cmd)}"
            )

    def _measure(self, run: SweepRun, point: str, bitstream: Path) -> Dict[str, object]:
        """Decode `bitstream` and render test (and some training) views from the decoded frames only."""
        from nerfstudio_vvc.playback.evaluate import (
            JOURNAL_NAME,
            decoded_pipeline,
            journal_key,
            mean_metrics,
            render_test_views,
        )

        if not bitstream.exists():
            raise SweepError(f"run {run.name}: {bitstream} is missing (was the run finished?)")
        pdir = self.out / "points" / point
        decoder, pipeline = decoded_pipeline(bitstream, self.run_dir(run) / "config.yml")
        frames = decoder.frames()
        key, journal = journal_key(bitstream, self.run_dir(run) / "config.yml", self.lpips), pdir / JOURNAL_NAME
        test_rows = render_test_views(pipeline, frames=frames, out_dir=pdir, use_lpips=self.lpips, split="test",
                                      journal=journal, journal_key=key)
        train_rows: List[Dict] = []
        if self.train_view_cameras >= 0:
            train_rows = render_test_views(
                pipeline,
                frames=frames,
                out_dir=None,
                use_lpips=self.lpips,
                split="train",
                max_cameras=self.train_view_cameras,
                journal=journal,
                journal_key=f"{key}:cameras={self.train_view_cameras}",
            )
        progress_path = self.run_dir(run) / "progress.json"
        progress = json.loads(progress_path.read_text())["frames"] if progress_path.exists() else []
        stages_path = self.run_dir(run) / "stages.json"  # whole-sequence methods: encode = all stages / frames
        seq_s = (
            sum(v.get("seconds", 0.0) for v in json.loads(stages_path.read_text())["stats"].values())
            if stages_path.exists() and not progress
            else None
        )
        per_frame = []
        for i, f in enumerate(frames):
            st = progress[f] if f < len(progress) else {}
            per_frame.append(
                {
                    "frame_idx": f,
                    "is_iframe": decoder.is_iframe(f),
                    "bytes": decoder.frame_bytes(f),
                    "kb": decoder.frame_bytes(f) / 1000.0,
                    "test": {k: test_rows[i][k] for k in ("psnr_db", "ssim", "lpips")},
                    "train": {k: train_rows[i][k] for k in ("psnr_db", "ssim", "lpips")} if train_rows else None,
                    "train_s": st.get("train_s"),
                    "code_s": st.get("finalize_s"),
                    "decode_s": decoder.decode_seconds.get(f),
                }
            )
        file_bytes = bitstream.stat().st_size
        kinds = {
            "I": [p["kb"] for p in per_frame if p["is_iframe"]],
            "P": [p["kb"] for p in per_frame if not p["is_iframe"]],
        }
        mean = lambda xs: float(np.mean(xs)) if xs else None  # noqa: E731
        enc = [p["train_s"] + p["code_s"] for p in per_frame if p["train_s"] is not None and p["code_s"] is not None]
        if seq_s is not None:
            enc = [seq_s / max(len(frames), 1)]
        journal.unlink(missing_ok=True)  # the caller writes the point's JSON with every row now
        return {
            "point": point,
            "run": run.name,
            "curve": run.curve_of(point),
            "bitstream": str(bitstream),
            "file_bytes": file_bytes,
            "num_frames": len(frames),
            "kb_per_frame": file_bytes / 1000.0 / max(len(frames), 1),
            "i_kb": mean(kinds["I"]),
            "p_kb": mean(kinds["P"]),
            "test": mean_metrics(test_rows),
            "train": mean_metrics(train_rows) if train_rows else None,
            "encode_s_per_frame": mean(enc),
            "decode_s_per_frame": mean([p["decode_s"] for p in per_frame if p["decode_s"] is not None]),
            "per_frame": per_frame,
            "scale": self.scale(),
            "note": "encode = training + coding of the frame (a learned codec trains to encode); multi-stream Baseline "
            "runs share one training, so their encode seconds include it once per stream",
        }

    def _measure_views(self, run: SweepRun, point: str, bitstream: Path) -> Dict[str, object]:
        """A view codec's point: every decoded view against its original (train split), and, end to end, the test
        cameras rendered by `e2e_preset` trained on the decoded views (test split; bytes = the MV-INR file only)."""
        from nerfstudio_vvc.playback.eval_views import eval_decoded_views, test_frames_of
        from nerfstudio_vvc.playback.evaluate import decoded_pipeline, mean_metrics, render_test_views
        from nerfstudio_vvc.playback.registry import open_decoder

        if not bitstream.exists():
            raise SweepError(f"run {run.name}: {bitstream} is missing (was the run finished?)")
        pdir = self.out / "points" / point
        config = self.run_dir(run) / "config.yml"
        decoder = open_decoder(bitstream)
        frames = decoder.frames()
        views = eval_decoded_views(decoder, config, pdir / "views", use_lpips=self.lpips)
        test: Optional[Dict[str, Optional[float]]] = None
        if self.e2e_preset:
            dataset = pdir / "dataset"
            if not (dataset / "transforms.json").exists():
                decoder.write_dataset(dataset, test_frames=test_frames_of(config, len(frames)))
            e2e_dir = self.out / "runs" / "e2e" / self.e2e_preset / point
            if not run_finished(e2e_dir, len(frames)):
                exe = Path(sys.executable).parent / "ns-train"
                e2e = preset_method(self.e2e_preset)
                gop = [] if e2e.trainer == "whole-sequence" else ["--gop-size", str(self.gop_size)]
                cmd = [
                    str(exe),
                    self.e2e_preset,
                    "--output-dir",
                    str(self.out / "runs"),
                    "--experiment-name",
                    "e2e",
                    "--timestamp",
                    point,
                    "--vis",
                    "tensorboard",
                    "--machine.device-type",
                    self.device,
                    *gop,
                    *self.e2e_args,
                    "vvc-data",
                    "--data",
                    str(dataset),
                ]
                print("$ " + " ".join(cmd), flush=True)
                proc = subprocess.run(cmd, env=dict(os.environ, PYTHONWARNINGS="ignore"))
                if proc.returncode != 0:
                    raise SweepError(
                        f"point {point}: end-to-end {self.e2e_preset} run failed (exit {proc.returncode}); "
                        f"rerun to resume: {' '.join(cmd)}"
                    )
            e2e_file = e2e_dir / (preset_method(self.e2e_preset).bitstream or "sequence.vvc")
            dec3d, pipeline = decoded_pipeline(e2e_file, e2e_dir / "config.yml")
            test = mean_metrics(
                render_test_views(pipeline, frames=dec3d.frames(), out_dir=pdir, use_lpips=self.lpips, split="test")
            )
        rows = views["frames"]
        train = {
            k: (
                float(np.mean([r[k] for r in rows if r[k] is not None]))
                if any(r[k] is not None for r in rows)
                else None
            )
            for k in ("psnr_db", "ssim", "lpips")
        }
        stages = json.loads((self.run_dir(run) / "stages.json").read_text())["stats"]
        file_bytes = bitstream.stat().st_size
        return {
            "point": point,
            "run": run.name,
            "curve": run.curve_of(point),
            "bitstream": str(bitstream),
            "file_bytes": file_bytes,
            "num_frames": len(frames),
            "kb_per_frame": file_bytes / 1000.0 / max(len(frames), 1),
            "i_kb": None,
            "p_kb": None,
            "bpp": views["summary"]["bpp"],
            "test": test,
            "train": train,
            "views": views["summary"],
            "per_view": views["per_view"],
            "encode_s_per_frame": sum(v.get("seconds", 0.0) for v in stages.values()) / max(len(frames), 1),
            "decode_s_per_frame": float(np.mean(list(decoder.decode_seconds.values())))
            if decoder.decode_seconds
            else None,
            "scale": self.scale(),
            "note": (
                "train = every coded view decoded from the file against its original (what x265 simulcast is compared "
                f"on); test = the test cameras rendered by {self.e2e_preset or 'nothing'} trained on the decoded views "
                "(its own bitstream not counted): bytes are the MV-INR file only"
            ),
        }

    def _x265(self) -> Optional[List[Dict[str, object]]]:
        if not self.x265_crfs:
            return None
        path = self.out / "x265" / "x265.json"
        if path.exists():
            saved = json.loads(path.read_text())
            if saved.get("scale") == self.scale() and saved.get("crfs") == list(self.x265_crfs):
                return saved["points"]
        from nerfstudio_vvc.eval.x265_anchor import run_x265_anchor

        frames = self._train_frames()
        points = run_x265_anchor(
            frames, self.out / "x265", crfs=self.x265_crfs, preset=self.x265_preset, use_lpips=self.lpips
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(strict_json({"scale": self.scale(), "crfs": list(self.x265_crfs), "points": points}, indent=1))
        return points

    def _train_frames(self) -> Dict[object, List[np.ndarray]]:
        """The training cameras' images exactly as the methods see them (same frames, same downscale)."""
        import tyro

        from nerfstudio_vvc.data.datamanager import load_rgb
        from nerfstudio_vvc.data.dataparser import VvcDataParserConfig

        # the same dataparser arguments as the runs (e.g. --train-cameras / --max-train-cameras): same views
        cfg = tyro.cli(VvcDataParserConfig, args=self.dataparser_args())
        outputs = cfg.setup().get_dataparser_outputs("train")
        meta = outputs.metadata
        frames: Dict[object, List[Tuple[int, np.ndarray]]] = {}
        for path, cam, f in zip(outputs.image_filenames, meta["cam_id"].tolist(), meta["frame_idx"].tolist()):
            img = (load_rgb(path).numpy() * 255.0 + 0.5).astype(np.uint8)
            frames.setdefault(cam, []).append((f, img))
        return {c: [im for _, im in sorted(v, key=lambda t: t[0])] for c, v in frames.items()}

    def do_run(self, run: SweepRun, threads: Optional[int] = None) -> None:
        """Train `run` (or resume it) unless all its points are measured, then measure its unfinished points."""
        from nerfstudio.utils.rich_utils import CONSOLE

        streams = run.bitstreams()
        if not [p for p in streams if not self.point_json(p).exists()]:
            return
        t0 = time.perf_counter()
        self._ns_train(run, threads)
        CONSOLE.print(f"run {run.name}: trained/coded in {time.perf_counter() - t0:.0f} s")
        for point, fname in streams.items():
            pj = self.point_json(point)
            if not pj.exists():
                measure = self._measure_views if self.method.output == "views" else self._measure
                res = measure(run, point, self.run_dir(run) / fname)
                pj.parent.mkdir(parents=True, exist_ok=True)
                tmp = pj.with_suffix(".tmp")
                tmp.write_text(strict_json(res, indent=1))
                os.replace(tmp, pj)

    def _run_on_ray(self, runs: List[SweepRun]) -> None:
        """The runs as Ray tasks, at most `workers` at once; finished points are skipped as in the serial path."""
        import ray
        from nerfstudio.utils.rich_utils import CONSOLE
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

        from nerfstudio_vvc.progress import LoggedProgress
        from nerfstudio_vvc.scripts.encode_parallel import gpus_per_task, plan_workers

        todo = [r for r in runs if any(not self.point_json(p).exists() for p in r.bitstreams())]
        if not todo:
            return
        workers, threads, resources = plan_workers(self.address, self.workers, len(todo), self.threads_per_worker)
        num_gpus = gpus_per_task(self.device, 1, resources)
        task = ray.remote(_sweep_run_task).options(
            num_cpus=threads, num_gpus=num_gpus, max_retries=self.max_retries, retry_exceptions=True
        )
        CONSOLE.print(f"{len(todo)} of {len(runs)} RD runs to do; {workers} workers x {threads} threads")
        queue, running = list(todo), {}
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
        with LoggedProgress(*columns, console=CONSOLE) as bar:
            t = bar.add_task("RD runs", total=len(runs), completed=len(runs) - len(todo))
            while queue or running:
                while queue and len(running) < workers:
                    run = queue.pop(0)
                    running[task.remote(self, run, threads)] = run
                ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
                for ref in ready:
                    run = running.pop(ref)
                    try:
                        ray.get(ref)
                    except Exception as exc:
                        for other in running:
                            ray.cancel(other, force=True)
                        cause = getattr(exc, "cause", None) or exc
                        raise SweepError(
                            f"run {run.name} failed after {self.max_retries} retries: "
                            f"{' '.join(str(cause).split())[:400]}; rerun the same command to resume"
                        ) from None
                    bar.advance(t)

    # ------------------------------------------------------------------ main
    def main(self) -> Dict[str, object]:
        from nerfstudio.utils.rich_utils import CONSOLE

        from nerfstudio_vvc.progress import track

        if not self.data.exists():
            raise SystemExit(f"{self.data}: no such scene folder")
        method = self.method
        known = method.rd_runs(self.lambdas) if method.rd_runs is not None else {}
        if not known:
            raise SweepError(f"{self.preset}: method {method.method_id} has no RD points")
        if not self.runs:
            self.runs = method.rd_default_runs
        unknown = [r for r in self.runs if r not in known]
        if unknown:
            raise SystemExit(f"unknown run(s) {unknown}; choose from {sorted(known)}")
        self.out.mkdir(parents=True, exist_ok=True)
        if self.workers > 1 or self.address:
            self._run_on_ray([known[n] for n in self.runs])
        else:
            for name in track(self.runs, description="RD runs", console=CONSOLE):
                self.do_run(known[name])
        points: List[Dict[str, object]] = []
        for name in self.runs:
            points += [json.loads(self.point_json(p).read_text()) for p in known[name].bitstreams()]
        x265 = self._x265()
        summary = summarize(points, x265, self.scale(), reference=method.rd_reference)
        (self.out / "summary.json").write_text(strict_json(summary, indent=1))
        (self.out / "summary.md").write_text(summary["markdown"])
        write_plots(points, x265, self.out)
        CONSOLE.print(summary["markdown"])
        CONSOLE.print(f"summary in {self.out / 'summary.md'}; per-point JSON in {self.out / 'points'}")
        return summary


def _sweep_run_task(sweep: RdSweep, run: SweepRun, threads: int) -> None:
    """Ray task body: one RD run (train or resume, then measure its points) with `threads` torch threads."""
    import torch

    torch.set_num_threads(threads)
    sweep.do_run(run, threads)


# ---------------------------------------------------------------------- report
def _curves(points: Sequence[Dict], split: str, metric: str) -> Dict[str, Tuple[List[float], List[float], List[str]]]:
    """Curve name → (KB/frame, quality, point names) of the points that have a finite `metric` on `split`."""
    out: Dict[str, Tuple[List[float], List[float], List[str]]] = {}
    for p in points:
        q = (p.get(split) or {}).get(metric)
        if q is None or not math.isfinite(q):
            continue
        r, qs, names = out.setdefault(p["curve"], ([], [], []))
        r.append(p["kb_per_frame"])
        qs.append(q)
        names.append(p["point"])
    return out


def rate_at_quality(rates: Sequence[float], quals: Sequence[float], q: float) -> Optional[float]:
    """Rate of a curve at quality q, linear in (quality, log rate); None outside the curve's quality range
    or when the curve is not monotonic (quality must rise strictly with rate, as for BD-rate)."""
    order = np.argsort(quals)
    qs, rs = np.asarray(quals, float)[order], np.log10(np.asarray(rates, float)[order])
    if len(qs) < 2 or not (qs[0] <= q <= qs[-1]) or np.any(np.diff(qs) <= 0) or np.any(np.diff(rs) <= 0):
        return None
    return float(10 ** np.interp(q, qs, rs))


BD_METRICS: Tuple[Tuple[str, str, int], ...] = (
    ("test", "psnr_db", 1),
    ("test", "ssim", 1),
    ("test", "lpips", -1),
    ("train", "psnr_db", 1),
)
"""(split, metric, sign) pairs that get BD figures; sign −1 marks lower-is-better metrics (LPIPS)."""


def summarize(
    points: Sequence[Dict], x265: Optional[Sequence[Dict]], scale: Dict[str, object], reference: str = "Baseline"
) -> Dict[str, object]:
    """RD table (markdown) + BD-rate of every curve against `reference`, and Full/Baseline byte ratios."""
    fmt = lambda v, f="{:.2f}": "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f.format(v)  # noqa: E731
    lines = [
        f"RD sweep: {scale['scene']}, preset {scale['preset']}, {scale['frames']} frames from {scale['frame_start']}, "
        f"downscale {scale['downscale']}, GOP {scale['gop_size']}"
        f"{', data args ' + ' '.join(scale['data_args']) if scale.get('data_args') else ''}. "
        "KB = 1000 bytes of the file the decoder reads, per frame; metrics from renders of the decoded file.",
        "",
        "| curve | point | KB/frame | I KB | P KB | test PSNR | test SSIM | test LPIPS | train PSNR | train SSIM "
        "| enc s/frame | dec s/frame |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in points:
        t, tr = p.get("test") or {}, p.get("train") or {}
        lines.append(
            f"| {p['curve']} | {p['point']} | {fmt(p['kb_per_frame'])} | {fmt(p.get('i_kb'))} | {fmt(p.get('p_kb'))} | "
            f"{fmt(t.get('psnr_db'))} | {fmt(t.get('ssim'), '{:.4f}')} | {fmt(t.get('lpips'), '{:.4f}')} | "
            f"{fmt(tr.get('psnr_db'))} | {fmt(tr.get('ssim'), '{:.4f}')} | "
            f"{fmt(p.get('encode_s_per_frame'), '{:.1f}')} | "
            f"{fmt(p.get('decode_s_per_frame'), '{:.2f}')} |"
        )
    for a in x265 or []:
        lines.append(
            f"| x265 (train views) | crf{a['crf']} | {fmt(a['kb_per_frame'])} | | | n/a | n/a | n/a | "
            f"{fmt(a['psnr_db'])} | {fmt(a.get('ssim'), '{:.4f}')} | | |"
        )
    bd: Dict[str, Dict[str, object]] = {}
    dropped: Dict[str, List[str]] = {}
    front: Dict[Tuple[str, str], Dict[str, Tuple[List[float], List[float]]]] = {}
    for split, metric, sign in BD_METRICS:
        raw = _curves(points, split, metric)
        if split == "train" and x265:
            raw["x265"] = (
                [a["kb_per_frame"] for a in x265],
                [a[metric] for a in x265],
                [f"crf{a['crf']}" for a in x265],
            )
        curves: Dict[str, Tuple[List[float], List[float]]] = {}
        for c, (r, q, names) in raw.items():
            keep, drop = pareto(r, [sign * v for v in q])
            curves[c] = ([r[i] for i in keep], [q[i] for i in keep])
            if drop:
                dropped[f"{c} ({split} {metric})"] = [names[i] for i in drop]
        front[(split, metric)] = curves
        if reference not in curves:
            continue
        for name, c in curves.items():
            if name != reference:
                bd[f"{name} vs {reference} ({split} {metric})"] = bd_figures(curves[reference], c, sign)
    ratios = []
    for metric, sign in (("psnr_db", 1), ("lpips", -1)):
        curves = front.get(("test", metric), {})
        if reference not in curves:
            continue
        base_r, base_q = curves[reference]
        for p in points:
            q = (p.get("test") or {}).get(metric)
            if p["curve"] == reference or q is None:
                continue
            base_kb = rate_at_quality(base_r, [sign * v for v in base_q], sign * q)
            ratios.append(
                {
                    "point": p["point"],
                    "metric": f"test {metric}",
                    "quality": q,
                    "kb": p["kb_per_frame"],
                    "baseline_kb_at_equal_quality": base_kb,
                    "ratio": p["kb_per_frame"] / base_kb if base_kb else None,
                }
            )
    lines += [
        "",
        f"BD-rate against {reference} (PCHIP Bjøntegaard, see docs/evaluation.md); negative = fewer bytes. "
        "BD-quality is test − anchor at equal rate (for LPIPS, negative = better). Curves are fitted "
        "through their non-dominated points only:",
        "",
    ]
    for k, v in dropped.items():
        lines.append(f"- dropped as dominated, {k}: {', '.join(v)}")
    if dropped:
        lines.append("")
    for k, v in bd.items():
        lines.append(f"- {k}: {bd_text(v)}")
    if ratios:
        lines += [
            "",
            f"Bytes relative to {reference} at equal test-view quality (interpolated on the {reference} curve, "
            "linear in log-rate, no extrapolation):",
            "",
        ]
        for r in ratios:
            lines.append(
                f"- {r['point']} ({r['metric']} {r['quality']:.4g}): {fmt(r['kb'])} KB vs "
                f"{fmt(r['baseline_kb_at_equal_quality'])} KB → ratio "
                + (f"{r['ratio']:.3f}" if r["ratio"] is not None else f"n/a (outside the {reference} curve)")
            )
    return {
        "scale": scale,
        "points": list(points),
        "x265": list(x265 or []),
        "bd": bd,
        "dropped": dropped,
        "ratios": ratios,
        "markdown": "\n".join(lines) + "\n",
    }


def write_plots(points: Sequence[Dict], x265: Optional[Sequence[Dict]], out: Path) -> List[Path]:
    from nerfstudio_vvc.eval.plots import plot_frame_bytes, plot_rd_curves

    written = []
    for split, metric, _ in BD_METRICS:
        runs: Dict[str, List[Dict]] = {}
        for p in points:
            if p.get(split):
                runs.setdefault(p["curve"], []).append(
                    {"kb_per_frame": p["kb_per_frame"], metric: p[split].get(metric)}
                )
        if split == "train" and x265:
            runs["x265 simulcast"] = [{"kb_per_frame": a["kb_per_frame"], metric: a["psnr_db"]} for a in x265]
        name = f"rd_{split}_{'psnr' if metric == 'psnr_db' else metric}.png"
        written.append(plot_rd_curves(runs, metric=metric, out_png=out / name, title=f"{split} views"))
    for p in points:
        if p["curve"] == "Full":
            written.append(plot_frame_bytes(p["per_frame"], out / f"frame_bytes_{p['point']}.png", title=p["point"]))
    return written
