"""vvc-rate-aware: rate-aware compression of DiF grids (Zhang et al., ACM MM 2024).

Per frame the trainable state is the grids (I-frame) or residuals on the *decoded* previous grids
(P-frame), one learnable quantization step per grid, and the spatial-temporal context entropy model;
the rendering MLP is trained on the I-frame and shared by its GOP. Loss (per batch):

    L = MSE(C, Ĉ) + λ (L_rate + α L_reg),  L_rate = mean bits per grid voxel,  L_reg = mean |R_t|

At the end of each frame `end_frame` freezes the entropy model to integers, codes the frame into the
run's container and installs the *decoded* result as the next frame's reference and the playback state.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Type

import torch
from torch import nn

from nerfstudio_vvc.codec.bitstream.container import (
    ChunkType,
    ContainerWriter,
    SequenceHeader,
    frame_record_overhead,
)
from nerfstudio_vvc.codec.context import GridContextModel
from nerfstudio_vvc.codec.quant import quantize_ste, symbols_ste
from nerfstudio_vvc.codec.weights import compress_state_dict
from nerfstudio_vvc.components.occupancy import OccupancyGrid
from nerfstudio_vvc.methods.base import FrameModel, FrameModelConfig
from nerfstudio_vvc.methods.rate_aware.codec import (
    CODEC,
    GRID_HEADER_BYTES,
    METHOD_ID,
    CodedFrame,
    DecodedFrame,
    StreamConfig,
    float32_steps,
    reconstruct,
)
from nerfstudio_vvc.methods.rate_aware.field import (
    DiFFrameField,
    DiFSpec,
    dif_features,
    init_grids,
    make_mlp,
)
from nerfstudio_vvc.methods.rate_aware.spec import METHOD, extra_bitstream_name


@dataclass
class RateAwareModelConfig(FrameModelConfig):
    """Rate-aware DiF volumetric video codec."""

    _target: Type = field(default_factory=lambda: RateAwareModel)
    basis_dims: Tuple[int, ...] = (4, 4, 4, 2, 2, 2)
    """Channels of the 6 basis grids (factor-fields NeRF setting)."""
    basis_resolutions: Tuple[int, ...] = (32, 51, 70, 89, 108, 128)
    """Side of each basis grid."""
    basis_freqs: Tuple[float, ...] = (2.0, 3.2, 4.4, 5.6, 6.8, 8.0)
    """Periodic coordinate frequency of each basis grid."""
    coeff_resolution: int = 32
    """Side of the coefficient grid."""
    hidden_dim: int = 64
    """Width of the rendering MLP."""
    geo_dim: int = 15
    """Geometry code from the density MLP to the view-dependent colour MLP (0: one view-independent MLP)."""
    lambda_rate: float = 1e-3
    """λ: rate-distortion trade-off (paper RD points 7e-4, 1e-3, 2e-3, 5e-3)."""
    alpha_reg: float = 10.0
    """α: weight of the L1 regulariser on P-frame residuals."""
    rate_aware: bool = True
    """False gives the paper's Baseline: train without rate loss, quantize + entropy code afterwards."""
    adaptive_quant: bool = True
    """Learn one quantization step per grid (False: fixed `init_step`, the 'w/o adaptive' ablation)."""
    init_step: float = 2.0**-6
    """Initial (or fixed) quantization step."""
    pframe_grid_lr_scale: float = 1.0
    """Grid learning rate of P-frames relative to I-frames."""
    reg_proximal: bool = True
    """Apply the L1 on P-frame residuals as a proximal step after each optimizer step, not as a loss."""
    pframe_steps_from_reference: bool = True
    """P-frames start their learned quantization steps from the reference frame's steps instead of `init_step`."""
    pframe_occupancy_grow: bool = True
    """P-frames re-grow and prune their occupancy grid; False freezes the reference's, grown by one cell."""
    rate_every: int = 4
    """Evaluate the rate term every k-th step only, weighted by k."""
    tv_mult: float = 0.0
    """Weight of a total-variation prior on I-frame grids (0 = off; Panoptic recipe: 3e-2)."""
    tv_pframes: bool = False
    """Apply `tv_mult` in P-frames too (to reference plus residual)."""
    entropy_hidden: int = 16
    """Hidden width of the context entropy model."""
    posthoc_entropy_steps: int = 200
    """Adam steps fitting the entropy model on the final symbols before coding."""
    mlp_bits: int = 10
    """Bits per rendering-MLP weight (per-tensor step)."""
    seed: int = 0
    """Seed of the I-frame grid initialisation."""
    extra_step_exponents: Tuple[int, ...] = ()
    """Baseline only: also code every frame at fixed steps 2^-k into `sequence.q<k>.vvc`."""


