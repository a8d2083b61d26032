"""Parallel autoregressive context model for integer 3D grids ``[C, D, H, W]``.

Decoding order: the 8 parity phases of a 2x2x2 checkerboard, phase ``k = 4*(d%2) + 2*(h%2) + w%2``.
All voxels of one phase are coded in one batched step with one constriction call.

Context of a voxel (one function, ``phase_context``, used for training *and* coding):
  * channel 0: the 3x3x3 neighbourhood of the same channel in the current grid, with voxels of
    phase >= k zeroed (not decoded yet; the zero pattern is implied by k);
  * channel 1: the 3x3x3 neighbourhood in ``prev`` (previous frame / reference symbols), zeros
    when there is none;
  * learned biases standing in for one-hot inputs: per phase, per channel (optional), and a
    "no reference" flag.
A 2-layer MLP (54 -> hidden -> 2) maps the context to (mean, log2 scale) of a Laplace.  Layer 1 is
a stride-2 3x3x3 convolution, which evaluates the MLP at exactly the phase-k voxels.

Float path (``GridContextModel.forward``) estimates bits for training.  ``freeze()`` converts to
``IntegerGridContextModel``: int8/int16 weights with power-of-two shifts, integer arithmetic,
integer mean/scale indices -> exact float64 parameters for the range coder.
"""

from __future__ import annotations

import io
import math
import struct
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from nerfstudio_vvc.codec.coder import CoderSession, choose_range, pack_range, unpack_range
from nerfstudio_vvc.codec.constants import (
    B2_MAX,
    BIAS1_SUM_MAX,
    INPUT_MAX,
    INPUT_MIN,
    S1_MAX,
    S2_MAX,
    SCALE_LOG2_MAX,
    SCALE_LOG2_MIN,
    SHIFT_MIN,
    W1_MAX,
    W2_MAX,
)
from nerfstudio_vvc.codec.errors import CorruptChunkError, ModelNotFrozenError, TruncatedError
from nerfstudio_vvc.codec.fixedpoint import (
    choose_shift,
    mean_index,
    quantize_fixed,
    scale_index,
    to_coder_params,
)
from nerfstudio_vvc.codec.rate import laplace_bits

NUM_PHASES = 8
CTX_IN = 2  # conv input channels: masked current grid, previous grid


def phase_offsets(k: int) -> tuple[int, int, int]:
    return (k >> 2) & 1, (k >> 1) & 1, k & 1


def phase_map(shape: Sequence[int], device: torch.device | str = "cpu") -> torch.Tensor:
    """[D, H, W] int tensor with each voxel's decoding phase."""
    d, h, w = (torch.arange(n, device=device) % 2 for n in shape)
    return d[:, None, None] * 4 + h[None, :, None] * 2 + w[None, None, :]


def phase_slice(k: int) -> tuple[slice, ...]:
    a, b, c = phase_offsets(k)
    return (slice(None), slice(a, None, 2), slice(b, None, 2), slice(c, None, 2))


