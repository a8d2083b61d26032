"""The training device of a preset: -cpu presets default to the CPU; a GPU preset without a GPU stops with one line."""

from __future__ import annotations

from nerfstudio.configs.base_config import MachineConfig


def preset_machine(method_name: str) -> MachineConfig:
    """`--machine` defaults of a preset: device cpu for `*-cpu` presets (sized for a CPU), else nerfstudio's."""
    return MachineConfig(device_type="cpu") if method_name.endswith("-cpu") else MachineConfig()


def gpu_missing_message(method_name: str, device_type: str, cuda_available: bool) -> str | None:
    """The one-line error for `--machine.device-type cuda` on a machine without a CUDA GPU, else None."""
    if device_type != "cuda" or cuda_available:
        return None
    cpu = method_name if method_name.endswith("-cpu") else f"{method_name}-cpu"
    return (
        f"ns-train: error: {method_name} runs on --machine.device-type cuda and this machine has no CUDA GPU: "
        f"use the CPU preset (ns-train {cpu} ...) or add --machine.device-type cpu"
    )


def require_device(method_name: str, device_type: str) -> None:
    """Stop with one line (no traceback) when the run asks for CUDA and there is none."""
    import torch

    msg = gpu_missing_message(method_name, device_type, torch.cuda.is_available())
    if msg:
        raise SystemExit(msg)