def grid_tv(g: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between neighbouring voxels of a [C, D, H, W] grid, over its three axes."""
    return sum((g.narrow(a, 1, g.shape[a] - 1) - g.narrow(a, 0, g.shape[a] - 1)).pow(2).mean() for a in (1, 2, 3)) / 3.0


class TrainableDiF(nn.Module):
    """Grids of the frame being trained: Ĝ = base + q·round(δ/q) (STE); base = 0 for I-frames."""

    def __init__(self, spec: DiFSpec, init_step: float) -> None:
        super().__init__()
        self.spec = spec
        self.delta = nn.ParameterList([nn.Parameter(torch.zeros(s)) for s in spec.grid_shapes()])
        self.log2_steps = nn.Parameter(torch.full((len(self.delta),), math.log2(init_step)))
        self.mlp = make_mlp(spec)
        self.base: Optional[List[torch.Tensor]] = None
        self.quantize = True

    def steps(self) -> torch.Tensor:
        return torch.exp2(self.log2_steps)

    def symbols(self) -> List[torch.Tensor]:
        """Integer symbols round(δ/q) as floats with straight-through gradients."""
        q = self.steps()
        return [symbols_ste(d, q[i]) for i, d in enumerate(self.delta)]

    def grids(self) -> List[torch.Tensor]:
        if not self.quantize:
            deltas = list(self.delta)
        else:
            q = self.steps()
            deltas = [quantize_ste(d, q[i]) for i, d in enumerate(self.delta)]
        if self.base is None:
            return deltas
        return [b + d for b, d in zip(self.base, deltas)]

    def density(self, x01: torch.Tensor) -> torch.Tensor:
        return self.mlp.density(dif_features(self.spec, self.grids(), x01))

    def forward(self, x01: torch.Tensor, dirs: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.mlp(dif_features(self.spec, self.grids(), x01), dirs)


class RateAwareModel(FrameModel):
    config: RateAwareModelConfig

    def populate_modules(self) -> None:
        c = self.config
        if not (c.tv_mult >= 0.0 and math.isfinite(c.tv_mult)):
            raise SystemExit(f"--pipeline.model.tv-mult must be a finite number >= 0 (got {c.tv_mult})")
        self.spec = DiFSpec(
            tuple(c.basis_dims),
            tuple(c.basis_resolutions),
            tuple(c.basis_freqs),
            c.coeff_resolution,
            c.hidden_dim,
            c.geo_dim,
        )
        super().populate_modules()
        self.entropy = self._fresh_entropy()
        self.reference: Optional[DecodedFrame] = None  # decode buffer: last decoded frame
        self.writer: Optional[ContainerWriter] = None
        self.extra_writers: Dict[int, ContainerWriter] = {}
        self.frame_rate_bits: torch.Tensor = torch.tensor(float("nan"))  # last estimate, kept on the device (no sync)
        self._ref_syms: Optional[Tuple[DecodedFrame, List[torch.Tensor]]] = None  # reference symbols on the device
        self.is_iframe = True
        self._pframe_keep: Optional[torch.Tensor] = None  # P-frame: cells the occupancy never drops below

    def _fresh_entropy(self) -> GridContextModel:
        return GridContextModel(hidden=self.config.entropy_hidden, num_channels=self.spec.feature_dim)

    def make_field(self) -> nn.Module:
        return TrainableDiF(self.spec, self.config.init_step)

    # ------------------------------------------------------------------ bitstream
    writes_bitstream = True

    @property
    def bitstream_path(self) -> Optional[Path]:
        if self.store is None:
            return None
        return self.store.root.parent / METHOD.bitstream

    def stream_config(self) -> StreamConfig:
        """What the METHOD_CONFIG says: the DiF architecture, the render settings and the method's own keys."""
        c = self.config
        render = dict(self.render_settings().to_json(), lambda_rate=c.lambda_rate, rate_aware=c.rate_aware,
                      adaptive_quant=c.adaptive_quant)
        return StreamConfig(self.spec, render)

    def method_config_bytes(self) -> bytes:
        return self.stream_config().to_bytes()

    def extra_bitstream_path(self, exponent: int) -> Optional[Path]:
        """Where the Baseline stream coded at step 2^-exponent goes."""
        if self.store is None:
            return None
        return self.store.root.parent / extra_bitstream_name(exponent)

    def _open_one(self, path: Path, frames_done: int) -> ContainerWriter:
        done_here = frames_done - self.first_frame  # a GOP-range run starts at first_frame
        if done_here > 0 and path.exists():
            # drop frames past the last finished checkpoint (killed between bitstream and checkpoint)
            writer = ContainerWriter.open_append(path, keep_frames=done_here)
            if writer.num_frames_written < done_here:
                writer.close()
                raise SystemExit(f"{path}: holds fewer frames than the checkpoint; remove the run to start over")
            return writer
        box = self.aabb.cpu().tolist()
        header = SequenceHeader(
            method_id=METHOD_ID,
            num_frames=self.num_frames,
            fps=self.data_fps,
            gop_size=self.gop_size,
            num_cameras=0,
            scene_box=(tuple(box[0]), tuple(box[1])),
            extra={},
        )
        return ContainerWriter(path, header, global_chunks=CODEC.encode_globals(self.stream_config()))

    def _open_writer(self, frames_done: int) -> None:
        path = self.bitstream_path
        if path is None:
            return
        self.writer = self._open_one(path, frames_done)
        for k in self.config.extra_step_exponents:
            extra = self.extra_bitstream_path(k)
            assert extra is not None
            self.extra_writers[k] = self._open_one(extra, frames_done)

    def on_resume(self, frames_done: int) -> None:
        if frames_done > 0 and self.store is not None:
            state = self.store.load(frames_done - 1)
            self.reference = DecodedFrame.from_state(state) if state is not None else None
        self._open_writer(frames_done)

    def on_train_end(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        for w in self.extra_writers.values():
            w.close()
        self.extra_writers = {}

    # ------------------------------------------------------------------ frames
    def begin_frame(self, frame: int, is_iframe: bool) -> None:
        c = self.config
        if self.writer is None:
            self._open_writer(frame)
        self.current_frame = frame
        self.frame_step = 0
        f: TrainableDiF = self.field  # type: ignore[assignment]
        f.quantize = c.rate_aware
        device = self.aabb.device
        with torch.no_grad():
            f.log2_steps.fill_(math.log2(c.init_step))
            if c.pframe_steps_from_reference and not is_iframe and self.reference is not None and c.adaptive_quant:
                f.log2_steps.copy_(torch.log2(torch.tensor(self.reference.steps, dtype=torch.float32)).to(device))
            if is_iframe or self.reference is None:
                gen = torch.Generator().manual_seed(c.seed + frame)
                for p, g in zip(f.delta, init_grids(self.spec, gen)):
                    p.copy_(g.to(device))
                f.base = None
                f.mlp.load_state_dict(make_mlp(self.spec).state_dict())
                # A GOP starts from a fresh entropy model too: nothing trained on another GOP leaks into it.
                self.entropy.load_state_dict(self._fresh_entropy().state_dict())
                self.occupancy.reset()
            else:
                for p in f.delta:
                    p.zero_()
                f.base = [g.to(device) for g in self.reference.grids]
                f.mlp.load_state_dict(self.reference.mlp_state)
                # Content may move into cells that were empty at the reference: the P-frame trains on the
                # reference occupancy grown by one cell, unpruned; end_frame recomputes it from the decoded field.
                self.occupancy.set_binary(self.reference.occupancy)
                self.occupancy.dilate()
                self._pframe_keep = self.occupancy.binary.clone()
                if c.pframe_occupancy_grow:
                    self.occupancy.reset()  # pruned after the warm-up like an I-frame, never below _pframe_keep
                else:
                    self.frame_step = c.occupancy_warmup
        f.mlp.requires_grad_(is_iframe or self.reference is None)
        self.is_iframe = is_iframe or self.reference is None
        self.freeze_occupancy = not self.is_iframe and not c.pframe_occupancy_grow

    def train_step_hook(self) -> None:
        super().train_step_hook()
        if not self.is_iframe and self.config.pframe_occupancy_grow and self._pframe_keep is not None:
            self.occupancy.binary.logical_or_(self._pframe_keep)

    def rate_bits_per_voxel(self) -> torch.Tensor:
        """Mean estimated bits per voxel of the current frame's grid symbols (all grids in one batched pass of the
        context model, `GridContextModel.total_bits`; equal to the per-grid sum to float rounding)."""
        f: TrainableDiF = self.field  # type: ignore[assignment]
        syms = f.symbols()
        bits = self.entropy.total_bits(syms, self._reference_symbols(syms[0].device))
        return bits / sum(s.numel() for s in syms)

    def _reference_symbols(self, device: torch.device) -> List[Optional[torch.Tensor]]:
        """The reference frame's symbols as floats on `device` (P-frames; Nones for I-frames), copied once per
        frame rather than host-to-device on every rate step."""
        n = len(self.spec.grid_shapes())
        if self.reference is None or self.is_iframe:
            return [None] * n
        if self._ref_syms is None or self._ref_syms[0] is not self.reference or self._ref_syms[1][0].device != device:
            self._ref_syms = (self.reference, [p.to(device).float() for p in self.reference.symbols])
        return list(self._ref_syms[1])

    def residual_l1(self) -> torch.Tensor:
        """L_reg: mean |R_t| over all residual voxels (every voxel weighs the same, as in the paper)."""
        f: TrainableDiF = self.field  # type: ignore[assignment]
        return sum(d.abs().sum() for d in f.delta) / sum(d.numel() for d in f.delta)  # type: ignore[return-value]

    def get_loss_dict(self, outputs, batch, metrics_dict=None) -> Dict[str, torch.Tensor]:
        loss = super().get_loss_dict(outputs, batch, metrics_dict)
        c = self.config
        if c.rate_aware and self.training:
            k = max(int(c.rate_every), 1)
            if self.frame_step % k == 0:
                rate = self.rate_bits_per_voxel()
                loss["rate_loss"] = k * c.lambda_rate * rate
                self.frame_rate_bits = rate.detach()
            if not self.is_iframe and not c.reg_proximal:
                loss["reg_loss"] = c.lambda_rate * c.alpha_reg * self.residual_l1()
        if c.tv_mult > 0 and self.training and (self.is_iframe or c.tv_pframes):
            f: TrainableDiF = self.field  # type: ignore[assignment]
            grids = list(f.delta) if f.base is None else [b + d for b, d in zip(f.base, f.delta)]
            loss["tv_loss"] = c.tv_mult * sum(grid_tv(g) for g in grids) / len(grids)
        return loss

    def after_optimizer_step(self, optimizers: Dict[str, torch.optim.Optimizer], lrs: Dict[str, float]) -> None:
        """Proximal L1 step on P-frame residuals (`reg_proximal`); `lrs`: the learning rate each group just used."""
        c = self.config
        opt = optimizers.get("grids")
        if (
            self.is_iframe
            or not (c.reg_proximal and c.rate_aware)
            or opt is None
            or not isinstance(opt, torch.optim.Adam)
        ):
            return
        f: TrainableDiF = self.field  # type: ignore[assignment]
        group = opt.param_groups[0]
        beta2, eps = group["betas"][1], group["eps"]
        g_l1 = c.lambda_rate * c.alpha_reg / sum(d.numel() for d in f.delta)  # |d L_reg / d voxel|
        with torch.no_grad():
            for d in f.delta:
                state = opt.state.get(d)
                if not state or "exp_avg_sq" not in state:
                    continue
                t = float(state["step"])
                denom = (state["exp_avg_sq"] / (1.0 - beta2**t)).sqrt_().add_(eps)
                tau = (lrs["grids"] * g_l1) / denom
                d.copy_(torch.sign(d) * torch.clamp(d.abs() - tau, min=0.0))

    def frame_lr_scale(self, param_group: str) -> float:
        return self.config.pframe_grid_lr_scale if (param_group == "grids" and not self.is_iframe) else 1.0

    def get_param_groups(self) -> Dict[str, List[nn.Parameter]]:
        f: TrainableDiF = self.field  # type: ignore[assignment]
        groups = {"grids": list(f.delta), "mlp": list(f.mlp.parameters()), "entropy": list(self.entropy.parameters())}
        if self.config.adaptive_quant and self.config.rate_aware:
            groups["quant"] = [f.log2_steps]  # no empty groups: torch optimizers refuse them
        return groups

    def _fit_entropy(
        self, syms: List[torch.Tensor], prev: List[Optional[torch.Tensor]], entropy: Optional[GridContextModel] = None
    ) -> None:
        """Fit the context model to the final symbols (all of Baseline's entropy modelling happens here)."""
        entropy = entropy if entropy is not None else self.entropy
        opt = torch.optim.Adam(entropy.parameters(), lr=1e-2)
        n = sum(s.numel() for s in syms)
        for _ in range(self.config.posthoc_entropy_steps):
            opt.zero_grad()
            with torch.enable_grad():
                bits = entropy.total_bits(syms, prev) / n
                bits.backward()
            opt.step()

    def end_frame(self, frame: int, is_iframe: bool) -> Dict[str, Any]:
        c = self.config
        f: TrainableDiF = self.field  # type: ignore[assignment]
        steps = float32_steps(f.steps().detach().cpu().tolist()) if c.rate_aware else [c.init_step] * len(f.delta)
        syms = self._coding_symbols(steps)
        ref = self.reference if not self.is_iframe else None
        prev = [p for p in ref.symbols] if ref is not None else [None] * len(syms)
        # The entropy model lives on the model's device; symbols are kept on the CPU as the decoder has them.
        syms_dev, prev_dev = self._on_device(syms), self._on_device(prev)
        if not c.rate_aware or c.posthoc_entropy_steps > 0:
            self._fit_entropy(syms_dev, prev_dev)
        int_model = self.entropy.freeze()
        est_bits = float(self.entropy.total_bits(syms_dev, prev_dev))
        # MLP: coded on I-frames; the decoder (and the encoder from here on) uses the dequantized copy.
        mlp_payload = None
        if self.is_iframe:
            mlp_payload, mlp_state = compress_state_dict(f.mlp.state_dict(), bits=c.mlp_bits)
            mlp_state = dict(mlp_state)
        else:
            assert ref is not None
            mlp_state = ref.mlp_state
        if c.extra_step_exponents:
            if not self.is_iframe:
                raise ValueError("extra_step_exponents needs every frame to be an I-frame: pass --gop-size 1")
            # The extra streams draw random numbers (entropy-model fit, occupancy jitter); fork the generator
            # so the main stream and the training of later frames do not depend on how many extras there are.
            cuda = [self.aabb.device.index or 0] if self.aabb.is_cuda else []
            with torch.random.fork_rng(devices=cuda):
                for k in c.extra_step_exponents:
                    self._code_extra(frame, k, mlp_payload, mlp_state)
        # Occupancy from the quantized field the decoder will have.
        self._update_occupancy(self.occupancy, ref, syms, steps, mlp_state)
        chunks, decoded = CODEC.encode_frame_and_reference(
            self.stream_config(), CodedFrame(frame, syms, steps, int_model, self.occupancy.binary, mlp_payload,
                                             mlp_state), ref)
        nbytes = None
        if self.writer is not None:
            nbytes = self.writer.write_frame(frame, self.is_iframe, chunks)
        self.reference = decoded
        if self.store is not None:
            self.store.save(frame, decoded.to_state())
        payload = sum(len(p) for _, p in chunks)
        # Whole-frame estimate: the context model's estimate for the grid symbols plus everything else the frame
        # record carries (side information and framing, whose sizes are known before writing).
        side = sum(len(p) if k != ChunkType.GRID else GRID_HEADER_BYTES for k, p in chunks)
        est_frame = est_bits / 8.0 + side + frame_record_overhead(len(chunks))
        return {
            "frame": frame,
            "is_iframe": self.is_iframe,
            "bytes": nbytes if nbytes is not None else payload,
            "payload_bytes": payload,
            "estimated_grid_bytes": est_bits / 8.0,
            "estimated_frame_bytes": est_frame,
            "chunk_bytes": decoded.chunk_bytes,
            "steps": steps,
        }

    def _update_occupancy(
        self,
        occupancy: OccupancyGrid,
        ref: Optional[DecodedFrame],
        syms: List[torch.Tensor],
        steps: List[float],
        mlp_state: Dict,
    ) -> None:
        """Occupancy from the quantized field the decoder will rebuild (not the float training field)."""
        play = DiFFrameField(self.spec).to(self.aabb.device)
        play.mlp.load_state_dict(mlp_state)
        play.set_grids(reconstruct(ref.grids if ref is not None else None, syms, steps))
        occupancy.recompute(play.density, self.step_size())

    def _code_extra(self, frame: int, exponent: int, mlp_payload: Optional[bytes], mlp_state: Dict) -> None:
        """Baseline curve: code this I-frame's float grids at the fixed step 2^-exponent into its own stream."""
        writer = self.extra_writers.get(exponent)
        if writer is None:
            return
        steps = float32_steps([2.0**-exponent]) * len(self.field.delta)  # type: ignore[union-attr]
        syms = self._coding_symbols(steps)
        entropy = copy.deepcopy(self.entropy)
        self._fit_entropy(self._on_device(syms), [None] * len(syms), entropy)
        int_model = entropy.freeze()
        occupancy = copy.deepcopy(self.occupancy)
        self._update_occupancy(occupancy, None, syms, steps, mlp_state)
        chunks = CODEC.encode_frame(self.stream_config(),
                                    CodedFrame(frame, syms, steps, int_model, occupancy.binary, mlp_payload, mlp_state),
                                    None)
        writer.write_frame(frame, True, chunks)

    def _on_device(self, tensors: List[Optional[torch.Tensor]]) -> List[Optional[torch.Tensor]]:
        """Float copies on the model's device (None stays None)."""
        return [None if t is None else t.to(self.aabb.device, torch.float32) for t in tensors]

    def _coding_symbols(self, steps: List[float]) -> List[torch.Tensor]:
        """Integer symbols round(G / q) of the trained grids, in float32 on the CPU as the decoder rebuilds them."""
        f: TrainableDiF = self.field  # type: ignore[assignment]
        return [
            torch.round(d.detach().cpu().float() / torch.tensor(q, dtype=torch.float32)).long()
            for d, q in zip(f.delta, steps)
        ]
