"""Whole-sequence trainer with stages: train the sequence at once, then run the model's stages.

Methods such as vvc-codebook train one representation on rays of all cameras and all times, then
compress it in named stages (``model.stages()``, a list of ``Stage``: importance → codebook → ...).
This trainer runs ``train`` (nerfstudio's iteration loop; checkpoint every ``steps_per_save`` steps
and at the end) and then every stage in order. Resume points:

    <run>/nerfstudio_models/step-N.ckpt   pipeline, optimizers and RNG state of the training stage
    <run>/stages/<name>.pt                a finished stage's outputs (its ``restore`` re-installs them)
    <run>/stages/<name>.partial.pt        a long stage's finished units (e.g. fragments)
    <run>/stages.json                     finished stages, their seconds and statistics, peak RSS

Run the same command again (same ``--timestamp``) after a kill: training continues from its last
checkpoint, finished stages are restored from their files, and the interrupted stage starts over
(or from its saved units). Each stage seeds the RNG, so a resumed run writes the same bytes as one
that was never interrupted.
"""

from __future__ import annotations

import json
import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Literal, Optional, Type

import torch
from nerfstudio.engine.trainer import Trainer, TrainerConfig
from nerfstudio.utils import writer
from nerfstudio.utils.rich_utils import CONSOLE
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

from nerfstudio_vvc.jsonio import strict_json
from nerfstudio_vvc.progress import LoggedProgress
from nerfstudio_vvc.training.device import require_device

STAGES_FILE = "stages.json"


@dataclass
class SequenceTrainerConfig(TrainerConfig):
    """Trainer settings for whole-sequence training followed by the model's compression stages."""

    _target: Type = field(default_factory=lambda: SequenceTrainer)
    max_num_iterations: int = 3000
    """Training iterations of the whole sequence (the `train` stage)."""
    steps_per_save: int = 500
    """Checkpoint interval of the `train` stage (a killed run resumes from the last one)."""
    max_frames: Optional[int] = None
    """Train and code only the first N frames of the parsed range (None: all)."""
    steps_per_eval_batch: int = 10**9
    steps_per_eval_image: int = 10**9
    steps_per_eval_all_images: int = 10**9
    save_only_latest_checkpoint: bool = True


