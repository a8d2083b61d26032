"""vvc-rate-aware frame codec: trained frame ↔ container chunks, through `nerfstudio_vvc.codec`.

One helper, `reconstruct`, turns symbols into grids on both sides, so what a P-frame refers to
(the encoder's decode buffer) is exactly what the decoder rebuilds. Decoding order per frame:
occupancy, MLP, entropy model, quantization steps, then grids.

    I-frame: Ĝ_t = q_t · S_t
    P-frame: Ĝ_t = Ĝ_{t-1} + q_t · S_t        (S_t: residual symbols)
"""

from __future__ import annotations

import dataclasses
import json
import math
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from nerfstudio_vvc.codec.bitstream.container import ChunkType, FrameRecord
from nerfstudio_vvc.codec.context import IntegerGridContextModel
from nerfstudio_vvc.codec.errors import BitstreamError, CorruptChunkError, TruncatedError
from nerfstudio_vvc.codec.masks import compress_mask, decompress_mask
from nerfstudio_vvc.codec.method_config import Rule, check_field  # noqa: F401 - the shared rule type, re-exported
from nerfstudio_vvc.codec.weights import decompress_state_dict
from nerfstudio_vvc.components.rendering import RenderSettings
from nerfstudio_vvc.methods.rate_aware.field import DiFFrameField, DiFSpec, spec_json
from nerfstudio_vvc.methods.rate_aware.spec import METHOD_ID  # noqa: F401 - the header's method_id, re-exported

_GRID_HDR = struct.Struct("<BB4H")  # grid id, residual flag, C, D, H, W
GRID_HEADER_BYTES = _GRID_HDR.size
"""Bytes of the shape header in front of each GRID chunk's coded symbols."""


@dataclass
class DecodedFrame:
    """What the decoder holds after a frame: the P-frame reference and the playback state."""

    frame_idx: int
    is_iframe: bool
    grids: List[torch.Tensor]  # Ĝ_t, float32
    symbols: List[torch.Tensor]  # S_t, int64 (temporal context of the next frame)
    mlp_state: Dict[str, torch.Tensor]
    occupancy: torch.Tensor  # bool [R, R, R]
    steps: List[float]
    chunk_bytes: Dict[str, int] = field(default_factory=dict)

    def to_state(self) -> Dict[str, object]:
        return {
            "frame_idx": self.frame_idx, "is_iframe": self.is_iframe, "grids": self.grids,
            "symbols": self.symbols, "mlp": self.mlp_state, "occupancy": self.occupancy, "steps": self.steps,
            "chunk_bytes": self.chunk_bytes,
        }

    @classmethod
    def from_state(cls, s: Dict[str, object]) -> "DecodedFrame":
        return cls(s["frame_idx"], s["is_iframe"], s["grids"], s["symbols"], s["mlp"], s["occupancy"], s["steps"],  # type: ignore[arg-type]
                   s.get("chunk_bytes", {}))  # type: ignore[arg-type]


def reconstruct(
    prev: Optional[Sequence[torch.Tensor]], symbols: Sequence[torch.Tensor], steps: Sequence[float]
) -> List[torch.Tensor]:
    """Grids from symbols (float32, elementwise: identical on every device)."""
    out = []
    for i, (s, q) in enumerate(zip(symbols, steps)):
        g = s.to(torch.float32) * torch.tensor(q, dtype=torch.float32)
        out.append(g if prev is None else prev[i].to(torch.float32) + g)
    return out


def float32_steps(steps: Sequence[float]) -> List[float]:
    """Steps rounded to float32, the precision they are stored with."""
    return [float(np.float32(q)) for q in steps]


