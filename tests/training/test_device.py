"""-cpu presets train on a CPU as the README writes them; a GPU preset without a GPU stops with one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nerfstudio_vvc.training.device import gpu_missing_message, preset_machine

PRESETS = {
    "nerfstudio_vvc.method_configs.rate_aware": ("vvc_rate_aware", "vvc_rate_aware_cpu"),
    "nerfstudio_vvc.method_configs.codebook": ("vvc_codebook", "vvc_codebook_cpu"),
    "nerfstudio_vvc.method_configs.mv_inr": ("vvc_mv_inr", "vvc_mv_inr_cpu"),
}


@pytest.mark.parametrize("module", sorted(PRESETS))
def test_cpu_presets_default_to_the_cpu_and_gpu_presets_to_cuda(module):
    import importlib

    mod = importlib.import_module(module)
    gpu, cpu = (getattr(mod, name).config for name in PRESETS[module])
    assert cpu.method_name.endswith("-cpu") and cpu.machine.device_type == "cpu"
    assert gpu.machine.device_type == "cuda"
    assert preset_machine("vvc-x-cpu").device_type == "cpu" and preset_machine("vvc-x").device_type == "cuda"


def test_gpu_missing_message_is_one_line_naming_the_way_out():
    msg = gpu_missing_message("vvc-rate-aware", "cuda", cuda_available=False)
    assert "\n" not in msg and msg.startswith("ns-train: error: vvc-rate-aware ")
    assert "ns-train vvc-rate-aware-cpu" in msg and "--machine.device-type cpu" in msg
    assert gpu_missing_message("vvc-rate-aware", "cuda", cuda_available=True) is None
    assert gpu_missing_message("vvc-rate-aware-cpu", "cpu", cuda_available=False) is None


def _ns_train(*args: str) -> subprocess.CompletedProcess:
    cmd = [str(Path(sys.executable).parent / "ns-train"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))


def test_readme_cpu_command_trains_without_a_device_flag(tmp_path, tiny_sample, tiny_rate_aware_args):
    """`ns-train vvc-rate-aware-cpu vvc-data --data DIR` (plus output and budget options, no --machine flag)."""
    args, it = [], iter(tiny_rate_aware_args)
    for a in it:
        if a == "--machine.device-type":
            next(it)
            continue
        args.append(a)
    out = tmp_path / "out"
    from ns_train import ns_train_cmd

    cmd = ns_train_cmd("vvc-rate-aware-cpu", out, *args, "--max-frames", "1", "--iframe-iterations", "4",
                       data=tiny_sample, device=None)  # as the README writes it: no device flag
    proc = _ns_train(*cmd[1:])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = out / "e" / "vvc-rate-aware-cpu" / "t"
    assert yaml.load((run / "config.yml").read_text(), Loader=yaml.Loader).machine.device_type == "cpu"
    assert (run / "sequence.vvc").stat().st_size > 0


def test_gpu_preset_without_a_gpu_is_one_clear_line(tmp_path, tiny_sample):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: the GPU preset would train")
    proc = _ns_train("vvc-rate-aware", "--output-dir", str(tmp_path), "--vis", "tensorboard",
                     "vvc-data", "--data", str(tiny_sample))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "NVIDIA" not in proc.stderr, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines[-1] == gpu_missing_message("vvc-rate-aware", "cuda", cuda_available=False), proc.stderr[-2000:]
