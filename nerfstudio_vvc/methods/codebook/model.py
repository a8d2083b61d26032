"""vvc-codebook: dynamic-codebook HexPlane volumetric video (Guo et al., NeurIPS 2023), training side.

The whole sequence is one six-plane field (field.py), trained on rays of all cameras and times with

    L = MSE(C, Ĉ) + tv_mult · TV(planes, along space) + time_smooth_mult · ‖∂²_t time planes‖²
        + l1_time_mult · |1 − time planes|

then compressed by the stages of stages.py (importance → codebook → finetune → quantize → dynamic →
code), which the SequenceTrainer runs after training, each resumable. The renderer reads a field at
one time per call, so a batch is rendered per distinct time (the datamanager draws a batch from
``frames_per_batch`` frames).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Tuple, Type

import torch
from torch import nn

from nerfstudio_vvc.methods.base import FrameModel, FrameModelConfig
from nerfstudio_vvc.methods.codebook.field import PLANES, HexField, HexHead, HexSpec, gather_planes, init_planes
from nerfstudio_vvc.methods.codebook.spec import METHOD


@dataclass
class CodebookModelConfig(FrameModelConfig):
    """vvc-codebook settings: the field, its regularisers and the compression stages' knobs."""

    _target: Type = field(default_factory=lambda: CodebookModel)
    density_resolution: int = 64
    """Spatial cells per side of the density planes."""
    appearance_resolutions: Tuple[int, ...] = (32, 64)
    """Spatial cells per side of each appearance scale."""
    time_resolution: int = 16
    """Cells along t of the temporal planes."""
    density_dim: int = 16
    """Channels of the density planes."""
    appearance_dim: int = 48
    """Channels of the appearance planes (per scale)."""
    hidden_dim: int = 64
    """Hidden width of the density and colour MLPs."""
    tv_mult: float = 1e-4
    """TV along the spatial axes of every plane."""
    time_smooth_mult: float = 1e-5
    """Second-derivative smoothness along t of the temporal planes (weaker than space, as in HexPlane)."""
    l1_time_mult: float = 1e-4
    """L1 of (1 − temporal planes): motion only where needed (K-Planes)."""
    seed: int = 0
    """Seed of the plane initialisation and of every compression stage."""
    # ---- compression stages
    importance_batches: int = 16
    """Ray batches (of the training batch size, all cameras and times) the importance is accumulated over."""
    merge_fraction: float = 1e-5
    """Codes whose cumulative importance (lowest first) stays within this fraction become the zero code."""
    keep_fraction: float = 0.3
    """Most important codes kept as they are (the paper's top 30 %)."""
    keep_by: Literal["count", "importance"] = "count"
    """`count`: keep_fraction of the codes by number; `importance`: the top codes holding that importance."""
    codebook_size: int = 1024
    """k: cluster centres per group (paper: 4096 NHR, 16384 DyNeRF)."""
    kmeans_iters: int = 30
    """EMA k-means iterations."""
    finetune_iterations: int = 200
    """Training steps of the codebooks and MLP after clustering (index planes fixed)."""
    finetune_lr: float = 1e-2
    """Adam learning rate of the codebook fine-tuning (the MLP uses a tenth)."""
    codebook_bits: int = 8
    """Uniform quantisation of the codebooks: bits per value (per-channel step from the peak)."""
    mlp_bits: int = 8
    """Quantisation of the MLP weights (codec/weights.py)."""
    fragment_size: int = 10
    """Frames per time fragment (paper: 100 NHR / 60 DyNeRF)."""
    dynamic_density_codes: int = 64
    """Dynamic density codes per fragment (paper: 5000)."""
    dynamic_appearance_codes: int = 32
    """Dynamic appearance codes per fragment (paper: 1000)."""
    dynamic_accum_iterations: int = 10
    """Forward/backward passes per fragment whose gradients select the dynamic codes (no step)."""
    dynamic_iterations: int = 50
    """Training steps of a fragment's dynamic codes."""
    dynamic_lr: float = 1e-2
    """Adam learning rate of the dynamic codes."""
    write_ablations: bool = True
    """Also write the float planes + MLP (`planes_float32.bin`) and `sequence-nodyn.vvc` (no dynamic codes)."""

    def hex_spec(self) -> HexSpec:
        return HexSpec(
            self.density_resolution,
            tuple(self.appearance_resolutions),
            self.time_resolution,
            self.density_dim,
            self.appearance_dim,
            self.hidden_dim,
        )


