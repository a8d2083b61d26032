"""Stages as data: a named step after training with a resume point (see training/sequence_trainer.py).

A method lists its stages (``model.stages()``); each is ``run(ctx) -> outputs`` and
``restore(model, outputs)``. ``NSVVC_KILL_AT`` simulates a kill inside a stage (tests of resume).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch

from nerfstudio_vvc.testing.faults import KILL_ENV, SimulatedKill, maybe_kill  # noqa: F401 - re-exported (fault hooks)


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


