"""`ns-vvc encode-parallel`: encode a sequence GOP-parallel on Ray workers (one machine or a cluster).

A GOP starts with an I-frame and needs nothing before it, and the frame-sequential trainer seeds every
GOP from `--machine.seed` and the GOP's index alone (`training/trainer.py`), so each GOP can be trained
as its own `ns-train` run (`--first-frame s --max-frames e`) and the per-GOP containers merged
(`codec/bitstream/merge.py`) into a file byte-identical to the sequential `ns-train` encode.

Layout of `--out` (on storage every Ray node sees at the same path when running on a cluster)::

    runs/gops/<method>/gop-0000/   one ns-train run folder per GOP (config.yml, sequence.vvc, progress.json)
    logs/gop-0000.log              that run's ns-train output (appended on every attempt)
    sequence.vvc                   the merged sequence, written (temp file + rename) only when every GOP is done
    encode.json                    GOP ranges, attempts, seconds, the equivalent sequential command

Resuming: rerun the same command. A GOP whose run finished (all its frames in progress.json and a closed
container) is not run again; an unfinished one resumes at its first unfinished frame. A failed or lost
task is retried `--max-retries` times by Ray, resuming the same way.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import tyro

from nerfstudio_vvc.cores import usable_cores
from nerfstudio_vvc.jsonio import strict_json
from nerfstudio_vvc.testing.faults import FAULT_ENV, gop_fault, gop_fault_for  # noqa: F401 - FAULT_ENV re-exported
from nerfstudio_vvc.user_errors import InputError


class EncodeError(RuntimeError, InputError):
    """A GOP could not be encoded (after retries); the message names the GOP, its log and the command."""


@dataclass(frozen=True)
class Gop:
    index: int
    start: int
    end: int  # exclusive

    @property
    def name(self) -> str:
        return f"gop-{self.index:04d}"


def split_gops(num_frames: int, gop_size: int) -> List[Gop]:
    g = max(int(gop_size), 1)
    return [Gop(i, s, min(s + g, num_frames)) for i, s in enumerate(range(0, num_frames, g))]


def frames_done(run_dir: Path, start: int) -> int:
    """Frames of a GOP run finished so far (0 when it has not finished one)."""
    try:
        info = json.loads((run_dir / "progress.json").read_text())
        return (
            max(int(info["frames_done"]) - int(info.get("first_frame", 0)), 0)
            if int(info.get("first_frame", 0)) == start
            else 0
        )
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def gop_finished(run_dir: Path, gop: Gop) -> bool:
    """All the GOP's frames are checkpointed and its container is closed with exactly those frames."""
    from nerfstudio_vvc.codec.bitstream.container import ContainerReader
    from nerfstudio_vvc.codec.errors import BitstreamError

    if frames_done(run_dir, gop.start) < gop.end - gop.start:
        return False
    try:
        with ContainerReader(run_dir / "sequence.vvc") as r:
            return r.complete and r.frame_indices() == list(range(gop.start, gop.end))
    except (OSError, BitstreamError):
        return False