class HexPlanes(nn.Module):
    """The trainable state: float planes (training) or codebooks + index planes (compression stages)."""

    def __init__(self, spec: HexSpec, seed: int = 0) -> None:
        super().__init__()
        self.spec = spec
        gen = torch.Generator().manual_seed(seed)
        self.planes = nn.ParameterList([nn.Parameter(p) for p in init_planes(spec, gen)])
        self.head = HexHead(spec)
        # Set by the compression stages (not in the state dict: their shapes are data-dependent).
        self.codebooks: Optional[Dict[str, torch.Tensor]] = None
        self.indices: Optional[List[torch.Tensor]] = None
        self.dynamic: Optional[Dict[str, Tuple[torch.Tensor, torch.Tensor]]] = None  # group -> (ids, values)

    def current_codebooks(self) -> Dict[str, torch.Tensor]:
        assert self.codebooks is not None
        if not self.dynamic:
            return dict(self.codebooks)
        out = {}
        for g, cb in self.codebooks.items():
            ids, values = self.dynamic[g]
            out[g] = cb.index_put((ids,), values) if len(ids) else cb
        return out

    def current_planes(self) -> List[torch.Tensor]:
        if self.codebooks is None:
            return list(self.planes)
        assert self.indices is not None
        return gather_planes(self.spec, self.current_codebooks(), self.indices)

    def at_time(self, t: Optional[float], planes: Optional[List[torch.Tensor]] = None) -> HexField:
        return HexField(self.spec, self.head, self.current_planes() if planes is None else planes, t)

    def density(self, x01: torch.Tensor) -> torch.Tensor:
        """Density at a random time per point (occupancy over all times)."""
        return self.at_time(None).density(x01)

    def forward(self, x01: torch.Tensor, dirs: Optional[torch.Tensor] = None):
        return self.at_time(None)(x01, dirs)