def phase_context(
    grid: torch.Tensor, prev: Optional[torch.Tensor], k: int, pmap: torch.Tensor, buf: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Conv input whose stride-2 3x3x3 windows are the contexts of phase-k voxels.

    ``grid``/``prev``: [C, D, H, W] float (integer-valued).  Returns [C, 2, D', H', W'].
    Shared by training (float) and coding (exact integers), so estimated and coded rates agree.
    ``buf`` (coding): a padded [C, 2, D+2, H+2, W+2] buffer maintained by the coder that holds
    exactly this context already (channel 0: clamped symbols of phases < k, written after each
    phase by ``fill_context_buffer``; channel 1: clamped ``prev``).  It equals the masked tensor
    built below (tested) and avoids a full-grid pass per phase.
    """
    a, b, c = phase_offsets(k)
    if buf is None:
        avail = (pmap < k).to(grid.dtype)
        cur = grid.clamp(INPUT_MIN, INPUT_MAX) * avail
        ref = torch.zeros_like(cur) if prev is None else prev.to(grid.dtype).clamp(INPUT_MIN, INPUT_MAX)
        buf = F.pad(torch.stack([cur, ref], dim=1), (1, 1, 1, 1, 1, 1))
    return buf[:, :, a:, b:, c:]


def make_context_buffer(
    shape: Sequence[int], prev: Optional[torch.Tensor], device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Zero padded context buffer with the clamped reference in channel 1 (see phase_context)."""
    c, d, h, w = shape
    buf = torch.zeros(c, 2, d + 2, h + 2, w + 2, dtype=torch.float32, device=device)
    if prev is not None:
        buf[:, 1, 1:-1, 1:-1, 1:-1] = prev.to(device, torch.float32).clamp(INPUT_MIN, INPUT_MAX)
    return buf


def fill_context_buffer(buf: torch.Tensor, k: int, values: torch.Tensor) -> None:
    """Make the (coded) phase-k symbols available as context for later phases."""
    a, b, c = phase_offsets(k)
    inner = buf[:, 0, 1:-1, 1:-1, 1:-1]
    inner[:, a::2, b::2, c::2] = values.clamp(INPUT_MIN, INPUT_MAX).to(buf.dtype)


def _phase_windows(x: torch.Tensor, win: Sequence[int], per_phase: bool) -> torch.Tensor:
    """[8*C, 1, *win]: for each phase k (major) and channel, the window of padded ``x`` at ``phase_offsets(k)``
    whose stride-2 3x3x3 convolution gives phase k's contexts. ``x``: [8, C, Dp, Hp, Wp] with copy k for phase k
    (``per_phase``) or [C, Dp, Hp, Wp], the same for every phase. One strided view and one copy."""
    st = x.stride()
    if per_phase:  # offset of (a, b, c) = copy 4a + 2b + c, shifted by (a, b, c) voxels
        c = x.shape[1]
        strides = (4 * st[0] + st[2], 2 * st[0] + st[3], st[0] + st[4], st[1], st[2], st[3], st[4])
    else:
        c = x.shape[0]
        strides = (st[1], st[2], st[3], st[0], st[1], st[2], st[3])
    return x.as_strided((2, 2, 2, c, *win), strides).reshape(NUM_PHASES * c, 1, *win)


def _phase_nonempty(shape: Sequence[int], k: int) -> bool:
    return all(n > o for n, o in zip(shape, phase_offsets(k)))


def _floor_shift(x: torch.Tensor, k: int) -> torch.Tensor:
    """floor(x / 2**k) for exact-integer float64 tensors (multiplies for k <= 0)."""
    return x * float(1 << -k) if k <= 0 else torch.floor_(x * (1.0 / (1 << k)))


class GridContextModel(torch.nn.Module):
    """Float (trainable) context model; ``freeze()`` gives the integer model used for coding."""

    def __init__(self, hidden: int = 16, num_channels: Optional[int] = None) -> None:
        super().__init__()
        self.hidden = hidden
        self.num_channels = num_channels
        self.w1 = torch.nn.Parameter(torch.randn(hidden, CTX_IN, 3, 3, 3) * (0.5 / math.sqrt(54)))
        self.b_phase = torch.nn.Parameter(torch.zeros(NUM_PHASES, hidden))
        self.b_noref = torch.nn.Parameter(torch.zeros(hidden))
        self.b_chan = torch.nn.Parameter(torch.zeros(num_channels, hidden)) if num_channels else None
        self.w2 = torch.nn.Parameter(torch.randn(2, hidden) * (0.5 / math.sqrt(hidden)))
        self.b2 = torch.nn.Parameter(torch.tensor([0.0, 1.0]))
        self._frozen: Optional[IntegerGridContextModel] = None

    def _phase_params(self, x: torch.Tensor, k: int, has_ref: bool) -> tuple[torch.Tensor, torch.Tensor]:
        pre = F.conv3d(x, self.w1.to(x), stride=2) + self.b_phase[k].to(x)[None, :, None, None, None]
        if not has_ref:
            pre = pre + self.b_noref.to(x)[None, :, None, None, None]
        if self.b_chan is not None:
            pre = pre + self.b_chan.to(x)[: x.shape[0], :, None, None, None]
        h = torch.relu(pre)
        out = torch.einsum("cjxyz,oj->coxyz", h, self.w2.to(x)) + self.b2.to(x)[None, :, None, None, None]
        log2s = out[:, 1].clamp(SCALE_LOG2_MIN, SCALE_LOG2_MAX)
        return out[:, 0], torch.exp2(log2s)

    def voxel_bits(self, grid_hat: torch.Tensor, prev_hat: Optional[torch.Tensor] = None) -> list[torch.Tensor]:
        """Bits per voxel, one tensor per phase (same layout as the coder)."""
        self._check_channels(grid_hat)
        pmap = phase_map(grid_hat.shape[1:], grid_hat.device)
        bits = []
        for k in range(NUM_PHASES):
            if not _phase_nonempty(grid_hat.shape[1:], k):
                continue
            x = phase_context(grid_hat, prev_hat, k, pmap)
            mean, scale = self._phase_params(x, k, prev_hat is not None)
            bits.append(laplace_bits(grid_hat[phase_slice(k)], mean, scale))
        return bits

    def forward(self, grid_hat: torch.Tensor, prev_hat: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Differentiable total bits of ``grid_hat`` (integer-valued floats, e.g. from STE)."""
        return sum(b.sum() for b in self.voxel_bits(grid_hat, prev_hat))  # type: ignore[return-value]

    def total_bits(
        self, grids: Sequence[torch.Tensor], prevs: Optional[Sequence[Optional[torch.Tensor]]] = None
    ) -> torch.Tensor:
        """Differentiable total bits of several grids, ``sum(self(g, p) for g, p in zip(grids, prevs))``, batched.

        The training estimate of a whole frame in a few large operations instead of one small set per grid and
        phase (issue 26): all 8 phases of a grid share one stride-2 convolution over 8 causally masked copies of
        its context (every symbol is known while training, so the phases need not wait for each other), and the
        second layer, the Laplace bits and the sum run once over the voxels of all grids. Same arithmetic as
        ``forward`` (equal to float rounding, tested); the integer coding path does not use it."""
        grids = list(grids)
        prevs = [None] * len(grids) if prevs is None else list(prevs)
        if len(prevs) != len(grids):
            raise ValueError(f"{len(grids)} grids but {len(prevs)} references")
        for g, p in zip(grids, prevs):
            self._check_channels(g)
            if p is not None and tuple(p.shape) != tuple(g.shape):
                raise ValueError(f"prev shape {tuple(p.shape)} != grid shape {tuple(g.shape)}")
        if not grids:
            return self.w2.new_zeros(())
        x0 = grids[0]
        w1, w2, b2 = self.w1.to(x0), self.w2.to(x0)[:, :, None, None, None], self.b2.to(x0)
        # first-layer bias per (phase, channel, hidden), with and without a reference
        cmax = max(g.shape[0] for g in grids)
        bias = self.b_phase.to(x0)[:, None, :]
        if self.b_chan is not None:
            bias = bias + self.b_chan.to(x0)[None, :cmax, :]
        else:
            bias = bias.expand(-1, cmax, -1)
        bias_noref = bias + self.b_noref.to(x0)[None, None, :] if any(p is None for p in prevs) else None
        outs, targets, valids = [], [], []
        for g, p in zip(grids, prevs):
            plan = self._plan(tuple(g.shape), g.device, g.dtype)
            c = g.shape[0]
            # 8 copies of the padded grid, copy k holding the phases < k (what phase k's context sees)
            cur = F.pad(g.clamp(INPUT_MIN, INPUT_MAX), plan["pad"])[None] * plan["avail"]  # [8, C, Dp, Hp, Wp]
            pre = F.conv3d(_phase_windows(cur, plan["win"], True), w1[:, :1], stride=2)  # [8C, hidden, D2, H2, W2]
            if p is not None:  # the reference is the same for every phase: 8 windows of one copy
                ref = F.pad(p.to(g).clamp(INPUT_MIN, INPUT_MAX), plan["pad"])
                pre = pre + F.conv3d(_phase_windows(ref, plan["win"], False), w1[:, 1:], stride=2)
            b = (bias if p is not None else bias_noref)[:, :c].reshape(NUM_PHASES * c, self.hidden, 1, 1, 1)
            out = F.conv3d(torch.relu(pre + b), w2, b2)  # [8C, 2, D2, H2, W2]
            outs.append(out.reshape(NUM_PHASES, c, 2, -1).permute(2, 1, 0, 3).reshape(2, -1))  # [2, C*8*S]
            gt = F.pad(g, plan["even"]) if any(plan["even"]) else g
            d2, h2, w2_ = plan["win"][0] // 2, plan["win"][1] // 2, plan["win"][2] // 2
            targets.append(gt.reshape(c, d2, 2, h2, 2, w2_, 2).permute(0, 2, 4, 6, 1, 3, 5).reshape(-1))
            valids.append(plan["valid"].expand(c, -1).reshape(-1) if plan["valid"] is not None else None)
        out = torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]
        target = torch.cat(targets) if len(targets) > 1 else targets[0]
        bits = laplace_bits(target, out[0], torch.exp2(out[1].clamp(SCALE_LOG2_MIN, SCALE_LOG2_MAX)))
        if any(v is not None for v in valids):
            valid = torch.cat([v if v is not None else torch.ones_like(t) for v, t in zip(valids, targets)])
            bits = bits * valid
        return bits.sum()

    def _plan(self, shape: tuple, device: torch.device, dtype: torch.dtype) -> dict:
        """Constant masks and paddings of ``total_bits`` for one grid shape (cached per shape, device, dtype)."""
        cache = self.__dict__.setdefault("_plans", {})
        key = (shape[1:], str(device), dtype)
        if key not in cache:
            d, h, w = shape[1:]
            pmap = phase_map((d, h, w), device)
            pad = (1, 1 + w % 2, 1, 1 + h % 2, 1, 1 + d % 2)
            avail = F.pad(torch.stack([(pmap < k) for k in range(NUM_PHASES)]).to(dtype), pad)[:, None]
            even = (0, w % 2, 0, h % 2, 0, d % 2)
            win = (d + d % 2 + 1, h + h % 2 + 1, w + w % 2 + 1)  # window of a stride-2 conv giving ceil(n/2) outputs
            valid = None
            if any(even):  # odd sides: the last output of an odd phase lies outside the grid
                ones = F.pad(torch.ones(1, d, h, w, device=device, dtype=dtype), even)
                valid = ones.reshape(1, win[0] // 2, 2, win[1] // 2, 2, win[2] // 2, 2)
                valid = valid.permute(0, 2, 4, 6, 1, 3, 5).reshape(1, -1)
            cache[key] = {"avail": avail, "pad": pad, "win": win,
                          "even": even, "valid": valid}
        return cache[key]

    def _check_channels(self, grid: torch.Tensor) -> None:
        if grid.dim() != 4:
            raise ValueError(f"grid must be [C, D, H, W], got {tuple(grid.shape)}")
        if self.num_channels is not None and grid.shape[0] > self.num_channels:
            raise ValueError(f"grid has {grid.shape[0]} channels, model was built for {self.num_channels}")

    # -- integer model
    def to_integer(self) -> "IntegerGridContextModel":
        return IntegerGridContextModel.from_float(self)

    def freeze(self) -> "IntegerGridContextModel":
        """Build (and cache) the integer model used by compress/decompress."""
        self._frozen = self.to_integer()
        return self._frozen

    def _int(self) -> "IntegerGridContextModel":
        if self._frozen is None:
            raise ModelNotFrozenError("GridContextModel must be frozen (freeze()/to_integer()) before coding")
        return self._frozen

    def compress(self, grid_sym: torch.Tensor, prev_sym: Optional[torch.Tensor] = None) -> bytes:
        return self._int().compress(grid_sym, prev_sym)

    def decompress(self, data: bytes, shape: Sequence[int], prev_sym: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self._int().decompress(data, shape, prev_sym)

    def weights_to_bytes(self) -> bytes:
        return self._int().weights_to_bytes()

    @staticmethod
    def from_bytes(data: bytes) -> "IntegerGridContextModel":
        """Rebuild the integer (coding) model from ``weights_to_bytes()`` output."""
        return IntegerGridContextModel.from_bytes(data)


_MODEL_HDR = struct.Struct("<4sBBHbb")  # magic, version, hidden, num_channels, s1, s2
_MODEL_MAGIC = b"GCM1"


class IntegerGridContextModel:
    """Frozen integer model: coding parameters are bit-exact on any device / thread count.

    Fixed point: W1, B_* carry ``s1`` fractional bits, so the hidden layer is an integer at scale
    2**s1 without any shift; W2 carries ``s2``; outputs and B2 carry ``s1 + s2``.
    """

    def __init__(self, w1, s1, b_phase, b_noref, b_chan, w2, s2, b2) -> None:
        w1, b_phase, b_noref, w2, b2 = (t.cpu() for t in (w1, b_phase, b_noref, w2, b2))
        b_chan = None if b_chan is None else b_chan.cpu()
        self.w1 = w1.to(torch.int64)  # [hid, 2, 3, 3, 3], |.| <= 127
        self.s1, self.s2 = int(s1), int(s2)
        self.b_phase = b_phase.to(torch.int64)  # [8, hid]
        self.b_noref = b_noref.to(torch.int64)  # [hid]
        self.b_chan = None if b_chan is None else b_chan.to(torch.int64)  # [C, hid]
        self.w2 = w2.to(torch.int64)  # [2, hid], |.| <= 32767
        self.b2 = b2.to(torch.int64)  # [2]
        self.hidden = self.w1.shape[0]
        self._w2_f64 = self.w2.to(torch.float64)
        self._w1_cache: dict = {}

    @staticmethod
    def _bias_bound(b_phase: torch.Tensor, b_noref: torch.Tensor, b_chan: Optional[torch.Tensor]) -> float:
        def m(t):
            return float(t.detach().double().abs().max()) if t is not None and t.numel() else 0.0

        return m(b_phase) + m(b_noref) + m(b_chan)

    @classmethod
    def from_float(cls, m: GridContextModel) -> "IntegerGridContextModel":
        bb = torch.tensor([cls._bias_bound(m.b_phase, m.b_noref, m.b_chan)], dtype=torch.float64)
        s1 = min(choose_shift(m.w1, W1_MAX, SHIFT_MIN, S1_MAX), choose_shift(bb, BIAS1_SUM_MAX - 4, SHIFT_MIN, S1_MAX))
        s2 = choose_shift(m.w2, W2_MAX, SHIFT_MIN, S2_MAX)
        lim = BIAS1_SUM_MAX
        return cls(
            quantize_fixed(m.w1, s1, W1_MAX),
            s1,
            quantize_fixed(m.b_phase, s1, lim),
            quantize_fixed(m.b_noref, s1, lim),
            None if m.b_chan is None else quantize_fixed(m.b_chan, s1, lim),
            quantize_fixed(m.w2, s2, W2_MAX),
            s2,
            quantize_fixed(m.b2, s1 + s2, B2_MAX),
        )

    def _grouped_w1(self, c: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        key = (c, str(device), dtype)
        if key not in self._w1_cache:
            self._w1_cache[key] = self.w1.to(device, dtype).repeat(c, 1, 1, 1, 1)
        return self._w1_cache[key]

    # -- parameters of one phase (integer arithmetic)
    def phase_indices(self, x: torch.Tensor, k: int, has_ref: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Integer (mean index in 1/16, scale-table index) for the phase-k voxels of context ``x``."""
        c = x.shape[0]
        bias = self.b_phase[k][None, :]
        if not has_ref:
            bias = bias + self.b_noref[None, :]
        if self.b_chan is not None:
            bias = bias + self.b_chan[:c]
        bias = bias.expand(c, -1).reshape(-1)  # [c * hidden]
        # one grouped conv over all channels: per-(channel, hidden) bias is added inside the conv
        xg = x.reshape(1, c * CTX_IN, *x.shape[2:])
        if x.is_cuda:  # float64 + round is exact for any conv algorithm (errors << 0.5)
            pre = F.conv3d(
                xg.double(),
                self._grouped_w1(c, x.device, torch.float64),
                bias.to(x.device, torch.float64),
                stride=2,
                groups=c,
            )
            pre = torch.round_(pre)
        else:  # float32 is exact here: every partial sum < 2**24 (constants.py)
            pre = F.conv3d(xg.float(), self._grouped_w1(c, x.device, torch.float32), bias.float(), stride=2, groups=c)
        spatial = pre.shape[2:]
        h = torch.relu_(pre).reshape(c, self.hidden, -1).double()
        # |h| < 2**24, |w2| < 2**15, hidden <= 64 -> sums < 2**45: exact in float64 matmul
        out = torch.matmul(self._w2_f64.to(h.device), h).to(torch.int64) + self.b2.to(h.device)[None, :, None]
        fb = self.s1 + self.s2
        return mean_index(out[:, 0], fb).reshape(c, *spatial), scale_index(out[:, 1], fb).reshape(c, *spatial)

    # -- shared encode/decode path
    def _code(
        self, session: CoderSession, work: torch.Tensor, prev: Optional[torch.Tensor], lo: int, hi: int, esc: bool
    ) -> torch.Tensor:
        encode = session.mode == "encode"
        if self.b_chan is not None and work.shape[0] > self.b_chan.shape[0]:
            raise ValueError(f"grid has {work.shape[0]} channels, model has {self.b_chan.shape[0]}")
        shape = work.shape[1:]
        pmap = phase_map(shape, work.device)
        buf = make_context_buffer(work.shape, prev, work.device)
        for k in range(NUM_PHASES):
            if not _phase_nonempty(shape, k):
                continue
            x = phase_context(work, prev, k, pmap, buf=buf)
            mi, si = self.phase_indices(x, k, prev is not None)
            means, scales = to_coder_params(mi, si)
            sl = phase_slice(k)
            target = work[sl]
            sym = target.reshape(-1).cpu().numpy() if encode else None
            out = session.code_laplace(sym, means, scales, lo, hi, esc)
            if not encode:
                target = torch.from_numpy(out).reshape(target.shape).to(work.device)
                work[sl] = target
            fill_context_buffer(buf, k, target)
        return work

    def compress(self, grid_sym: torch.Tensor, prev_sym: Optional[torch.Tensor] = None) -> bytes:
        """Range-code integer grid ``[C, D, H, W]`` given reference symbols (or None: intra)."""
        g = grid_sym.to(torch.int64)
        self._check(g.shape, prev_sym)
        lo, hi, esc = choose_range(g.reshape(-1).cpu().numpy())
        s = CoderSession("encode")
        self._code(s, g, prev_sym, lo, hi, esc)
        return pack_range(lo, hi, esc) + s.to_bytes()

    def decompress(
        self,
        data: bytes,
        shape: Sequence[int],
        prev_sym: Optional[torch.Tensor] = None,
        device: torch.device | str = "cpu",
    ) -> torch.Tensor:
        shape = tuple(int(n) for n in shape)
        self._check(shape, prev_sym)
        if self.b_chan is not None and shape[0] > self.b_chan.shape[0]:
            raise CorruptChunkError(
                f"grid has {shape[0]} channels, the entropy model codes {self.b_chan.shape[0]}",
                where="grid payload",
                offset=0,
            )
        lo, hi, esc, pos = unpack_range(data, 0, where="grid payload")
        s = CoderSession("decode", data[pos:], where="grid payload")
        work = torch.zeros(shape, dtype=torch.int64, device=device)
        out = self._code(s, work, prev_sym, lo, hi, esc)
        s.finish_decode()
        return out

    @staticmethod
    def _check(shape: Sequence[int], prev: Optional[torch.Tensor]) -> None:
        if len(shape) != 4 or min(shape) < 1:
            raise ValueError(f"grid shape must be [C, D, H, W] with positive sides, got {tuple(shape)}")
        if prev is not None and tuple(prev.shape) != tuple(shape):
            raise ValueError(f"prev shape {tuple(prev.shape)} != grid shape {tuple(shape)}")

    # -- serialization (the decoder rebuilds the model from the bitstream alone)
    def weights_to_bytes(self) -> bytes:
        nc = 0 if self.b_chan is None else self.b_chan.shape[0]
        buf = io.BytesIO()
        buf.write(_MODEL_HDR.pack(_MODEL_MAGIC, 1, self.hidden, nc, self.s1, self.s2))
        buf.write(self.w1.numpy().astype("<i1").tobytes())
        buf.write(self.w2.numpy().astype("<i2").tobytes())
        for b in (self.b_phase, self.b_noref) + (() if self.b_chan is None else (self.b_chan,)):
            buf.write(b.numpy().astype("<i4").tobytes())
        buf.write(self.b2.numpy().astype("<i8").tobytes())
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "IntegerGridContextModel":
        if len(data) < _MODEL_HDR.size:
            raise TruncatedError("context model header truncated", where="entropy model", offset=0)
        magic, ver, hid, nc, s1, s2 = _MODEL_HDR.unpack_from(data, 0)
        if (
            magic != _MODEL_MAGIC
            or ver != 1
            or not 1 <= hid <= 64
            or not SHIFT_MIN <= s1 <= S1_MAX
            or not SHIFT_MIN <= s2 <= S2_MAX
        ):
            raise CorruptChunkError("bad context model header", where="entropy model", offset=0)
        sizes = [
            (hid * CTX_IN * 27, "<i1"),
            (2 * hid, "<i2"),
            (NUM_PHASES * hid, "<i4"),
            (hid, "<i4"),
            (nc * hid, "<i4"),
            (2, "<i8"),
        ]
        need = _MODEL_HDR.size + sum(n * np.dtype(t).itemsize for n, t in sizes)
        if need != len(data):
            raise (TruncatedError if need > len(data) else CorruptChunkError)(
                f"context model needs {need} bytes, got {len(data)}", where="entropy model", offset=0
            )
        pos, arrs = _MODEL_HDR.size, []
        for n, t in sizes:
            arrs.append(torch.from_numpy(np.frombuffer(data, dtype=t, count=n, offset=pos).astype(np.int64)))
            pos += n * np.dtype(t).itemsize
        w1, w2, bp, bn, bc, b2 = arrs
        if w1.abs().max() > W1_MAX or cls._bias_bound(bp, bn, bc) > BIAS1_SUM_MAX or b2.abs().max() > B2_MAX:
            raise CorruptChunkError(
                "model weights out of the exactness bounds", where="entropy model", offset=_MODEL_HDR.size
            )
        return cls(
            w1.reshape(hid, CTX_IN, 3, 3, 3),
            s1,
            bp.reshape(NUM_PHASES, hid),
            bn,
            bc.reshape(nc, hid) if nc else None,
            w2.reshape(2, hid),
            s2,
            b2,
        )
