"""The tiny nerfstudio `Model` that `ns-vvc play` drives nerfstudio's own `Viewer` with.

The file carries everything rendering needs (METHOD_CONFIG: architecture, scene box, render
settings). `FilePlaybackModel` renders decoded frames through the method's decoder
(`MethodDecoder.render_rays_playback`), and a pipeline-like object with an empty dataset lets the viewer (viser)
drive it: same camera controls, same control panel, plus the playback controls (frame slider, Play/Pause, Loop,
read-outs; `playback/controls.py`). Kept apart from the command (`play.py`) so that `ns-vvc --help` does not import
nerfstudio's models and cameras.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List, Tuple, Type

import torch
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.models.base_model import Model, ModelConfig
from torch import nn

from nerfstudio_vvc.playback.controls import PlaybackControls, default_view
from nerfstudio_vvc.playback.player import FramePlayer


@dataclass
class FilePlaybackModelConfig(ModelConfig):
    _target: Type = field(default_factory=lambda: FilePlaybackModel)
    enable_collider: bool = False
    eval_num_rays_per_chunk: int = 16384  # fewer calls per view (each has a fixed cost)


class FilePlaybackModel(Model):
    """Renders the decoded frames of one `.vvc` file (the player is passed as `player=` keyword)."""

    config: FilePlaybackModelConfig

    def populate_modules(self) -> None:
        super().populate_modules()
        self.player: FramePlayer = self.kwargs["player"]
        frames = self.player.frames()
        self.num_frames = (frames[-1] + 1) if frames else 1
        decoder = self.player.decoder
        self.playback = PlaybackControls(self.num_frames, fps=decoder.fps, provider=self,
                                         initial_view=default_view(self.scene_box.aabb))

    def playback_prepare(self, frame: int) -> Tuple[str, str]:
        last = self.num_frames - 1
        status = f"playing {self.player.decoder.describe()} ({self.player.decoder.path})"
        if not self.player.has(frame):
            return f"{frame}/{last} · not in the file", status
        self.player.get(frame)
        return self.player.info(frame).line(last), status

    def get_param_groups(self) -> Dict[str, List[nn.Parameter]]:
        return {}

    def get_loss_dict(self, outputs, batch, metrics_dict=None) -> Dict[str, torch.Tensor]:
        return {}

    def get_outputs(self, ray_bundle: RayBundle) -> Dict[str, torch.Tensor]:
        origins = ray_bundle.origins.reshape(-1, 3)
        dirs = ray_bundle.directions.reshape(-1, 3)
        t = float(ray_bundle.times.reshape(-1)[0]) if ray_bundle.times is not None else 0.0
        frame = self.playback.frame_of_time(t)
        shape = ray_bundle.origins.shape[:-1]
        if self.player.has(frame):
            self.playback.note_render_start()
            decoded = self.player.get(frame)
            t0 = time.perf_counter()
            out = self.player.decoder.render_rays_playback(decoded, origins, dirs)
            self.playback.note_render(origins.shape[0], time.perf_counter() - t0)
        else:  # a frame the file does not hold: nothing is drawn
            n = origins.shape[0]
            out = {
                "rgb": torch.zeros(n, 3, device=origins.device),
                "accumulation": torch.zeros(n, 1, device=origins.device),
                "depth": torch.zeros(n, 1, device=origins.device),
            }
        return {k: v.reshape(*shape, -1) for k, v in out.items()}


class FilePlaybackPipeline(nn.Module):
    """Just what nerfstudio's Viewer reads from a pipeline: `model` and a time-aware, empty `datamanager`."""

    def __init__(self, model: FilePlaybackModel, datapath: Path) -> None:
        super().__init__()
        self.model = model
        self.datamanager = SimpleNamespace(
            includes_time=True, train_dataset=[], eval_dataset=None, get_datapath=lambda: datapath
        )


def build_model(bitstream: Path, device: str = "cpu", cache_size: int = 8) -> FilePlaybackModel:
    player = FramePlayer.open(bitstream, cache_size=cache_size)
    box = player.decoder.header.scene_box
    aabb = torch.tensor([list(box[0]), list(box[1])], dtype=torch.float32)
    model = FilePlaybackModel(FilePlaybackModelConfig(), scene_box=SceneBox(aabb=aabb), num_train_data=0, player=player)
    return model.to(device).eval()


def playback_only_panel(viewer) -> None:
    """A file is only played: no "Pause/Resume Training", "Train Speed" / "Train Util", training-camera buttons or
    training "Step" read-out (the stats line shows the render resolution only)."""
    for name in ("pause_train", "resume_train", "hide_images", "show_images"):
        handle = getattr(viewer, name, None)
        if handle is not None:
            handle.visible = False
    for name in ("_train_speed", "_train_util"):
        element = getattr(viewer.control_panel, name, None)
        if element is not None and element.gui_handle is not None:
            element.set_hidden(True)

    def stats(step, res) -> str:
        if res is None:
            res = viewer.stats_markdown.content.rpartition("Resolution: ")[2].strip()
        return f"Resolution: {res}"

    viewer.make_stats_markdown = stats
    viewer.stats_markdown.content = stats(None, None)