def check_gop_parallel(preset: str) -> None:
    """GOPs can be encoded apart only by a frame-sequential method that writes a bitstream (its spec says so); any
    other preset stops with one line."""
    from nerfstudio_vvc.methods.spec import UnknownMethodSpecError, method_for_preset

    try:
        spec = method_for_preset(preset)
    except UnknownMethodSpecError as exc:
        raise SystemExit(f"encode-parallel: {exc}") from None
    if spec.trainer != "frame-sequential" or not spec.has_bitstream:
        what = "writes no bitstream" if not spec.has_bitstream else "trains the whole sequence at once (no GOPs)"
        raise SystemExit(f"encode-parallel: {spec.method_id} {what}; encode it with ns-train {preset}")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the ns-train child is killed when its Ray worker dies (no orphan keeps writing the run folder)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def encode_gop(cmd: List[str], run_dir: str, log: str, gop: Gop, threads: int, fault: Optional[str]) -> Dict[str, Any]:
    """Ray task body: run (or resume) one GOP's ns-train. Raises on failure so that Ray retries it."""
    run_path, log_path = Path(run_dir), Path(log)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    fault_after, marker = gop_fault_for(fault, gop.index) or (None, None)
    t0 = time.time()
    resumed_at = frames_done(run_path, gop.start)
    with open(log_path, "ab") as logf:
        logf.write(
            f"\n=== attempt on {socket.gethostname()} pid {os.getpid()}, {resumed_at} frames already done\n$ "
            f"{' '.join(cmd)}\n".encode()
        )
        logf.flush()
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent)
        while proc.poll() is None:
            time.sleep(0.2)
            if fault_after is not None and frames_done(run_path, gop.start) >= fault_after:
                assert marker is not None
                marker.write_text(f"killed GOP {gop.index} after {fault_after} frames\n")
                proc.kill()
                proc.wait()
                os._exit(1)  # the worker process dies: Ray sees a lost worker, not an exception
    if proc.returncode != 0 or not gop_finished(run_path, gop):
        raise EncodeError(
            f"GOP {gop.index} (frames {gop.start}..{gop.end - 1}): ns-train exit {proc.returncode}; log {log_path}"
        )
    return {
        "gop": gop.index,
        "host": socket.gethostname(),
        "seconds": time.time() - t0,
        "resumed_at_frame": gop.start + resumed_at,
    }


def parse_num_frames(data: Path, data_args: Tuple[str, ...]) -> int:
    """Frames `vvc-data --data DATA *data_args` parses (what ns-train would train without --max-frames)."""
    from nerfstudio_vvc.data.dataparser import VvcDataParserConfig

    cfg = tyro.cli(VvcDataParserConfig, args=["--data", str(data), *data_args])
    return int(cfg.setup().get_dataparser_outputs("train").metadata["num_frames"])


