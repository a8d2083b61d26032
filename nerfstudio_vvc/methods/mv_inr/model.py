"""vvc-mv-inr: implicit-explicit multi-view video codec (Zhu et al.), the nerfstudio side.

`ns-train vvc-mv-inr vvc-data --data <scene>` runs no ray-based training: the SequenceTrainer's stages (stages.py)
choose and HEVC-code the basic view, train the INR on whole images of every training camera and frame, prune,
fine-tune, train with quantisation in the loop and write ``<run>/sequence.vvc``, each stage resumable.

In the viewer (`ns-viewer --load-config <run>/config.yml`, or `ns-vvc play`), the decoded file is shown: the decoded
frame of the coded camera nearest to the viewer's position, named on screen (this method codes views, not a 3D scene).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Type

import torch
from torch import nn

from nerfstudio_vvc.methods.base import FrameModel, FrameModelConfig, _NoDensity
from nerfstudio_vvc.methods.mv_inr.spec import METHOD


@dataclass
class MVInrModelConfig(FrameModelConfig):
    """vvc-mv-inr settings: the network, the basic view's HEVC coding and the compression stages."""

    _target: Type = field(default_factory=lambda: MVInrModel)
    grid_channels: int = 20
    """c: channels of the time and view grids (paper RD points: 20, 30, 40, 60, 80 with QP 43 … 23)."""
    conv_channels: Tuple[int, ...] = (64, 48, 32, 24, 16)
    """Output channels of the five conv / PixelShuffle blocks."""
    qp: int = 43
    """Constant QP of the basic view's x265 coding (paired with grid_channels on the RD curve)."""
    hevc_preset: str = "veryfast"
    """x265 preset of the basic view."""
    basic_view_camera: Optional[int] = None
    """Camera id of the basic view; None: the medoid of the training cameras' viewing directions (basic_view.py)."""
    compensation: bool = True
    """Inter-view compensation from the decoded basic view (off: ablation)."""
    grid_embedding: bool = True
    """Per-view grid embeddings in the conv blocks (off: ablation)."""
    epochs: int = 300
    """Training epochs over all (view, frame) images of the non-basic views (paper: 300)."""
    batch_size: int = 1
    """Images per optimiser step."""
    lr: float = 5e-4
    """Peak learning rate (linear warm-up over warmup_fraction of the steps, then cosine to 0)."""
    warmup_fraction: float = 0.2
    """Share of each phase's steps spent warming the learning rate up."""
    prune_fraction: float = 0.6
    """Share of the conv weights REMOVED by global magnitude pruning (the authors' code: beta_p = 0.4 keeps 40 %)."""
    finetune_epochs: int = 30
    """Epochs of fine-tuning after pruning (pruned weights stay 0)."""
    qat_epochs: int = 30
    """Epochs of quantisation-aware training (8-bit tanh fake quantisation, pruned weights stay 0)."""
    finetune_lr: float = 2e-4
    """Peak learning rate of fine-tuning and QAT."""
    bits: int = 8
    """Quantisation bits of every network parameter."""
    seed: int = 0
    """Seed of the network initialisation and of every stage."""


class MVInrModel(FrameModel):
    config: MVInrModelConfig

    def populate_modules(self) -> None:
        super().populate_modules()
        self.frames_coded = self.num_frames  # the trainer sets it (max_frames)
        self.live_preview = False
        self.layout: Optional[Dict[str, Any]] = None  # set by the `basic` stage: cameras, sizes, basic view
        self.__dict__["inr"] = None  # the network lives in the stages' files, not in nerfstudio's checkpoint

    def make_field(self) -> nn.Module:
        return _NoDensity()

    def stages(self):
        from nerfstudio_vvc.methods.mv_inr.stages import STAGES

        return STAGES

    def build_inr(self):
        """The network for `layout` (seeded), on the model's device."""
        from nerfstudio_vvc.methods.mv_inr.network import MVINR

        assert self.layout is not None, "the basic stage sets the layout"
        c, lay = self.config, self.layout
        torch.manual_seed(c.seed)
        net = MVINR(
            self.frames_coded,
            len(lay["cam_ids"]) - 1,
            lay["height"],
            lay["width"],
            c.grid_channels,
            tuple(c.conv_channels),
            compensation=c.compensation,
            grid_embedding=c.grid_embedding,
        )
        self.__dict__["inr"] = net.to(self.aabb.device)
        return self.__dict__["inr"]

    # ------------------------------------------------------------------ bitstream / playback
    writes_bitstream = True

    @property
    def bitstream_path(self) -> Optional[Path]:
        if self.store is None:
            return None
        return self.store.root.parent / METHOD.bitstream

    def playback_prepare(self, frame: int) -> Tuple[str, str]:
        line, status = super().playback_prepare(frame)
        source = self._playback_source
        dec = getattr(getattr(source, "player", None), "decoder", None)
        if dec is not None and getattr(dec, "last_camera", None) is not None:
            cam = dec.config.cameras[dec.last_camera]
            kind = "basic view, HEVC" if dec.last_camera == dec.config.basic else "INR"
            status = (
                f"showing the decoded view of camera {cam.cam_id} ({kind}), "
                f"the coded camera nearest to the viewer · {status}"
            )
        return line, status

    def get_outputs(self, ray_bundle) -> Dict[str, torch.Tensor]:
        shape = ray_bundle.origins.shape[:-1]
        origins = ray_bundle.origins.reshape(-1, 3)
        dirs = ray_bundle.directions.reshape(-1, 3)
        if self.training:
            raise RuntimeError("vvc-mv-inr trains in its stages (whole images), not on ray batches")
        t = float(ray_bundle.times.reshape(-1)[0]) if ray_bundle.times is not None and ray_bundle.times.numel() else 0.0
        frame = self.frame_of_time(t)
        source = self.playback_source()
        if source is None or not source.has(frame):
            n = origins.shape[0]
            out = {
                "rgb": self.background.expand(n, 3).clone(),
                "accumulation": origins.new_zeros(n, 1),
                "depth": origins.new_zeros(n, 1),
            }
        else:
            if self.playback.viewer_attached:
                self.playback.note_render_start()
            t0 = time.perf_counter()
            out = source.render_rays(frame, origins, dirs, renderer=self.playback_renderer())
            if self.playback.viewer_attached:
                self.playback.note_render(origins.shape[0], time.perf_counter() - t0)
        return {k: v.reshape(*shape, -1) for k, v in out.items()}

    def get_param_groups(self) -> Dict[str, List[nn.Parameter]]:
        return {}

    def get_loss_dict(self, outputs, batch, metrics_dict=None) -> Dict[str, torch.Tensor]:
        return {}

    def begin_frame(self, frame: int, is_iframe: bool) -> None:
        raise RuntimeError("vvc-mv-inr codes the whole sequence at once: use its SequenceTrainer")

    def end_frame(self, frame: int, is_iframe: bool) -> Dict[str, Any]:
        raise RuntimeError("vvc-mv-inr codes the whole sequence at once: use its SequenceTrainer")
