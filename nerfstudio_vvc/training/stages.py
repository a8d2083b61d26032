"""Stages as data: a named step after training with a resume point (see training/sequence_trainer.py).

A method lists its stages (``model.stages()``); each is ``run(ctx) -> outputs`` and
``restore(model, outputs)``. ``NSVVC_KILL_AT`` simulates a kill inside a stage (tests of resume).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch

KILL_ENV = "NSVVC_KILL_AT"
"""Tests: ``<stage>`` raises SimulatedKill inside that stage after its work, before its outputs are saved;
``<stage>:<n>`` after n units (training steps of this process, fragments of ``dynamic``)."""


class SimulatedKill(RuntimeError):
    """Raised where NSVVC_KILL_AT says (tests of resume)."""


def maybe_kill(stage: str, units: Optional[int] = None) -> None:
    spec = os.environ.get(KILL_ENV, "")
    if not spec:
        return
    name, _, n = spec.partition(":")
    if name == stage and ((n == "" and units is None) or (n != "" and units is not None and units >= int(n))):
        raise SimulatedKill(f"simulated kill in stage {stage}" + (f" after {units} units" if units is not None else ""))


@dataclass
class StageContext:
    """What a stage gets: the model, the datamanager, the run folder, a progress bar, partial outputs."""

    model: Any  # CodebookModel
    datamanager: Any  # SequenceDataManager
    run_dir: Path
    progress: Any  # rich Progress
    outputs: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    """Outputs of the finished stages, by name."""
    partial: Optional[Dict[str, Any]] = None
    save_partial: Callable[[Dict[str, Any]], None] = lambda outputs: None
    cache: Dict[str, Any] = field(default_factory=dict)
    """Derived data several stages of one process read (e.g. vvc-mv-inr's views as one tensor); never saved."""

    @property
    def device(self) -> torch.device:
        return self.model.aabb.device

    def batch(self, frames: Optional[List[int]] = None):
        dm = self.datamanager
        frames = dm.random_frames(frames)
        return dm.sample(dm.config.train_num_rays_per_batch, frames)

    def mse(self, frames: Optional[List[int]] = None) -> torch.Tensor:
        bundle, batch = self.batch(frames)
        out = self.model.render_grouped(bundle.origins, bundle.directions, bundle.times.reshape(-1), jitter=True)
        return torch.mean((out["rgb"] - batch["image"]) ** 2)

    def task(self, description: str, total: int):
        return self.progress.add_task(description, total=total)


@dataclass(frozen=True)
class Stage:
    name: str
    description: str
    run: Callable[[StageContext], Dict[str, Any]]
    restore: Callable[[Any, Dict[str, Any]], None]