def peak_rss_mb() -> float:
    """Peak resident memory of this process (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _atomic_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class SequenceTrainer(Trainer):
    config: SequenceTrainerConfig

    def setup(self, test_mode: Literal["test", "val", "inference"] = "val") -> None:
        require_device(self.config.method_name, self.config.machine.device_type)
        model_cfg = self.config.pipeline.model
        if hasattr(model_cfg, "frame_store_dir"):
            model_cfg.frame_store_dir = self.base_dir / "frames"
        self.config.save_config()  # the viewer reads the frame store path from config.yml
        self.stages_state: Dict[str, Any] = {"done": [], "stats": {}}
        super().setup(test_mode)  # ends with _load_checkpoint()
        dm = self.pipeline.datamanager
        dm.load_all(self.config.max_frames)
        model = self.pipeline.model
        model.num_frames = dm.num_frames  # time normalisation: the dataparser's frame count
        model.frames_coded = dm.frames_loaded
        model.live_preview = True  # ns-train's viewer: the live field until sequence.vvc is written

    # ------------------------------------------------------------------ resume points
    def _stages_path(self) -> Path:
        return self.base_dir / STAGES_FILE

    def _stage_path(self, name: str, partial: bool = False) -> Path:
        return self.base_dir / "stages" / (f"{name}.partial.pt" if partial else f"{name}.pt")

    def _mark_done(self, name: str, stats: Dict[str, Any]) -> None:
        self.stages_state["done"].append(name)
        self.stages_state["stats"][name] = stats
        self.stages_state["peak_rss_mb"] = peak_rss_mb()
        tmp = self._stages_path().with_suffix(".tmp")
        tmp.write_text(strict_json(self.stages_state, indent=1))
        os.replace(tmp, self._stages_path())

    def _load_checkpoint(self) -> None:
        if self._stages_path().exists():
            try:
                self.stages_state = json.loads(self._stages_path().read_text())
            except ValueError as exc:
                raise SystemExit(
                    f"{self._stages_path()}: cannot resume ({exc}); remove the run folder to start over"
                ) from None
        ckpts = sorted(self.checkpoint_dir.glob("step-*.ckpt")) if self.checkpoint_dir.exists() else []
        if not ckpts:
            CONSOLE.print("No checkpoint in this run's folder: training from the start.")
            return
        try:
            state = torch.load(ckpts[-1], map_location="cpu", weights_only=False)
        except (OSError, RuntimeError, ValueError) as exc:
            raise SystemExit(f"{ckpts[-1]}: cannot resume ({exc}); remove the run folder to start over") from None
        self.pipeline.load_pipeline(state["pipeline"], state["step"])
        self.optimizers.load_optimizers(state["optimizers"])
        torch.set_rng_state(state["rng"])
        self._start_step = int(state["step"]) + 1
        self.pipeline.model.frame_step = self._start_step  # the occupancy update schedule continues
        done = ", ".join(self.stages_state["done"]) or "none"
        CONSOLE.print(f"Resuming: training at step {self._start_step}, finished stages: {done}.")

    def save_checkpoint(self, step: int) -> None:
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        name = f"step-{step:09d}.ckpt"
        tmp = self.base_dir / (name + ".tmp")  # never a temp name inside checkpoint_dir (eval_setup lists it)
        torch.save(
            {
                "step": step,
                "pipeline": self.pipeline.state_dict(),
                "rng": torch.get_rng_state(),
                "optimizers": {k: v.state_dict() for k, v in self.optimizers.optimizers.items()},
            },
            tmp,
        )
        os.replace(tmp, self.checkpoint_dir / name)
        for old in self.checkpoint_dir.glob("step-*.ckpt"):
            if old.name != name:
                old.unlink()

    # ------------------------------------------------------------------ the run
    def train(self) -> None:
        from nerfstudio_vvc.training.stages import StageContext, maybe_kill

        dm = self.pipeline.datamanager
        model = self.pipeline.model
        dm.train_dataparser_outputs.save_dataparser_transform(self.base_dir / "dataparser_transforms.json")
        self._init_viewer_state()
        done = self.stages_state["done"]
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
        with LoggedProgress(*columns, console=CONSOLE, transient=False) as bar:
            if "train" not in done:
                n_iter = self.config.max_num_iterations
                task = bar.add_task("train (all cameras, all times)", total=n_iter, completed=self._start_step)
                t0 = time.perf_counter()
                metrics: Dict[str, Any] = {}
                for step in range(self._start_step, n_iter):
                    self.step = step
                    with self.train_lock:
                        self.pipeline.train()
                        loss, loss_dict, metrics = self.train_iteration(step)
                    self._update_viewer_state(step)
                    if step % self.config.logging.steps_per_log == 0:
                        writer.put_scalar(name="Train Loss", scalar=loss, step=step)
                        writer.put_dict(name="Train Loss Dict", scalar_dict=loss_dict, step=step)
                        writer.put_dict(name="Train Metrics Dict", scalar_dict=metrics, step=step)
                        writer.write_out_storage()
                    bar.update(task, advance=1)
                    if (step + 1) % self.config.steps_per_save == 0 or step + 1 == n_iter:
                        self.save_checkpoint(step)
                    maybe_kill("train", step + 1 - self._start_step)
                if not list(self.checkpoint_dir.glob("step-*.ckpt")):  # no ray training (e.g. vvc-mv-inr):
                    self.save_checkpoint(max(n_iter - 1, 0))  # eval_setup / ns-viewer still need one to load
                psnr = float(metrics.get("psnr", float("nan")))
                self._mark_done(
                    "train", {"seconds": time.perf_counter() - t0, "iterations": n_iter, "train_psnr_db": psnr}
                )
                CONSOLE.print(
                    f"train: {n_iter} iterations, train PSNR {psnr:.2f} dB"
                    if n_iter
                    else "train: no ray training for this method (it trains in its stages)"
                )
            self.pipeline.train()
            ctx = StageContext(model, dm, self.base_dir, bar)
            for i, stage in enumerate(model.stages()):
                path = self._stage_path(stage.name)
                if stage.name in done:
                    outputs = torch.load(path, map_location="cpu", weights_only=False)
                    stage.restore(model, outputs)
                    ctx.outputs[stage.name] = outputs
                    continue
                partial = self._stage_path(stage.name, partial=True)
                ctx.partial = torch.load(partial, map_location="cpu", weights_only=False) if partial.exists() else None
                ctx.save_partial = lambda o, p=partial: _atomic_save(o, p)
                torch.manual_seed(model.config.seed + 100 + i)
                t0 = time.perf_counter()
                outputs = stage.run(ctx)
                _atomic_save(outputs, path)
                stage.restore(model, outputs)
                ctx.outputs[stage.name] = outputs
                seconds = time.perf_counter() - t0
                self._mark_done(
                    stage.name,
                    {"seconds": seconds, **outputs.get("stats", {})}
                    if isinstance(outputs.get("stats"), dict)
                    else {"seconds": seconds},
                )
                partial.unlink(missing_ok=True)
                CONSOLE.print(f"{stage.name}: {stage.description} ({seconds:.1f} s)")
        self.training_state = "completed"
        model.live_preview = False
        model._playback_source, model._playback_opened_at = None, -1e9  # the viewer may now open the finished file
        CONSOLE.print(f"peak RSS {peak_rss_mb():.0f} MiB; stages in {self._stages_path()}")
