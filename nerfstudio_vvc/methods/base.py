"""Base model for frame-sequential volumetric video methods.

A method implements a *frame state* (the tensors that define one frame, as the decoder sees it)
and three hooks the FrameSequentialTrainer calls:

    begin_frame(f, is_iframe)  -> set up trainable parameters for frame f
    (train iterations)         -> get_outputs / get_loss_dict on rays of frame f only
    end_frame(f, is_iframe)    -> finalize (encode) frame f, return its decoded state + stats

The decoded state goes to the FrameStore; the next frame reads its reference from there.
Playback (viewer, eval) never renders the float training parameters: codec methods (those that
define a `bitstream_path` property) hold a playback object (`playback.player.BitstreamSource`) and render
every frame through their decoder, `decoder.render_rays(player.get(frame), ...)`, with the file's
METHOD_CONFIG (the viewer with the decoder's playback renderer, eval with the exact one); methods
without a codec play their frame store; with neither, the viewer shows why and renders only the
background.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Tuple, Type

import torch
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.models.base_model import Model, ModelConfig
from torch import nn

from nerfstudio_vvc.components.frame_store import FrameStore
from nerfstudio_vvc.components.occupancy import OccupancyGrid, occupancy_cells
from nerfstudio_vvc.components.rendering import RenderSettings
from nerfstudio_vvc.playback.controls import PlaybackControls, default_view


class _NoDensity(nn.Module):
    """Field of "no frame": zero density everywhere."""

    def density(self, x01: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x01.shape[0], device=x01.device)

    def forward(self, x01: torch.Tensor, dirs: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.density(x01), torch.zeros(x01.shape[0], 3, device=x01.device)


@dataclass
class FrameModelConfig(ModelConfig):
    """Settings shared by the frame-sequential methods."""

    _target: Type = field(default_factory=lambda: FrameModel)
    enable_collider: bool = False
    """Rays are clipped to the scene box by our own renderer."""
    num_samples: int = 64
    """Uniform samples per ray inside the scene box (empty cells are skipped)."""
    contraction: float = 0.0
    """Unbounded scenes: > 0 contracts all space into the field's cube; 0 renders the scene box only."""
    num_outer_samples: int = 32
    """Samples per ray outside the scene box when `contraction` > 0."""
    outer_opacity: Literal["contracted", "world"] = "contracted"
    """Contracted scenes: measure step lengths outside the box in contracted or world space."""
    distortion_mult: float = 0.0
    """Contracted scenes: weight of mip-NeRF 360's distortion loss (0 = off)."""
    near_plane: Optional[float] = None
    """Near plane in scene units; None takes the dataparser's."""
    occupancy_resolution: int = 64
    """Cells per side of the scene box in the occupancy grid."""
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
        """Methods without a codec: field that renders a frame-store state (defaults to the training field's class)."""
        return self.make_field()

    def begin_frame(self, frame: int, is_iframe: bool) -> None:
        """Prepare trainable parameters for `frame`."""
        raise NotImplementedError

    def end_frame(self, frame: int, is_iframe: bool) -> Dict[str, Any]:
        """Finalize `frame`: store its decoded state and return stats for the log."""
        raise NotImplementedError

    def load_state_into(self, field_module: nn.Module, occupancy: OccupancyGrid, state: Dict[str, Any]) -> None:
        """Methods without a codec: install a frame-store state into a field + occupancy grid (for playback)."""
        raise NotImplementedError

    def frame_lr_scale(self, param_group: str) -> float:
        """Multiplier of `param_group`'s learning rate for the frame being trained (called after begin_frame)."""
        return 1.0

    def set_sequence(self, num_frames: int, gop_size: int, first_frame: int) -> None:
        """The trainer's sequence: frames in the data, GOP size (0: one GOP), the first frame this run trains (a GOP
        range run starts past 0)."""
        self.num_frames, self.gop_size, self.first_frame = int(num_frames), int(gop_size), int(first_frame)

    # ---- optional hooks of the frame-sequential trainer (defaults do nothing) -----------------------------------
    def after_optimizer_step(self, optimizers: Dict[str, torch.optim.Optimizer], lrs: Dict[str, float]) -> None:
        """After each optimizer step, with the learning rates it used (e.g. a proximal step)."""

    def on_resume(self, frames_done: int) -> None:
        """A run resumes with frames 0..frames_done-1 finished (reopen what the model writes)."""

    def on_train_end(self) -> None:
        """Every frame is trained (close what the model writes)."""

    # ---- the bitstream (codec methods) -------------------------------------------------------------------------
    writes_bitstream: bool = False
    """A codec method: the run's frames are its `bitstream_path` file, and playback shows that file only."""

    @property
    def bitstream_path(self) -> Optional[Path]:
        """The run's `.vvc` file (codec methods; None before the run folder is known)."""
        return None

    # ---- shared wiring ---------------------------------------------------------------------
    def populate_modules(self) -> None:
        super().populate_modules()
        self.num_frames = int(self.kwargs.get("metadata", {}).get("num_frames", 1))
        meta_near = self.kwargs.get("metadata", {}).get("near_plane", 0.0)
        self.near_plane = float(self.config.near_plane if self.config.near_plane is not None else meta_near or 0.0)
        self.register_buffer("aabb", self.scene_box.aabb.clone().float())
        self._aabb_values = self.aabb.tolist()  # the scene box, as render_settings() reports it
        self.register_buffer("background", torch.tensor(self.config.background_color, dtype=torch.float32))
        self.field = self.make_field()
        self.occupancy = OccupancyGrid(self.occupancy_cells, self.config.occupancy_threshold)
        # Playback copies: rendering another frame in the viewer must not touch training parameters.
        self._play_field: Optional[nn.Module] = None
        self._play_occupancy: Optional[OccupancyGrid] = None
        self._play_frame: int = -1
        self.current_frame: int = -1
        self.gop_size: int = 0
        """Frames per GOP (0: one GOP); `first_frame`: the first frame this run trains (both from `set_sequence`)."""
        self.first_frame: int = 0
        self.frame_step: int = 0
        self.freeze_occupancy = False  # a method sets it for frames whose occupancy must not be pruned
        self.store = FrameStore(self.config.frame_store_dir) if self.config.frame_store_dir else None
        # What playback renders from (BitstreamSource or FrameStore), opened on first use; see playback_source().
        self._playback_source: Optional[Any] = None
        self._playback_message = ""
        self._playback_opened_at = -1e9
        self._blank: Optional[Tuple[nn.Module, OccupancyGrid]] = None
        self.playback = PlaybackControls(
            self.num_frames, fps=self.data_fps, provider=self, initial_view=default_view(self.aabb)
        )

    def play_file(self, path: Path) -> Any:
        """Render every frame from the `.vvc` file `path` through its decoder (`ns-vvc eval`, rd-sweep): the file's
        METHOD_CONFIG decides how, never this run's config; the training frame is never shown. Returns the
        playback object (`BitstreamSource`)."""
        from nerfstudio_vvc.playback.player import BitstreamSource

        self._playback_source = BitstreamSource(path)
        self._playback_message = f"playing {self._playback_source.player.decoder.describe()} ({path})"
        self._play_frame = -1
        self.current_frame = -1
        return self._playback_source

    def playback_renderer(self) -> str:
        """'playback' (the decoder's fast renderer, `render_rays_playback`) when a viewer shows this model, else
        'exact' (`render_rays`: what eval and rd-sweep measure with)."""
        return "playback" if self.playback.viewer_attached else "exact"

    # ---- playback source ---------------------------------------------------------------------
    def playback_source(self) -> Optional[Any]:
        """The decoded frames playback renders: the run's bitstream (codec methods, decoded on demand
        through the registry), else the frame store (methods without a codec). None when there is
        nothing to play; `_playback_message` says why (shown in the viewer). Retried once a second."""
        if self._playback_source is not None or time.monotonic() - self._playback_opened_at < 1.0:
            return self._playback_source
        self._playback_opened_at = time.monotonic()
        if self.writes_bitstream:  # a codec method: play the file, nothing else
            path = self.bitstream_path
            if path is None or not Path(path).exists():
                self._playback_message = (f"NO BITSTREAM: {path or 'this run'} not found. Nothing to play "
                                          "(the training field is never shown as a frame).")
                return None
            from nerfstudio_vvc.codec.errors import BitstreamError  # the codec stays out of `ns-train --help`
            from nerfstudio_vvc.playback.player import BitstreamSource

            try:
                self._playback_source = BitstreamSource(path)
            except BitstreamError as exc:
                self._playback_message = f"ERROR: {exc}"
                return None
            self.playback.fps = self._playback_source.player.decoder.fps
            self._playback_message = f"playing {self._playback_source.player.decoder.describe()} ({path})"
        elif self.store is not None:
            self._playback_source = self.store
            self._playback_message = f"this method writes no bitstream: playing its frame states from {self.store.root}"
        else:
            self._playback_message = "no bitstream and no frame store: nothing to play"
        return self._playback_source

    def _plays_file(self, source: Any) -> bool:
        """The playback source is a `.vvc` file (a `BitstreamSource`: decoder renders), not a `FrameStore`."""
        return source is not self.store

    def playback_prepare(self, frame: int) -> Tuple[str, str]:
        """For the viewer controls (background thread): decode `frame`; (read-out line, status line)."""
        source = self.playback_source()
        last = self.num_frames - 1
        if source is None:
            return f"{frame}/{last} · nothing to show", self._playback_message
        if not source.has(frame):
            return f"{frame}/{last} · not in {source.root.name} (yet)", self._playback_message
        if self._plays_file(source):
            source.player.get(frame)
            return source.player.info(frame).line(last), self._playback_message
        return f"{frame}/{last} · stored state", self._playback_message

    def frame_of_time(self, t: float) -> int:
        """Frame index for a nerfstudio time in [0, 1] (the viewer's slider)."""
        return int(round(min(max(t, 0.0), 1.0) * max(self.num_frames - 1, 0)))

    @property
    def data_fps(self) -> float:
        """Frames per second of the training data (the dataparser's metadata; 30 when it has none): the header fps."""
        return float(self.kwargs.get("metadata", {}).get("fps", 30.0))

    @property
    def occupancy_cells(self) -> int:
        """Cells per side of the occupancy grid (what the bitstream's `occupancy_resolution` records)."""
        return occupancy_cells(self.config.occupancy_resolution, self.config.contraction, self.config.num_outer_samples)

    @property
    def world_opacity(self) -> bool:
        """`outer_opacity` == 'world' (what render_rays and the METHOD_CONFIG's `world_opacity` take)."""
        return self.config.outer_opacity == "world"

    def render_settings(self) -> RenderSettings:
        """The render settings this model trains with, as its decoder will read them from the METHOD_CONFIG."""
        c = self.config
        box = self._aabb_values  # (python floats: no device-to-host copy per training step)
        return RenderSettings(aabb=(tuple(box[0]), tuple(box[1])), near_plane=self.near_plane,
                              background=tuple(c.background_color), num_samples=c.num_samples,
                              occupancy_resolution=self.occupancy_cells, contraction=c.contraction,
                              num_outer_samples=c.num_outer_samples, world_opacity=self.world_opacity)

    def _use_distortion(self) -> bool:
        return self.config.contraction > 0 and self.config.num_outer_samples > 0 and self.config.distortion_mult > 0

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
        """Field and occupancy to render `frame` when not training it: the decoder's field of the decoded frame
        (`BitstreamSource.field_for`; renders go through the decoder, see get_outputs) or the frame-store state;
        the live training field only for the frame a running trainer has not coded yet; else blank."""
        source = self.playback_source()
        if source is None or not source.has(frame):
            if frame == self.current_frame:  # ns-train's viewer: preview of the frame being trained
                return self.field, self.occupancy
            return self._blank_modules()
        if self._plays_file(source):  # a bitstream: the decoder's own field, no state round trip
            return source.field_for(frame, self.aabb.device)
        if frame != self._play_frame:
            state = source.load(frame)
            if state is None:
                return self._blank_modules()
            if self._play_field is None:
                self._play_field = self.make_playback_field().to(self.aabb.device)
                self._play_occupancy = OccupancyGrid(self.occupancy_cells).to(self.aabb.device)
            assert self._play_occupancy is not None
            self.load_state_into(self._play_field, self._play_occupancy, state)
            self._play_frame = frame
        return self._play_field, self._play_occupancy  # type: ignore[return-value]

    def _blank_modules(self) -> Tuple[nn.Module, OccupancyGrid]:
        """Nothing to show: no density anywhere, so a render is the background only."""
        if self._blank is None:
            occ = OccupancyGrid(self.occupancy_cells).to(self.aabb.device)
            occ.binary.fill_(False)
            self._blank = (_NoDensity(), occ)
        return self._blank

    def get_outputs(self, ray_bundle: RayBundle) -> Dict[str, torch.Tensor]:
        origins = ray_bundle.origins.reshape(-1, 3)
        dirs = ray_bundle.directions.reshape(-1, 3)
        if self.training:
            self.train_step_hook()
            field_module, occ = self.field, self.occupancy
        else:
            t = float(ray_bundle.times.reshape(-1)[0]) if ray_bundle.times is not None else 0.0
            frame = self.frame_of_time(t)
            source = self.playback_source()
            if source is not None and self._plays_file(source) and source.has(frame):
                # a decoded frame of the file: through its decoder, with the file's METHOD_CONFIG
                if self.playback.viewer_attached:
                    self.playback.note_render_start()
                t0 = time.perf_counter()
                out = source.render_rays(frame, origins, dirs, renderer=self.playback_renderer())
                if self.playback.viewer_attached:
                    self.playback.note_render(origins.shape[0], time.perf_counter() - t0)
                shape = ray_bundle.origins.shape[:-1]
                return {k: v.reshape(*shape, -1) for k, v in out.items()}
            field_module, occ = self._playback_modules(frame)
        out = self.render_settings().render(field_module, origins, dirs, occ, jitter=self.training,
                                            distortion=self.training and self._use_distortion())
        shape = ray_bundle.origins.shape[:-1]
        return {k: v.reshape(*shape, -1) for k, v in out.items()}

    def get_metrics_dict(self, outputs, batch) -> Dict[str, torch.Tensor]:
        mse = torch.mean((outputs["rgb"] - batch["image"].to(outputs["rgb"].device)) ** 2)
        psnr = -10.0 * torch.log10(mse.detach().clamp_min(1e-10))
        return {"psnr": psnr, "samples_per_ray": outputs["num_samples"].mean()}

    def get_loss_dict(self, outputs, batch, metrics_dict=None) -> Dict[str, torch.Tensor]:
        loss = {"rgb_loss": torch.mean((outputs["rgb"] - batch["image"].to(outputs["rgb"].device)) ** 2)}
        if self.training and self._use_distortion() and "distortion" in outputs:
            loss["distortion_loss"] = self.config.distortion_mult * outputs["distortion"].mean()
        return loss

    def get_image_metrics_and_images(self, outputs, batch):
        from nerfstudio_vvc.eval.metrics import image_metrics

        gt = batch["image"].to(outputs["rgb"].device)[..., :3]
        metrics = image_metrics(outputs["rgb"].clamp(0, 1), gt, use_lpips=False)
        combined = torch.cat([gt, outputs["rgb"]], dim=1)
        return {k: v for k, v in metrics.items() if v is not None}, {"img": combined}

    def get_param_groups(self) -> Dict[str, List[nn.Parameter]]:
        raise NotImplementedError
