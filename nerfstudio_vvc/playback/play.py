"""`ns-vvc play FILE.vvc`: the nerfstudio viewer on a bitstream alone (no checkpoint, no run folder).

nerfstudio's own `Viewer` (viser) drives a tiny nerfstudio `Model` that renders the file's decoded frames
(`playback/file_model.py`): same camera controls, same control panel, plus the playback controls (frame slider,
Play/Pause, Loop, read-outs; `playback/controls.py`). This module holds only the command, so `ns-vvc --help` does
not import nerfstudio's models.
"""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import tyro


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
        import torch
        from nerfstudio.configs.base_config import LocalWriterConfig, LoggingConfig, ViewerConfig
        from nerfstudio.utils import writer
        from nerfstudio.utils.rich_utils import CONSOLE
        from nerfstudio.viewer.viewer import Viewer

        from nerfstudio_vvc.codec.errors import BitstreamError
        from nerfstudio_vvc.components.rendering import set_playback_workers
        from nerfstudio_vvc.playback.file_model import FilePlaybackPipeline, build_model, playback_only_panel

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
