"""`ns-vvc play FILE.vvc`: the nerfstudio viewer on a bitstream alone (no checkpoint, no run folder).

The file carries everything rendering needs (METHOD_CONFIG: architecture, scene box, render
settings). A tiny nerfstudio `Model` (`FilePlaybackModel`) renders decoded frames through the
method's decoder (`MethodDecoder.render_rays`), and a pipeline-like object with an empty dataset
lets nerfstudio's own `Viewer` (viser) drive it: same camera controls, same control panel, plus the
playback controls (frame slider, Play/Pause, Loop, read-outs; `playback/controls.py`).
"""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List, Optional, Tuple, Type

import torch
import tyro
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.models.base_model import Model, ModelConfig
from torch import nn

from nerfstudio_vvc.components.rendering import set_playback_workers
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


@dataclass
class PlayBitstream:
    """Open the nerfstudio viewer on a .vvc file alone: frame slider, Play/Pause, Loop, per-frame read-out."""

    bitstream: tyro.conf.Positional[Path]
    """The .vvc file to play."""
    websocket_port: Optional[int] = None
    """Viewer port (default: the first free one from 7007)."""
    websocket_host: str = "0.0.0.0"
    """Host the viewer listens on."""
    device: str = "cpu"
    """Where decoded frames are rendered (cpu, cuda)."""
    max_res: Optional[int] = None
    """Largest side of the settled view (the viewer's "Max res"); default: the largest that renders in about a second
    at the measured render rate (256 to 1024 px)."""
    seconds: Optional[float] = None
    """Stop after this many seconds (default: run until interrupted)."""
    threads: int = 1
    """torch CPU threads (--device cpu; 0: torch's default). One: on a busy 2-core machine two threads rendered a
    decoded frame 5x slower than one (docs/evaluation.md, playback render rate)."""
    render_workers: int = 0
    """Threads a CPU render of a view is split over, one torch thread each (0: one per core; 1: no split). Each ray
    renders alone, so the picture is the same (to float rounding); two workers on 2 cores: 1.2-1.7x the view rate."""

    def main(self) -> None:
        from nerfstudio.configs.base_config import LocalWriterConfig, LoggingConfig, ViewerConfig
        from nerfstudio.utils import writer
        from nerfstudio.utils.rich_utils import CONSOLE
        from nerfstudio.viewer.viewer import Viewer

        from nerfstudio_vvc.codec.errors import BitstreamError

        if not self.bitstream.exists():
            raise SystemExit(f"{self.bitstream}: no such file")
        if self.render_workers < 0:
            raise SystemExit(f"--render-workers must be 0 (one per core) or more, got {self.render_workers}")
        if self.device == "cpu" and self.threads > 0:
            torch.set_num_threads(self.threads)
        set_playback_workers(self.render_workers)
        try:
            model = build_model(self.bitstream, self.device)
        except BitstreamError as exc:
            raise SystemExit(str(exc)) from None
        pipeline = FilePlaybackPipeline(model, self.bitstream.parent)
        log_dir = Path(tempfile.mkdtemp(prefix="ns-vvc-play-"))
        viewer = Viewer(
            ViewerConfig(websocket_port=self.websocket_port, websocket_host=self.websocket_host),
            log_filename=log_dir / "viewer_log_filename.txt",
            datapath=self.bitstream.parent,
            pipeline=pipeline,
            train_lock=threading.Lock(),
        )
        if self.max_res is not None:
            viewer.control_panel._max_res.value = self.max_res
            model.playback.auto_max_res = False
        playback_only_panel(viewer)
        writer.setup_local_writer(
            LoggingConfig(local_writer=LocalWriterConfig(enable=False)), max_iter=1, banner_messages=viewer.viewer_info
        )
        viewer.init_scene(train_dataset=[], train_state="completed")  # type: ignore[arg-type]
        viewer.update_scene(step=0)
        CONSOLE.print(f"{model.player.decoder.describe()}: " + "; ".join(viewer.viewer_info))
        t0 = time.monotonic()
        while self.seconds is None or time.monotonic() - t0 < self.seconds:
            time.sleep(0.05)