def encode_frame(
    symbols: Sequence[torch.Tensor],
    prev: Optional["DecodedFrame"],
    steps: Sequence[float],
    entropy_model: IntegerGridContextModel,
    occupancy: torch.Tensor,
    mlp_payload: Optional[bytes],
    mlp_state: Dict[str, torch.Tensor],
    frame_idx: int,
) -> Tuple[List[Tuple[ChunkType, bytes]], DecodedFrame]:
    """Chunks of one frame and the decoded frame the encoder keeps as reference."""
    steps = float32_steps(steps)
    chunks: List[Tuple[ChunkType, bytes]] = []
    sizes: Dict[str, int] = {}

    def add(kind: ChunkType, payload: bytes) -> None:
        chunks.append((kind, payload))
        sizes[kind.name] = sizes.get(kind.name, 0) + len(payload)

    add(ChunkType.OCCUPANCY, compress_mask(occupancy.cpu()))
    if mlp_payload is not None:
        add(ChunkType.MLP_WEIGHTS, mlp_payload)
    add(ChunkType.ENTROPY_MODEL, entropy_model.weights_to_bytes())
    add(ChunkType.QUANT_STEPS, np.asarray(steps, dtype="<f4").tobytes())
    prev_syms = prev.symbols if prev is not None else [None] * len(symbols)
    for i, (s, ps) in enumerate(zip(symbols, prev_syms)):
        s = s.to(torch.int64).cpu()
        hdr = _GRID_HDR.pack(i, int(prev is not None), *s.shape)
        add(ChunkType.GRID, hdr + entropy_model.compress(s, ps))
    grids = reconstruct(prev.grids if prev is not None else None, symbols, steps)
    decoded = DecodedFrame(
        frame_idx,
        prev is None,
        grids,
        [s.to(torch.int64).cpu() for s in symbols],
        mlp_state,
        occupancy.cpu().bool(),
        steps,
        sizes,
    )
    # The encoder's reference is decoded from its own occupancy payload too.
    decoded.occupancy = torch.from_numpy(decompress_mask(chunks[0][1]).astype(bool))
    return chunks, decoded


# ------------------------------------------------------------------------------ method config
# One line per DiFSpec field (a field without a rule is refused when a file names it, and
# tests/codec/test_fuzz_payload.py checks that every DiFSpec field has one).
DIF_RULES: Dict[str, Rule] = {
    "basis_dims": Rule(int, 1, 64, seq=True),
    "basis_resolutions": Rule(int, 2, 1024, seq=True),
    "basis_freqs": Rule(float, 1e-6, 1e6, seq=True),
    "coeff_resolution": Rule(int, 2, 1024),
    "hidden_dim": Rule(int, 1, 1024),
    "geo_dim": Rule(int, 0, 256, optional=True, default=0),  # files before it had the view-independent MLP
}
# The method's own keys in the METHOD_CONFIG's `render` object, next to the shared render settings that
# `RenderSettings.validate_json` checks (unknown keys are refused: a setting the decoder silently dropped would render
# a different picture). Informational: the decoder does not need them.
RENDER_EXTRA_RULES: Dict[str, Rule] = {
    "lambda_rate": Rule(float, 0.0, 1e12),
    "rate_aware": Rule(bool),
    "adaptive_quant": Rule(bool),
}
MAX_GRID_ELEMS = 1 << 26
"""Bound on the total number of grid voxels a METHOD_CONFIG may declare (the decoder allocates them).
The default full-size DiF has ~11M; the bound keeps a crafted config from asking for more."""
MAX_METHOD_CONFIG_BYTES = 1 << 16


@dataclass(frozen=True)
class StreamConfig:
    """A validated METHOD_CONFIG: the DiF architecture and the render settings."""

    spec: DiFSpec
    render: Dict[str, object]

    @property
    def occupancy_shape(self) -> Tuple[int, int, int]:
        r = int(self.render["occupancy_resolution"])  # type: ignore[arg-type]
        return (r, r, r)

    def to_bytes(self) -> bytes:
        """The METHOD_CONFIG chunk (JSON, sorted keys): `parse_method_config` gives this config back."""
        return spec_json(self.spec, **self.render)


def validate_method_config(meta: object) -> StreamConfig:
    """METHOD_CONFIG JSON (parsed) → StreamConfig; every field's type and range is checked.

    Raises TypeError / ValueError / KeyError naming the field; ``parse_method_config`` maps them to
    ``CorruptChunkError``."""
    if not isinstance(meta, dict) or not isinstance(meta.get("dif"), dict) or not isinstance(meta.get("render"), dict):
        raise TypeError("METHOD_CONFIG must be an object with 'dif' and 'render' objects")
    dif, render = meta["dif"], meta["render"]
    unknown = sorted(set(dif) - set(DIF_RULES))
    if unknown:
        raise ValueError(f"unknown DiF field(s) {unknown[:4]} (a new field needs a rule in DIF_RULES)")
    defaults = {f.name: f.default for f in dataclasses.fields(DiFSpec)}
    kw = {}
    for name, rule in DIF_RULES.items():
        if name in dif:
            kw[name] = check_field(dif[name], rule, f"dif.{name}")
        elif rule.optional and name in defaults:
            kw[name] = defaults[name] if rule.default is None else rule.default
        else:
            raise KeyError(f"dif.{name} missing")
    if not len(kw["basis_dims"]) == len(kw["basis_resolutions"]) == len(kw["basis_freqs"]):
        raise ValueError("basis_dims, basis_resolutions and basis_freqs differ in length")
    spec = DiFSpec(**kw)
    total = sum(math.prod(s) for s in spec.grid_shapes())
    if total > MAX_GRID_ELEMS:
        raise ValueError(f"grids of {total} voxels exceed the decoder's bound {MAX_GRID_ELEMS}")
    out = RenderSettings.validate_json(render, RENDER_EXTRA_RULES)
    return StreamConfig(spec, out)


