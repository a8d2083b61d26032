"""Base model for frame-sequential volumetric video methods.

A method implements a *frame state* (the tensors that define one frame, as the decoder sees it)
and three hooks the FrameSequentialTrainer calls:

    begin_frame(f, is_iframe)  -> set up trainable parameters for frame f
    (train iterations)         -> get_outputs / get_loss_dict on rays of frame f only
    end_frame(f, is_iframe)    -> finalize (encode) frame f, return its decoded state + stats

The decoded state goes to the FrameStore; the next frame reads its reference from there and
playback (viewer, eval) renders from there, never from the float training parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Tuple, Type

import torch
from torch import nn

from nerfstudio.cameras.rays import RayBundle
from nerfstudio.models.base_model import Model, ModelConfig

from nerfstudio_vvc.components.frame_store import FrameStore
from nerfstudio_vvc.components.occupancy import OccupancyGrid
from nerfstudio_vvc.components.rendering import render_rays


@dataclass
class FrameModelConfig(ModelConfig):
    """Settings shared by the frame-sequential methods."""

    _target: Type = field(default_factory=lambda: FrameModel)
    enable_collider: bool = False
    """Rays are clipped to the scene box by our own renderer."""
    num_samples: int = 64
    """Uniform samples per ray inside the scene box (empty cells are skipped)."""
    contraction: float = 0.0
    """Unbounded scenes: > 0 contracts all space into the field's cube, the scene box keeping 1/(1 + contraction)
    of the resolution (see components/rendering.py); 0 renders the scene box only, background colour behind it."""
    num_outer_samples: int = 32
    """Samples per ray outside the scene box when `contraction` > 0."""
    near_plane: Optional[float] = None
    """Near plane in scene units; None takes the dataparser's."""
    occupancy_resolution: int = 64
    """Cells per side of the occupancy grid."""
    occupancy_update_every: int = 16
    """Training steps between occupancy grid updates."""
    occupancy_warmup: int = 64
    """Steps of a frame before the occupancy grid starts pruning."""
    occupancy_threshold: float = 0.01
    """Cells whose per-step opacity stays below this are skipped."""
    background_color: Tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Colour behind the scene box."""
    frame_store_dir: Optional[Path] = None
    """Where decoded frame states live; set by the trainer to <run>/frames."""
    eval_num_rays_per_chunk: int = 4096
    """Rays per chunk when rendering whole images."""


class FrameModel(Model):
    """Wires a per-frame field to the renderer; subclasses define the field and the codec."""

    config: FrameModelConfig

    # ---- to implement in subclasses ------------------------------------------------------
    def make_field(self) -> nn.Module:
        """Build a field module exposing `forward(x01) -> (density, rgb)`."""
        raise NotImplementedError

    def make_playback_field(self) -> nn.Module:
        """Field that renders a decoded frame state (defaults to the training field's class)."""
        return self.make_field()

    def begin_frame(self, frame: int, is_iframe: bool) -> None:
        """Prepare trainable parameters for `frame`."""
        raise NotImplementedError

    def end_frame(self, frame: int, is_iframe: bool) -> Dict[str, Any]:
        """Finalize `frame`: store its decoded state and return stats for the log."""
        raise NotImplementedError

    def load_state_into(self, field_module: nn.Module, occupancy: OccupancyGrid, state: Dict[str, Any]) -> None:
        """Install a decoded frame state into a field + occupancy grid (for playback)."""
        raise NotImplementedError

    def frame_lr_scale(self, param_group: str) -> float:
        """Multiplier of `param_group`'s learning rate for the frame being trained (called after begin_frame)."""
        return 1.0

    # ---- shared wiring ---------------------------------------------------------------------
    def populate_modules(self) -> None:
        super().populate_modules()
        self.num_frames = int(self.kwargs.get("metadata", {}).get("num_frames", 1))
        meta_near = self.kwargs.get("metadata", {}).get("near_plane", 0.0)
        self.near_plane = float(self.config.near_plane if self.config.near_plane is not None else meta_near or 0.0)
        self.register_buffer("aabb", self.scene_box.aabb.clone().float())
        self.register_buffer("background", torch.tensor(self.config.background_color, dtype=torch.float32))
        self.field = self.make_field()
        self.occupancy = OccupancyGrid(self.config.occupancy_resolution, self.config.occupancy_threshold)
        # Playback copies: rendering another frame in the viewer must not touch training parameters.
        self._play_field: Optional[nn.Module] = None
        self._play_occupancy: Optional[OccupancyGrid] = None
        self._play_frame: int = -1
        self.current_frame: int = -1
        self.frame_step: int = 0
        self.freeze_occupancy = False  # a method sets it for frames whose occupancy must not be pruned
        self.store = FrameStore(self.config.frame_store_dir) if self.config.frame_store_dir else None

    def set_frame_store(self, root: Path) -> None:
        """Render from the frames in `root` (e.g. a decoder's output): forget any cached playback frame and
        the training frame, so every frame comes from the new store."""
        self.store = FrameStore(root)
        self._play_frame = -1
        self.current_frame = -1

    def frame_of_time(self, t: float) -> int:
        """Frame index for a nerfstudio time in [0, 1] (the viewer's slider)."""
        return int(round(min(max(t, 0.0), 1.0) * max(self.num_frames - 1, 0)))

    def step_size(self) -> float:
        diag = float((self.aabb[1] - self.aabb[0]).norm())
        return diag / self.config.num_samples

    def get_training_callbacks(self, training_callback_attributes):
        return []

    def train_step_hook(self) -> None:
        """Called before every training batch: occupancy updates."""
        self.frame_step += 1
        c = self.config
        if self.freeze_occupancy:
            return
        if self.frame_step > c.occupancy_warmup and self.frame_step % c.occupancy_update_every == 0:
            self.occupancy.update(self.field.density, self.step_size())

    def _playback_modules(self, frame: int) -> Tuple[nn.Module, Optional[OccupancyGrid]]:
        """Field and occupancy to render `frame` when not training it."""
        if self.store is None or not self.store.has(frame):
            stored = self.store.frames() if self.store is not None else []
            if frame == self.current_frame or not stored:
                return self.field, self.occupancy
            frame = min(stored, key=lambda f: abs(f - frame))
        if frame != self._play_frame:
            state = self.store.load(frame)  # type: ignore[union-attr]
            if self._play_field is None:
                self._play_field = self.make_playback_field().to(self.aabb.device)
                self._play_occupancy = OccupancyGrid(self.config.occupancy_resolution).to(self.aabb.device)
            assert self._play_occupancy is not None
            self.load_state_into(self._play_field, self._play_occupancy, state)
            self._play_frame = frame
        return self._play_field, self._play_occupancy  # type: ignore[return-value]

    def get_outputs(self, ray_bundle: RayBundle) -> Dict[str, torch.Tensor]:
        origins = ray_bundle.origins.reshape(-1, 3)
        dirs = ray_bundle.directions.reshape(-1, 3)
        if self.training:
            self.train_step_hook()
            field_module, occ = self.field, self.occupancy
        else:
            t = float(ray_bundle.times.reshape(-1)[0]) if ray_bundle.times is not None else 0.0
            field_module, occ = self._playback_modules(self.frame_of_time(t))
        out = render_rays(
            field_module,
            origins,
            dirs,
            self.aabb,
            occ,
            self.config.num_samples,
            self.near_plane,
            self.background,
            jitter=self.training,
            contraction=self.config.contraction,
            num_outer_samples=self.config.num_outer_samples,
        )
        shape = ray_bundle.origins.shape[:-1]
        return {k: v.reshape(*shape, -1) for k, v in out.items()}

    def get_metrics_dict(self, outputs, batch) -> Dict[str, torch.Tensor]:
        mse = torch.mean((outputs["rgb"] - batch["image"].to(outputs["rgb"].device)) ** 2)
        return {"psnr": -10.0 * torch.log10(mse.detach().clamp_min(1e-10)), "samples_per_ray": outputs["num_samples"].mean()}

    def get_loss_dict(self, outputs, batch, metrics_dict=None) -> Dict[str, torch.Tensor]:
        return {"rgb_loss": torch.mean((outputs["rgb"] - batch["image"].to(outputs["rgb"].device)) ** 2)}

    def get_image_metrics_and_images(self, outputs, batch):
        from nerfstudio_vvc.eval.metrics import image_metrics

        gt = batch["image"].to(outputs["rgb"].device)[..., :3]
        metrics = image_metrics(outputs["rgb"].clamp(0, 1), gt, use_lpips=False)
        combined = torch.cat([gt, outputs["rgb"]], dim=1)
        return {k: v for k, v in metrics.items() if v is not None}, {"img": combined}

    def get_param_groups(self) -> Dict[str, List[nn.Parameter]]:
        raise NotImplementedError
