"""Frame-sequential trainer: one `ns-train` run trains a whole sequence, frame by frame.

nerfstudio's Trainer builds optimizers once from `get_param_groups` and loops over a flat step
range. Sequence codecs need, per frame: a fresh optimizer (new parameters, new Adam moments), a
separate iteration budget for I- and P-frames, and a hook at the end of each frame that encodes it
and pushes its decoded state where the next frame reads it. This subclass adds exactly that and a
per-frame checkpoint, so a run killed at any point resumes at the first unfinished frame.

Resume: run the same command again with the same `--timestamp`;
`progress.json` in the run folder says how many frames are finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Type

import numpy as np
import torch
from nerfstudio.engine.trainer import Trainer, TrainerConfig
from nerfstudio.utils import writer
from nerfstudio.utils.rich_utils import CONSOLE
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

from nerfstudio_vvc.jsonio import strict_json
from nerfstudio_vvc.methods.base import FrameModelConfig
from nerfstudio_vvc.progress import LoggedProgress
from nerfstudio_vvc.training.device import require_device
from nerfstudio_vvc.units import format_kb

PROGRESS_FILE = "progress.json"


@dataclass
class FrameSequentialTrainerConfig(TrainerConfig):
    """Trainer settings for GOP-structured, frame-by-frame training."""

    _target: Type = field(default_factory=lambda: FrameSequentialTrainer)
    gop_size: int = 20
    """Frames per group of pictures; the first of each GOP is an I-frame."""
    iframe_iterations: int = 2000
    """Training iterations for an I-frame."""
    pframe_iterations: int = 1000
    """Training iterations for a P-frame."""
    lr_final_factor: float = 0.1
    """Each frame's learning rates decay exponentially to this fraction over the frame; 1 = constant."""
    pframe_lr_final_factor: Optional[float] = None
    """The same for P-frames (None: `lr_final_factor`)."""
    max_frames: Optional[int] = None
    """Train only the first N frames of the parsed range (None: all)."""
    first_frame: int = 0
    """Start at this frame, a GOP start: with `max_frames`, train frames [first_frame, max_frames) only."""
    steps_per_save: int = 10**9
    """Checkpoints are written at frame ends; step-based saves are off."""
    steps_per_eval_batch: int = 10**9
    steps_per_eval_image: int = 10**9
    steps_per_eval_all_images: int = 10**9
    max_num_iterations: int = 10**9
    """Set from the frame budgets at start-up."""
    save_only_latest_checkpoint: bool = True


def is_iframe(frame: int, gop_size: int) -> bool:
    return frame % max(gop_size, 1) == 0


