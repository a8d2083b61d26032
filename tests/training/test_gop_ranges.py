"""GOP-range runs (`--first-frame`): per-GOP encodes merged are byte-identical to the sequential encode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from nerfstudio_vvc.codec.bitstream.merge import merge_containers
from nerfstudio_vvc.training.trainer import gop_seed, rng_state, seed_everything, set_rng_state


def test_gop_seed_is_stable_and_independent():
    assert gop_seed(42, 0) == gop_seed(42, 0)
    seeds = {gop_seed(s, g) for s in (0, 1, 42) for g in range(50)}
    assert len(seeds) == 150  # no seed + g collisions between runs
    assert 0 <= gop_seed(42, 7) < 2**63


def test_rng_state_round_trips_through_a_weights_only_checkpoint():
    """Saved in frame checkpoints, which nerfstudio's eval loads with torch.load(weights_only=True)."""
    import io
    import random

    import numpy as np
    import torch

    seed_everything(5)
    random.random(), np.random.randn(), torch.rand(2)  # a cached gaussian and advanced streams
    buf = io.BytesIO()
    torch.save({"rng": rng_state()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)["rng"]
    expect = (random.random(), np.random.rand(), np.random.randn(), torch.rand(3).tolist())
    seed_everything(9)
    set_rng_state(saved)
    assert (random.random(), np.random.rand(), np.random.randn(), torch.rand(3).tolist()) == expect


def test_gop_range_runs_merge_to_the_sequential_file(tmp_path: Path, tiny_sample, rate_aware_run, rate_aware_trainer,
                                                     monkeypatch):
    """The session's tiny run (3 frames, GOP 2: I P | I) against GOP 0 and GOP 1 trained as separate runs
    with the same number of torch threads as that run (CPU float reductions may depend on it)."""
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", str(torch.get_num_threads()))  # the ns-train subprocesses read it
    g0 = rate_aware_trainer(tmp_path / "g0", tiny_sample, "--max-frames", "2")
    g1 = rate_aware_trainer(tmp_path / "g1", tiny_sample, "--first-frame", "2", "--max-frames", "3")
    progress = json.loads((g1 / "progress.json").read_text())
    torch.load(g1 / "nerfstudio_models" / progress["checkpoint"], weights_only=True)  # as nerfstudio's eval loads it
    assert progress["first_frame"] == 2 and progress["frames_done"] == 3
    assert [f["frame"] for f in progress["frames"]] == [2]
    res = merge_containers([g0 / "sequence.vvc", g1 / "sequence.vvc"], tmp_path / "merged.vvc", expect_frames=range(3))
    assert res.iframes == [0, 2]
    assert (tmp_path / "merged.vvc").read_bytes() == (rate_aware_run / "sequence.vvc").read_bytes()


def test_first_frame_must_start_a_gop(tmp_path: Path, tiny_sample):
    cmd = [str(Path(sys.executable).parent / "ns-train"), "vvc-rate-aware-cpu", "--output-dir", str(tmp_path),
           "--vis", "tensorboard", "--machine.device-type", "cpu", "--gop-size", "2", "--first-frame", "1",
           "vvc-data", "--data", str(tiny_sample)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    assert proc.returncode != 0
    assert "--first-frame 1 is not the start of a GOP" in proc.stdout + proc.stderr