def plan_workers(
    address: Optional[str], requested: int, num_tasks: int, threads_per_worker: Optional[int]
) -> Tuple[int, int, Dict[str, float]]:
    """Start (or join) Ray and size the pool: at most one worker per CPU core Ray has (said when capped) and per
    task, and torch threads per worker so that the workers together do not oversubscribe the cores. Returns
    (workers, threads per worker, the cluster's resources)."""
    from nerfstudio.utils.rich_utils import CONSOLE

    resources = init_ray(address, usable_cores())
    cores = max(int(resources.get("CPU", 1)), 1)
    workers = requested
    if workers > cores:
        CONSOLE.print(f"--workers {workers} is more than the {cores} CPU cores Ray has: using {cores} workers")
        workers = cores
    workers = max(min(workers, num_tasks), 1)
    return workers, threads_per_worker or max(cores // workers, 1), resources


def gpus_per_task(device: str, gpus_per_worker: float, resources: Dict[str, float]) -> float:
    """GPUs each Ray task asks for: `gpus_per_worker` on a cuda device, else 0; a clear exit when the cluster has
    fewer GPUs than one task needs (`resources`: `ray.cluster_resources()`)."""
    num_gpus = gpus_per_worker if device.startswith("cuda") else 0
    if num_gpus and resources.get("GPU", 0) < num_gpus:
        raise SystemExit(
            f"--device {device}: the Ray cluster has {resources.get('GPU', 0):g} GPUs, a task needs {num_gpus:g}"
        )
    return num_gpus


def init_ray(address: Optional[str], cores: int) -> Dict[str, float]:
    """Connect to `address` (a running cluster) or start Ray embedded on this machine; the cluster's resources."""
    import ray

    if not ray.is_initialized():
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
    return dict(ray.cluster_resources())


@dataclass
class EncodeParallel:
    """Encode a sequence GOP-parallel as Ray tasks; the merged file equals the sequential ns-train encode."""

    method: tyro.conf.Positional[str]
    """Method preset (e.g. vvc-rate-aware-cpu, vvc-rate-aware)."""
    data: Path
    """Scene folder (any format `vvc-data` reads)."""
    out: Path = Path("encode_parallel")
    """Output folder (see the module doc); rerunning with the same folder resumes. Shared storage on a cluster."""
    workers: int = 2
    """Ray tasks running at once (GOPs in flight); capped at the CPU cores Ray has."""
    address: Optional[str] = None
    """Ray cluster to use (`auto`, `ray://host:10001`, `host:6379`); None starts Ray on this machine."""
    gop_size: int = 20
    """Frames per GOP (the unit of parallelism)."""
    num_frames: Optional[int] = None
    """Frames to encode from the parsed range (ns-train's --max-frames); None = all."""
    seed: int = 42
    """--machine.seed of every run (with the GOP index, it seeds each GOP)."""
    device: str = "cpu"
    """--machine.device-type of every run; `cuda` gives each task `gpus_per_worker` GPUs."""
    gpus_per_worker: float = 1.0
    """GPUs a task declares when `device` is cuda."""
    threads_per_worker: Optional[int] = None
    """Torch threads (and CPUs declared) per task; None = cores // workers."""
    max_retries: int = 2
    """Ray retries of a failed or lost GOP task (each retry resumes the GOP at its first unfinished frame)."""
    train_args: Tuple[str, ...] = ()
    """More ns-train arguments for every GOP (method options, before the dataparser). On the command line
    put them after `--`:
    `ns-vvc encode-parallel M --data D -- --iframe-iterations 600 vvc-data --downscale-factor 2`."""
    data_args: Tuple[str, ...] = ()
    """More `vvc-data` arguments (on the command line: after `-- ... vvc-data`)."""

    def run_dir(self, gop: Gop) -> Path:
        return self.out / "runs" / "gops" / self.method / gop.name

    def log_path(self, gop: Gop) -> Path:
        return self.out / "logs" / f"{gop.name}.log"

    def _common(self) -> List[str]:
        return [
            "--vis",
            "tensorboard",
            "--machine.device-type",
            self.device,
            "--machine.seed",
            str(self.seed),
            "--gop-size",
            str(self.gop_size),
        ]

    def _data(self) -> List[str]:
        return ["vvc-data", "--data", str(self.data), *self.data_args]

    def gop_command(self, gop: Gop) -> List[str]:
        exe = Path(sys.executable).parent / "ns-train"
        return [
            str(exe),
            self.method,
            "--output-dir",
            str(self.out / "runs"),
            "--experiment-name",
            "gops",
            "--timestamp",
            gop.name,
            *self._common(),
            "--first-frame",
            str(gop.start),
            "--max-frames",
            str(gop.end),
            *self.train_args,
            *self._data(),
        ]

    def sequential_command(self, n: int, threads: int) -> List[str]:
        """The single `ns-train` run this encode equals byte for byte. Float reductions on the CPU may depend on
        the number of torch threads, so the equivalence holds at the same thread count as the GOP runs."""
        return [
            f"OMP_NUM_THREADS={threads}",
            "ns-train",
            self.method,
            *self._common(),
            "--max-frames",
            str(n),
            *self.train_args,
            *self._data(),
        ]

    def main(self) -> Path:
        import ray
        from nerfstudio.utils.rich_utils import CONSOLE
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

        from nerfstudio_vvc.codec.bitstream.merge import merge_containers
        from nerfstudio_vvc.progress import LoggedProgress

        if not self.data.exists():
            raise SystemExit(f"{self.data}: no such scene folder")
        if self.workers < 1:
            raise SystemExit("--workers must be at least 1")
        check_gop_parallel(self.method)
        own = {
            "--gop-size": "--gop-size",
            "--first-frame": None,
            "--max-frames": "--num-frames",
            "--machine.seed": "--seed",
            "--machine.device-type": "--device",
            "--timestamp": None,
            "--output-dir": "--out",
        }
        for a in self.train_args:
            flag = a.split("=", 1)[0]
            if flag in own:
                raise SystemExit(
                    f"encode-parallel sets {flag} of every GOP run itself"
                    + (f": use its {own[flag]} option" if own[flag] else "")
                )
        total = parse_num_frames(self.data, self.data_args)
        n = total if self.num_frames is None else min(total, self.num_frames)
        gops = split_gops(n, self.gop_size)
        self.out.mkdir(parents=True, exist_ok=True)

        t_start = time.time()
        workers, threads, resources = plan_workers(self.address, self.workers, len(gops), self.threads_per_worker)
        num_gpus = gpus_per_task(self.device, self.gpus_per_worker, resources)
        task = ray.remote(encode_gop).options(
            num_cpus=threads, num_gpus=num_gpus, max_retries=self.max_retries, retry_exceptions=True
        )
        todo = [g for g in gops if not gop_finished(self.run_dir(g), g)]
        CONSOLE.print(
            f"{n} frames in {len(gops)} GOPs of {self.gop_size}; {len(gops) - len(todo)} already done; "
            f"{workers} workers x {threads} threads"
            + (f", {num_gpus:g} GPU each" if num_gpus else "")
            + f" on {'Ray at ' + self.address if self.address else 'this machine'}"
        )
        fault = gop_fault()
        results: Dict[int, Dict[str, Any]] = {}
        queue = list(todo)
        running: Dict[Any, Gop] = {}
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
        with LoggedProgress(*columns, console=CONSOLE, transient=False) as bar:
            frames_task = bar.add_task("frames", total=n)
            while queue or running:
                while queue and len(running) < workers:  # at most `workers` tasks in flight
                    g = queue.pop(0)
                    ref = task.remote(
                        self.gop_command(g), str(self.run_dir(g)), str(self.log_path(g)), g, threads, fault
                    )
                    running[ref] = g
                ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
                for ref in ready:
                    g = running.pop(ref)
                    try:
                        results[g.index] = ray.get(ref)
                    except Exception as exc:  # retries exhausted: stop, finished GOPs stay for the next run
                        for other in running:
                            ray.cancel(other, force=True)
                        cause = getattr(exc, "cause", None) or exc
                        raise EncodeError(
                            f"GOP {g.index} (frames {g.start}..{g.end - 1}) failed after "
                            f"{self.max_retries} retries: {' '.join(str(cause).split())[:400]}; "
                            f"log {self.log_path(g)}; rerun the same command to resume"
                        ) from None
                done = sum(min(frames_done(self.run_dir(g), g.start), g.end - g.start) for g in gops)
                bar.update(
                    frames_task,
                    completed=done,
                    description=f"frames ({len(gops) - len(queue) - len(running)}/{len(gops)} GOPs done)",
                )
        out = self.out / "sequence.vvc"
        res = merge_containers([self.run_dir(g) / "sequence.vvc" for g in gops], out, expect_frames=range(n))
        wall = time.time() - t_start
        summary = {
            "method": self.method,
            "frames": n,
            "gop_size": self.gop_size,
            "workers": workers,
            "threads_per_worker": threads,
            "gpus_per_worker": num_gpus,
            "address": self.address,
            "wall_s": wall,
            "file_bytes": res.nbytes,
            "gops": [
                {
                    "gop": g.index,
                    "frames": [g.start, g.end - 1],
                    "run": str(self.run_dir(g)),
                    **results.get(g.index, {"skipped": "already done"}),
                }
                for g in gops
            ],
            "sequential_equivalent": " ".join(self.sequential_command(n, threads)),
        }
        (self.out / "encode.json").write_text(strict_json(summary, indent=1))
        CONSOLE.print(
            f"{out}: {n} frames, {res.nbytes} bytes, in {wall:.0f} s "
            f"(byte-identical to: {summary['sequential_equivalent']})"
        )
        return out
