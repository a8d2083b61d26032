"""Shared fixtures and markers for the whole test suite.

* ``tiny_sample``: a tiny rendered sample scene (3 frames, 4 train + 1 test camera, 32x32), made
  once per session in a temporary folder. Treat it as read-only (copy it to modify it).
* ``panoptic_dir``: the real Panoptic "basketball" capture in ``<repo>/../shared/data``, or a skip.
* ``@pytest.mark.cuda`` tests are skipped when ``torch.cuda.is_available()`` is False.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PANOPTIC_BASKETBALL = REPO.parent / "shared" / "data" / "panoptic-basketball"

TINY_SAMPLE_KWARGS = dict(num_frames=3, num_cameras=4, num_test_cameras=1, resolution=(32, 32))


def pytest_collection_modifyitems(config, items):
    """Skip GPU-only tests on machines without CUDA (torch is imported only if one is collected)."""
    cuda_items = [item for item in items if item.get_closest_marker("cuda") is not None]
    if not cuda_items:
        return
    try:
        import torch

        available = torch.cuda.is_available()
    except Exception:  # pragma: no cover - torch missing or broken
        available = False
    if available:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
    for item in cuda_items:
        item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_sample(tmp_path_factory) -> Path:
    """Folder of a tiny sample scene (Panoptic layout): 3 frames, 4 train + 1 test camera, 32x32.

    ``NSVVC_TINY_SAMPLE=<folder>`` uses a copy of one made beforehand by ``make_sample(folder,
    **TINY_SAMPLE_KWARGS)`` instead: for machines without pybullet (the GPU box runs the CUDA tests so)."""
    import os
    import shutil

    out = tmp_path_factory.mktemp("tiny_sample") / "sample"
    prebuilt = os.environ.get("NSVVC_TINY_SAMPLE")
    if prebuilt:
        shutil.copytree(prebuilt, out)
        return out
    from nerfstudio_vvc.data.sample_scene import make_sample

    return make_sample(out, **TINY_SAMPLE_KWARGS)


@pytest.fixture(scope="session")
def panoptic_dir() -> Path:
    """The real Panoptic basketball capture, or skip when it is not there."""
    if not (PANOPTIC_BASKETBALL / "train_meta.json").exists():
        pytest.skip(
            f"real Panoptic data not found at {PANOPTIC_BASKETBALL} "
            "(expected <repo>/../shared/data/panoptic-basketball with train_meta.json)"
        )
    return PANOPTIC_BASKETBALL


TINY_RATE_AWARE_ARGS = [
    "--machine.device-type", "cpu", "--gop-size", "2", "--iframe-iterations", "30", "--pframe-iterations", "15",
    "--max-frames", "3", "--pipeline.model.basis-resolutions", "6", "8", "8", "10", "10", "12",
    "--pipeline.model.coeff-resolution", "8", "--pipeline.model.hidden-dim", "16",
    "--pipeline.model.num-samples", "16", "--pipeline.model.occupancy-resolution", "16",
    "--pipeline.model.posthoc-entropy-steps", "20", "--pipeline.datamanager.train-num-rays-per-batch", "256",
]
"""ns-train arguments of a tiny vvc-rate-aware run (3 frames, GOP 2: I P I; about a minute on a CPU)."""


def _rate_aware_job(out: Path, sample: Path, extra, device: str, threads: int):
    import os

    from ns_train import ns_train_cmd

    cmd = ns_train_cmd("vvc-rate-aware-cpu", out, *TINY_RATE_AWARE_ARGS, *extra, "--machine.device-type", device,
                       data=sample, device=None)
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    if threads > 0:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return cmd, env


def train_rate_aware(out: Path, sample: Path, *extra: str, device: str = "cpu", threads: int = 0) -> Path:
    """Train a tiny vvc-rate-aware run with the real `ns-train`; returns the run folder. `extra` arguments
    come after the tiny ones (a repeated option: the later one wins). `threads` > 0 pins torch's CPU threads
    (float results, hence bytes, can differ between thread counts)."""
    import subprocess

    from ns_train import run_dir

    cmd, env = _rate_aware_job(out, sample, extra, device, threads)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return run_dir(out, "vvc-rate-aware-cpu")


def train_rate_aware_side_by_side(jobs, sample: Path, device: str = "cpu") -> list:
    """Train several tiny vvc-rate-aware runs at once, one torch thread each (`jobs`: (out, extra args) pairs), for
    tests that compare runs of one setting with another: on 2 cores two one-thread runs take about the time of one.
    Returns the run folders in the order of `jobs`. Runs trained here match each other (same thread count), not
    runs trained with `train_rate_aware`'s default threads."""
    import subprocess
    import tempfile

    from ns_train import run_dir

    procs = []
    for out, extra in jobs:
        cmd, env = _rate_aware_job(out, sample, extra, device, threads=1)
        log = tempfile.TemporaryFile("w+")
        procs.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, env=env), log))
    failed = []
    for proc, log in procs:
        if proc.wait() != 0:
            log.seek(0)
            failed.append(log.read()[-3000:])
        log.close()
    assert not failed, "\n".join(failed)
    return [run_dir(out, "vvc-rate-aware-cpu") for out, _ in jobs]


@pytest.fixture(scope="session")
def rate_aware_run(tmp_path_factory, tiny_sample) -> Path:
    """Run folder of a tiny vvc-rate-aware training (config.yml, sequence.vvc, frames/). Read-only."""
    return train_rate_aware(tmp_path_factory.mktemp("rate_aware_run"), tiny_sample)


@pytest.fixture(scope="session")
def rate_aware_side_by_side():
    """`train_rate_aware_side_by_side(jobs, sample)`: tiny runs trained at once, one thread each."""
    return train_rate_aware_side_by_side


@pytest.fixture(scope="session")
def rate_aware_trainer():
    """`train_rate_aware(out, sample, *extra, device="cpu")`, for tests that train their own variant."""
    return train_rate_aware


@pytest.fixture(scope="session")
def tiny_rate_aware_args() -> list:
    """TINY_RATE_AWARE_ARGS (for tests outside this folder, which cannot import conftest by name)."""
    return list(TINY_RATE_AWARE_ARGS)