def gop_seed(seed: int, gop_index: int) -> int:
    """Seed of GOP `gop_index` of a run seeded with `seed` (independent streams, not seed + i)."""
    digest = hashlib.sha256(f"nerfstudio-vvc gop {int(seed)} {int(gop_index)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def seed_everything(seed: int) -> None:
    """Python, numpy and torch (CPU and every CUDA device) generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> Dict[str, Any]:
    """The generators' state in types `torch.load(weights_only=True)` accepts (nerfstudio's eval loads the
    checkpoint that way): tensors, ints, floats."""
    version, py_state, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state()
    state: Dict[str, Any] = {
        "python": {"version": int(version), "state": torch.tensor(py_state, dtype=torch.int64), "gauss_next": gauss},
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    py, npy = state["python"], state["numpy"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss_next"]))
    np.random.set_state(("MT19937", npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                         npy["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class FrameSequentialTrainer(Trainer):
    config: FrameSequentialTrainerConfig

    def setup(self, test_mode: Literal["test", "val", "inference"] = "val") -> None:
        require_device(self.config.method_name, self.config.machine.device_type)
        model_cfg = self.config.pipeline.model
        if not isinstance(model_cfg, FrameModelConfig):
            raise SystemExit(f"{self.config.method_name}: the frame-sequential trainer trains FrameModel methods "
                             f"(vvc-rate-aware, vvc-grid), not {type(model_cfg).__name__}")
        model_cfg.frame_store_dir = self.base_dir / "frames"
        self.config.save_config()  # the viewer reads the frame store path from config.yml
        first = int(self.config.first_frame)
        if first < 0 or first % max(self.config.gop_size, 1) != 0:
            raise SystemExit(
                f"--first-frame {first} is not the start of a GOP (a multiple of --gop-size {self.config.gop_size})"
            )
        self.frames_done = first  # frames_done: the next frame to train (frames before first_frame are not this run's)
        self._rng_resume: Optional[Dict[str, Any]] = None
        super().setup(test_mode)
        dm = self.pipeline.datamanager
        self.num_frames = (
            dm.num_frames if self.config.max_frames is None else min(dm.num_frames, self.config.max_frames)
        )
        if first >= self.num_frames:
            raise SystemExit(f"--first-frame {first} is past the last frame to train ({self.num_frames - 1})")
        self.pipeline.model.set_sequence(dm.num_frames, self.config.gop_size, first)

    # ------------------------------------------------------------------ checkpoints
    def _progress_path(self) -> Path:
        return self.base_dir / PROGRESS_FILE  # nerfstudio parses every name in checkpoint_dir

    def _load_checkpoint(self) -> None:
        """Resume from the last finished frame if this run's folder has one."""
        progress = self._progress_path()
        if not progress.exists():
            CONSOLE.print("No finished frames in this run's folder: training from the first frame.")
            return
        try:
            info = json.loads(progress.read_text())
            ckpt = self.checkpoint_dir / info["checkpoint"]
            state = torch.load(ckpt, map_location="cpu", weights_only=False)
        except (OSError, ValueError, KeyError) as exc:
            raise SystemExit(f"{progress}: cannot resume ({exc}); remove the run folder to start over") from None
        if int(info.get("first_frame", 0)) != int(self.config.first_frame):
            raise SystemExit(
                f"{progress}: this run started at frame {info.get('first_frame', 0)}, not "
                f"--first-frame {self.config.first_frame}; use another --timestamp"
            )
        self.pipeline.load_pipeline(state["pipeline"], state["step"])
        self._start_step = int(state["step"]) + 1
        self.frames_done = int(info["frames_done"])
        self._rng_resume = state.get("rng")  # the rest of a GOP draws the numbers it would have drawn unbroken
        model = self.pipeline.model
        if model.store is not None:
            model.store.discard_after(self.frames_done - 1)
        model.on_resume(self.frames_done)
        CONSOLE.print(f"Resuming at frame {self.frames_done} (frames 0..{self.frames_done - 1} finished).")

    def save_frame_checkpoint(self, step: int, frames_done: int, stats: List[Dict[str, Any]]) -> None:
        """Write the model checkpoint, then `progress.json`; both atomically."""
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        name = f"step-{step:09d}.ckpt"
        tmp = self.base_dir / (name + ".tmp")  # never a temp name inside checkpoint_dir
        torch.save(
            {"step": step, "pipeline": self.pipeline.state_dict(), "frames_done": frames_done, "rng": rng_state()}, tmp
        )
        os.replace(tmp, self.checkpoint_dir / name)
        info = {
            "frames_done": frames_done,
            "first_frame": int(self.config.first_frame),
            "checkpoint": name,
            "step": step,
            "frames": stats,
        }
        tmp_p = self._progress_path().with_suffix(".tmp")
        tmp_p.write_text(strict_json(info, indent=1))
        os.replace(tmp_p, self._progress_path())
        for old in self.checkpoint_dir.glob("step-*.ckpt"):
            if old.name != name:
                old.unlink()

    def save_checkpoint(self, step: int) -> None:
        """Checkpoints happen at frame ends only (a mid-frame state cannot be resumed)."""

    # ------------------------------------------------------------------ training
    def frame_iterations(self, frame: int) -> int:
        gop = self.config.gop_size
        return self.config.iframe_iterations if is_iframe(frame, gop) else self.config.pframe_iterations

    def _add_frame_decay(self, n_iter: int, iframe: bool = True) -> None:
        """Per-frame learning rates for the groups that have no scheduler: the model's scale for this frame
        (`frame_lr_scale`, e.g. smaller steps on P-frame residuals) times an exponential decay to
        `lr_final_factor` over the frame."""
        factor = self.config.lr_final_factor
        if not iframe and self.config.pframe_lr_final_factor is not None:
            factor = self.config.pframe_lr_final_factor
        model = self.pipeline.model
        for name, opt in self.optimizers.optimizers.items():
            scale = float(model.frame_lr_scale(name))
            if name in self.optimizers.schedulers or (factor == 1.0 and scale == 1.0):
                continue
            self.optimizers.schedulers[name] = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda i, n=max(n_iter, 1), s=scale: s * factor ** (min(i, n) / n)
            )

    def train(self) -> None:
        dm = self.pipeline.datamanager
        model = self.pipeline.model
        dm.train_dataparser_outputs.save_dataparser_transform(self.base_dir / "dataparser_transforms.json")
        self._init_viewer_state()
        stats: List[Dict[str, Any]] = []
        if self._progress_path().exists():
            stats = json.loads(self._progress_path().read_text()).get("frames", [])
        step = self._start_step
        self.stop_training = False
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
        with LoggedProgress(*columns, console=CONSOLE, transient=False) as bar:
            first = int(self.config.first_frame)
            seq_task = bar.add_task("frames", total=self.num_frames - first, completed=self.frames_done - first)
            if self._rng_resume is not None:
                set_rng_state(self._rng_resume)
            for frame in range(self.frames_done, self.num_frames):
                iframe = is_iframe(frame, self.config.gop_size)
                if iframe:  # each GOP depends on its seed and its frames only (GOP-parallel encodes equal this run)
                    seed_everything(gop_seed(self.config.machine.seed, frame // max(self.config.gop_size, 1)))
                dm.set_frame(frame)
                model.begin_frame(frame, iframe)
                self.optimizers = self.setup_optimizers()  # fresh optimizer for this frame's parameters
                n_iter = self.frame_iterations(frame)
                self._add_frame_decay(n_iter, iframe)
                kind = "I" if iframe else "P"
                it_task = bar.add_task(f"frame {frame} ({kind})", total=n_iter)
                t0 = time.perf_counter()
                loss_dict: Dict[str, Any] = {}
                metrics: Dict[str, Any] = {}
                for _ in range(n_iter):
                    if self.stop_training:
                        return
                    self.step = step
                    with self.train_lock:
                        self.pipeline.train()
                        lrs = {
                            name: float(opt.param_groups[0]["lr"]) for name, opt in self.optimizers.optimizers.items()
                        }
                        loss, loss_dict, metrics = self.train_iteration(step)
                        model.after_optimizer_step(self.optimizers.optimizers, lrs)  # e.g. a proximal step
                    self._update_viewer_state(step)
                    if step % self.config.logging.steps_per_log == 0:
                        writer.put_scalar(name="Train Loss", scalar=loss, step=step)
                        writer.put_dict(name="Train Loss Dict", scalar_dict=loss_dict, step=step)
                        writer.put_dict(name="Train Metrics Dict", scalar_dict=metrics, step=step)
                        writer.write_out_storage()
                    bar.update(it_task, advance=1)
                    step += 1
                train_s = time.perf_counter() - t0
                self.pipeline.eval()
                t1 = time.perf_counter()
                with torch.no_grad():
                    frame_stats = model.end_frame(frame, iframe)
                frame_stats.update(train_s=train_s, finalize_s=time.perf_counter() - t1, iterations=n_iter)
                frame_stats.update({k: float(v) for k, v in loss_dict.items()})
                frame_stats["train_psnr"] = float(metrics.get("psnr", float("nan")))
                stats.append(frame_stats)
                self.save_frame_checkpoint(step - 1, frame + 1, stats)
                bar.remove_task(it_task)
                bar.update(seq_task, advance=1)
                CONSOLE.print(_frame_line(frame_stats))
        self.training_state = "completed"
        model.on_train_end()


def _frame_line(s: Dict[str, Any]) -> str:
    kind = "I" if s.get("is_iframe") else "P"
    parts = [f"frame {s['frame']} ({kind})", f"train PSNR {s.get('train_psnr', float('nan')):.2f} dB"]
    if "bytes" in s:
        parts.append(format_kb(s["bytes"], 1))
        if s.get("estimated_frame_bytes"):
            parts.append(f"estimate {s['estimated_frame_bytes'] / s['bytes'] - 1:+.2%}")
    parts.append(f"{s['train_s']:.1f} s train, {s['finalize_s']:.2f} s finalize")
    return " | ".join(parts)