def parse_method_config(data: bytes, source: str = "<bytes>") -> StreamConfig:
    """The METHOD_CONFIG chunk's bytes → StreamConfig, or CorruptChunkError naming the file and field."""
    try:
        if len(data) > MAX_METHOD_CONFIG_BYTES:
            raise ValueError(f"{len(data)} bytes")
        meta = json.loads(bytes(data).decode("utf-8"), parse_constant=_no_constant)
        return validate_method_config(meta)
    except (ValueError, TypeError, KeyError, UnicodeDecodeError, RecursionError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise CorruptChunkError(f"bad method config ({msg})", source=source, where="METHOD_CONFIG") from None


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


@lru_cache(maxsize=8)
def expected_mlp_state(spec: DiFSpec) -> Dict[str, Tuple[Tuple[int, ...], torch.dtype]]:
    """Names, shapes and dtypes of the rendering MLP's state dict for ``spec`` (built on the meta
    device: nothing is allocated)."""
    with torch.device("meta"):
        mlp = DiFFrameField(spec).mlp
    return {k: (tuple(v.shape), v.dtype) for k, v in mlp.state_dict().items()}


# ------------------------------------------------------------------------------ decoding
def decode_frame(
    record: FrameRecord,
    prev: Optional[DecodedFrame],
    spec: DiFSpec,
    where: str = "",
    occupancy_shape: Optional[Sequence[int]] = None,
) -> DecodedFrame:
    """Rebuild a frame from its record; P-frames need the previous decoded frame.

    Every payload is checked against ``spec`` (and ``occupancy_shape``, from the method config)
    before it is decoded; errors are ``BitstreamError``s naming the file, the frame and the chunk."""
    source = record.source
    where = where or f"frame {record.frame_idx}"

    def bad(msg: str, chunk: str = "") -> CorruptChunkError:
        return CorruptChunkError(msg, source=source, where=f"{where} {chunk}".strip())

    if not record.is_iframe and prev is None:
        raise bad(f"P-frame {record.frame_idx} has no decoded reference")
    by_kind: Dict[ChunkType, List[bytes]] = {}
    for kind, payload in record.chunks:
        if not isinstance(kind, ChunkType):
            continue  # an ancillary chunk of a newer writer: skipped by design
        by_kind.setdefault(kind, []).append(payload)
    allowed = {
        ChunkType.OCCUPANCY,
        ChunkType.MLP_WEIGHTS,
        ChunkType.ENTROPY_MODEL,
        ChunkType.QUANT_STEPS,
        ChunkType.GRID,
    }
    extra = sorted(k.name for k in by_kind if k not in allowed and not ChunkType.is_ancillary(k))
    if extra:
        raise bad(f"unexpected chunk(s) {extra} in a vvc-rate-aware frame")

    def one(kind: ChunkType) -> bytes:
        items = by_kind.get(kind, [])
        if len(items) != 1:
            raise bad(f"expected one {kind.name} chunk, found {len(items)}", kind.name)
        return items[0]

    def chunk(kind: ChunkType, fn, *args):  # payload decoder errors, re-raised naming file/frame/chunk
        try:
            return fn(*args)
        except BitstreamError as e:
            raise e.in_context(source=source, where=f"{where} {kind.name}") from None

    sizes = {k.name: sum(len(p) for p in v) for k, v in by_kind.items()}
    occupancy = torch.from_numpy(
        chunk(ChunkType.OCCUPANCY, decompress_mask, one(ChunkType.OCCUPANCY), occupancy_shape).astype(bool)
    )
    if occupancy.dim() != 3:
        raise bad(f"occupancy has shape {tuple(occupancy.shape)}, expected [R, R, R]", "OCCUPANCY")
    if record.is_iframe:
        mlp_state = dict(
            chunk(ChunkType.MLP_WEIGHTS, decompress_state_dict, one(ChunkType.MLP_WEIGHTS), expected_mlp_state(spec))
        )
    else:
        assert prev is not None
        if ChunkType.MLP_WEIGHTS in by_kind:
            raise bad("a P-frame carries no MLP (it uses its reference's)", "MLP_WEIGHTS")
        mlp_state = prev.mlp_state
    model = chunk(ChunkType.ENTROPY_MODEL, IntegerGridContextModel.from_bytes, one(ChunkType.ENTROPY_MODEL))
    steps_raw = one(ChunkType.QUANT_STEPS)
    shapes = spec.grid_shapes()
    if len(steps_raw) != 4 * len(shapes):
        raise bad(f"{len(steps_raw)} bytes, expected {4 * len(shapes)}", "QUANT_STEPS")
    steps = [float(v) for v in np.frombuffer(steps_raw, dtype="<f4")]
    if not all(math.isfinite(q) and q > 0 for q in steps):
        raise bad(f"quantization steps must be finite and positive, got {steps}", "QUANT_STEPS")
    grid_payloads = by_kind.get(ChunkType.GRID, [])
    if len(grid_payloads) != len(shapes):
        raise bad(f"{len(grid_payloads)} GRID chunks, expected {len(shapes)}", "GRID")
    ref = None if record.is_iframe else prev
    if ref is not None and [tuple(s.shape) for s in ref.symbols] != [tuple(s) for s in shapes]:
        raise bad("the reference frame's grids do not match the method config")
    symbols = []
    for i, payload in enumerate(grid_payloads):
        if len(payload) < _GRID_HDR.size:
            raise TruncatedError("grid header truncated", source=source, where=f"{where} GRID #{i}")
        gid, residual, *shape = _GRID_HDR.unpack_from(payload, 0)
        if gid != i or tuple(shape) != shapes[i] or residual != int(ref is not None):
            raise bad(f"grid {i} header {gid, residual, shape} does not match {shapes[i]}", f"GRID #{i}")
        ps = ref.symbols[i] if ref is not None else None
        try:
            symbols.append(model.decompress(payload[_GRID_HDR.size :], shape, ps))
        except BitstreamError as e:
            raise e.in_context(source=source, where=f"{where} GRID #{i}") from None
    grids = reconstruct(ref.grids if ref is not None else None, symbols, steps)
    for i, g in enumerate(grids):
        if not bool(torch.isfinite(g).all()):
            raise bad(f"grid {i} dequantizes to non-finite values (step {steps[i]})", f"GRID #{i}")
    return DecodedFrame(record.frame_idx, record.is_iframe, grids, symbols, mlp_state, occupancy, steps, sizes)


# ------------------------------------------------------------------------------ the method-codec contract
@dataclass
class CodedFrame:
    """What `RateAwareCodec.encode_frame` codes: a frame's integer grid symbols and their steps, the frozen integer
    context model, the occupancy grid, and the MLP (payload on I-frames; the dequantized state the decoder gets)."""

    frame_idx: int
    symbols: Sequence[torch.Tensor]
    steps: Sequence[float]
    entropy_model: IntegerGridContextModel
    occupancy: torch.Tensor
    mlp_payload: Optional[bytes]
    mlp_state: Dict[str, torch.Tensor]


class RateAwareCodec:
    """vvc-rate-aware under the method-codec contract (`codec/method_codec.py`): no global payloads besides the
    METHOD_CONFIG; I/P frames."""

    method_id = METHOD_ID

    def encode_globals(self, config: StreamConfig, payload: None = None) -> List[Tuple[ChunkType, bytes]]:
        return [(ChunkType.METHOD_CONFIG, config.to_bytes())]

    def encode_frame(self, config: StreamConfig, payload: CodedFrame,
                     prev: Optional[DecodedFrame]) -> List[Tuple[ChunkType, bytes]]:
        return self.encode_frame_and_reference(config, payload, prev)[0]

    def encode_frame_and_reference(self, config: StreamConfig, payload: CodedFrame,
                                   prev: Optional[DecodedFrame]) -> Tuple[List[Tuple[ChunkType, bytes]], DecodedFrame]:
        """`encode_frame` plus the decoded frame the encoder keeps as the next P-frame's reference (what
        `decode_frame` rebuilds from these chunks, without decoding them)."""
        p = payload
        return encode_frame(p.symbols, prev, p.steps, p.entropy_model, p.occupancy, p.mlp_payload, p.mlp_state,
                            p.frame_idx)

    def parse_config(self, data: Optional[bytes], source: str = "<bytes>") -> StreamConfig:
        if data is None:
            raise CorruptChunkError("no METHOD_CONFIG chunk", source=source, where="METHOD_CONFIG")
        return parse_method_config(data, source=source)

    def decode_globals(self, config: StreamConfig, global_chunks: Sequence[Tuple[int, bytes]],
                       source: str = "<bytes>") -> None:
        return None

    def decode_frame(self, config: StreamConfig, shared: None, record: FrameRecord,
                     prev: Optional[DecodedFrame]) -> DecodedFrame:
        return decode_frame(record, prev, config.spec, occupancy_shape=config.occupancy_shape)


CODEC = RateAwareCodec()