class CodebookModel(FrameModel):
    config: CodebookModelConfig

    def populate_modules(self) -> None:
        self.spec = self.config.hex_spec()
        super().populate_modules()
        self.frames_coded = self.num_frames  # the trainer sets it (max_frames)
        self.live_preview = False  # the SequenceTrainer sets it: its viewer shows the live field until the file exists

    def stages(self):
        """The compression stages run after training, in order (stages.py)."""
        from nerfstudio_vvc.methods.codebook.stages import STAGES

        return STAGES

    def make_field(self) -> nn.Module:
        return HexPlanes(self.spec, self.config.seed)

    @property
    def hex(self) -> HexPlanes:
        return self.field  # type: ignore[return-value]

    # ------------------------------------------------------------------ bitstream / playback
    writes_bitstream = True

    @property
    def bitstream_path(self) -> Optional[Path]:
        if self.store is None:
            return None
        return self.store.root.parent / METHOD.bitstream

    @property
    def run_dir(self) -> Optional[Path]:
        return None if self.store is None else self.store.root.parent

    # ------------------------------------------------------------------ rendering
    def render_grouped(
        self, origins: torch.Tensor, dirs: torch.Tensor, times: torch.Tensor, jitter: bool, make_field=None
    ) -> Dict[str, torch.Tensor]:
        """Render rays [R, 3] with times [R]: one renderer call per distinct time (planes gathered once)."""
        planes = self.hex.current_planes()
        make_field = make_field or (lambda t: self.hex.at_time(t, planes))
        n = origins.shape[0]
        out = {
            "rgb": origins.new_zeros(n, 3),
            "accumulation": origins.new_zeros(n, 1),
            "depth": origins.new_zeros(n, 1),
            "num_samples": origins.new_zeros(n, 1),
        }
        distortion = jitter and self.training and self._use_distortion()
        if distortion:
            out["distortion"] = origins.new_zeros(n, 1)
        settings = self.render_settings()
        for t in torch.unique(times).tolist():
            m = times == t
            o = settings.render(
                make_field(float(t)), origins[m], dirs[m], self.occupancy, jitter=jitter, distortion=distortion
            )
            for k in out:
                out[k] = out[k].index_put((torch.nonzero(m).flatten(),), o[k])
        return out

    def get_outputs(self, ray_bundle) -> Dict[str, torch.Tensor]:
        shape = ray_bundle.origins.shape[:-1]
        times = (
            ray_bundle.times.reshape(-1)
            if ray_bundle.times is not None
            else torch.zeros(shape.numel(), device=self.aabb.device)
        )
        if not self.training:
            source = self.playback_source()
            frame = self.frame_of_time(float(times[0]) if len(times) else 0.0)
            if not (self.live_preview and (source is None or not source.has(frame))):
                return super().get_outputs(ray_bundle)  # playback: the decoded file, at the frame of the bundle's time
            # ns-train's viewer before the file exists: the live field (float planes or the current codebooks)
            with torch.no_grad():
                out = self.render_grouped(
                    ray_bundle.origins.reshape(-1, 3),
                    ray_bundle.directions.reshape(-1, 3),
                    torch.full_like(times, float(times[0]) if len(times) else 0.0),
                    jitter=False,
                )
            return {k: v.reshape(*shape, -1) for k, v in out.items()}
        self.train_step_hook()
        out = self.render_grouped(
            ray_bundle.origins.reshape(-1, 3), ray_bundle.directions.reshape(-1, 3), times, jitter=True
        )
        return {k: v.reshape(*shape, -1) for k, v in out.items()}

    # ------------------------------------------------------------------ losses
    def regularisers(self) -> Dict[str, torch.Tensor]:
        c = self.config
        tv, smooth, l1 = 0.0, 0.0, 0.0
        for i, p in enumerate(self.hex.planes):
            a, b = PLANES[i % 6]
            dw = (p[:, :, 1:] - p[:, :, :-1]).pow(2).mean()  # along axis a (never time)
            dh = p[:, 1:, :] - p[:, :-1, :]
            if b == 3:  # temporal plane: space along W, time along H
                tv = tv + dw
                smooth = smooth + (dh[:, 1:, :] - dh[:, :-1, :]).pow(2).mean() if p.shape[1] > 2 else smooth
                l1 = l1 + (1.0 - p).abs().mean()
            else:
                tv = tv + dw + dh.pow(2).mean()
        return {
            "tv_loss": c.tv_mult * tv,
            "time_smooth_loss": c.time_smooth_mult * smooth,
            "l1_time_loss": c.l1_time_mult * l1,
        }  # type: ignore[dict-item]

    def get_loss_dict(self, outputs, batch, metrics_dict=None) -> Dict[str, torch.Tensor]:
        loss = super().get_loss_dict(outputs, batch, metrics_dict)
        if self.training and self.hex.codebooks is None:
            loss.update({k: v for k, v in self.regularisers().items() if isinstance(v, torch.Tensor)})
        return loss

    def get_param_groups(self) -> Dict[str, List[nn.Parameter]]:
        return {"planes": list(self.hex.planes), "mlp": list(self.hex.head.parameters())}

    def train_step_hook(self) -> None:
        """Occupancy over all times: the grid keeps cells any time of the sequence fills (EMA of max)."""
        super().train_step_hook()

    # ------------------------------------------------------------------ frame-sequential hooks (unused)
    def begin_frame(self, frame: int, is_iframe: bool) -> None:
        raise RuntimeError("vvc-codebook trains the whole sequence at once: use its SequenceTrainer")

    def end_frame(self, frame: int, is_iframe: bool) -> Dict[str, Any]:
        raise RuntimeError("vvc-codebook trains the whole sequence at once: use its SequenceTrainer")
