"""`ns-vvc encode-parallel` on a real local Ray: byte-identical to the sequential encode, also when a worker dies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

import pytest

from nerfstudio_vvc.scripts.encode_parallel import FAULT_ENV, EncodeParallel, Gop, gop_finished, split_gops


def _method_args(tiny: List[str]) -> List[str]:
    """The tiny run's method options without the ones encode-parallel sets itself (GOP, frame range, device)."""
    out, skip = [], {"--gop-size", "--max-frames", "--machine.device-type"}
    it = iter(tiny)
    for a in it:
        if a in skip:
            next(it)
        else:
            out.append(a)
    return out


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_split_gops():
    assert split_gops(7, 3) == [Gop(0, 0, 3), Gop(1, 3, 6), Gop(2, 6, 7)]
    assert split_gops(4, 2)[1].name == "gop-0001"


def test_killed_worker_gop_is_resumed_and_file_is_byte_identical(
    tmp_path: Path, tiny_sample, rate_aware_trainer, tiny_rate_aware_args, local_ray, monkeypatch, capsys
):
    """3 frames, GOP 2 → GOP 0 (I P) and GOP 1 (I) as Ray tasks on 2 CPUs. GOP 0's first attempt kills its
    ns-train and its own worker process after frame 0 is checkpointed; Ray retries the task, which resumes at
    frame 1. The merged file equals the sequential `ns-train` encode at the workers' thread count (1 here: CPU
    float results, hence bytes, may differ between thread counts)."""
    rate_aware_run = rate_aware_trainer(tmp_path / "ref", tiny_sample, threads=1)
    marker = tmp_path / "fault-fired"
    monkeypatch.setenv(FAULT_ENV, f"0:1:{marker}")
    enc = EncodeParallel(
        method="vvc-rate-aware-cpu",
        data=tiny_sample,
        out=tmp_path / "enc",
        workers=5,
        gop_size=2,
        num_frames=3,
        train_args=tuple(_method_args(tiny_rate_aware_args)),
        max_retries=2,
    )
    out = enc.main()
    assert "--workers 5 is more than the 2 CPU cores Ray has: using 2 workers" in capsys.readouterr().out
    assert marker.exists()  # the fault really fired
    log = enc.log_path(Gop(0, 0, 2)).read_text()
    assert log.count("=== attempt") == 2 and "1 frames already done" in log
    summary = json.loads((tmp_path / "enc" / "encode.json").read_text())
    assert summary["workers"] == 2 and summary["threads_per_worker"] == 1
    assert summary["gops"][0]["resumed_at_frame"] == 1 and summary["gops"][1]["resumed_at_frame"] == 2
    assert out.read_bytes() == (rate_aware_run / "sequence.vvc").read_bytes()

    # rerun: nothing is trained again, the merged file is the same
    monkeypatch.delenv(FAULT_ENV)
    mtime = (enc.run_dir(Gop(0, 0, 2)) / "sequence.vvc").stat().st_mtime_ns
    out.unlink()
    enc.main()
    assert all(g.get("skipped") for g in json.loads((tmp_path / "enc" / "encode.json").read_text())["gops"])
    assert (enc.run_dir(Gop(0, 0, 2)) / "sequence.vvc").stat().st_mtime_ns == mtime
    assert out.read_bytes() == (rate_aware_run / "sequence.vvc").read_bytes()


def test_failing_gop_leaves_no_merged_file(tmp_path: Path, tiny_sample, local_ray):
    """A GOP that fails on every attempt (bad method option): a one-line error naming the GOP and its log,
    no sequence.vvc."""
    from nerfstudio_vvc.scripts.encode_parallel import EncodeError

    enc = EncodeParallel(
        method="vvc-rate-aware-cpu",
        data=tiny_sample,
        out=tmp_path / "enc",
        workers=2,
        gop_size=2,
        num_frames=3,
        train_args=("--pipeline.model.no-such-option", "1"),
        max_retries=0,
    )
    with pytest.raises(EncodeError, match=r"GOP \d \(frames .*failed after 0 retries.*gop-000\d.log"):
        enc.main()
    assert not (tmp_path / "enc" / "sequence.vvc").exists()
    assert not gop_finished(enc.run_dir(Gop(0, 0, 2)), Gop(0, 0, 2))


def test_ns_train_arguments_after_double_dash():
    from nerfstudio_vvc.scripts.cli import split_passthrough

    argv = ["encode-parallel", "m", "--data", "d"]
    assert split_passthrough(argv) == (argv, None)
    assert split_passthrough([*argv, "--", "--iframe-iterations", "60", "vvc-data", "--downscale-factor", "2"]) == (
        argv,
        (["--iframe-iterations", "60"], ["--downscale-factor", "2"]),
    )
    assert split_passthrough([*argv, "--", "--gop-size", "4"]) == (argv, (["--gop-size", "4"], []))


def test_options_encode_parallel_sets_itself_are_refused(tmp_path: Path, tiny_sample):
    enc = EncodeParallel(method="vvc-rate-aware-cpu", data=tiny_sample, out=tmp_path, train_args=("--gop-size", "4"))
    with pytest.raises(SystemExit, match="sets --gop-size of every GOP run itself: use its --gop-size option"):
        enc.main()


def test_gpus_per_task_checks_the_cluster_without_a_gpu():
    """The GPU-count branch of encode-parallel / rd-sweep, on a fake `ray.cluster_resources()` dict."""
    from nerfstudio_vvc.scripts.encode_parallel import gpus_per_task

    assert gpus_per_task("cpu", 1, {"CPU": 2.0}) == 0
    assert gpus_per_task("cuda", 0.5, {"CPU": 2.0, "GPU": 1.0}) == 0.5
    with pytest.raises(SystemExit, match=r"--device cuda: the Ray cluster has 0 GPUs, a task needs 1$"):
        gpus_per_task("cuda", 1, {"CPU": 2.0})
    with pytest.raises(SystemExit, match="has 1 GPUs, a task needs 2"):
        gpus_per_task("cuda:0", 2, {"GPU": 1.0})
