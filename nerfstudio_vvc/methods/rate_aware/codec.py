"""vvc-rate-aware frame codec: trained frame ↔ container chunks, through `nerfstudio_vvc.codec`.

One helper, `reconstruct`, turns symbols into grids on both sides, so what a P-frame refers to
(the encoder's decode buffer) is exactly what the decoder rebuilds. Decoding order per frame:
occupancy, MLP, entropy model, quantization steps, then grids.

    I-frame: Ĝ_t = q_t · S_t
    P-frame: Ĝ_t = Ĝ_{t-1} + q_t · S_t        (S_t: residual symbols)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from nerfstudio_vvc.codec.bitstream.container import ChunkType, FrameRecord
from nerfstudio_vvc.codec.context import IntegerGridContextModel
from nerfstudio_vvc.codec.errors import CorruptChunkError
from nerfstudio_vvc.codec.masks import compress_mask, decompress_mask
from nerfstudio_vvc.codec.weights import decompress_state_dict
from nerfstudio_vvc.methods.rate_aware.field import DiFSpec

_GRID_HDR = struct.Struct("<BB4H")  # grid id, residual flag, C, D, H, W


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


def reconstruct(prev: Optional[Sequence[torch.Tensor]], symbols: Sequence[torch.Tensor], steps: Sequence[float]) -> List[torch.Tensor]:
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
    decoded = DecodedFrame(frame_idx, prev is None, grids, [s.to(torch.int64).cpu() for s in symbols], mlp_state,
                           occupancy.cpu().bool(), steps, sizes)
    # The encoder's reference is decoded from its own occupancy payload too.
    decoded.occupancy = torch.from_numpy(decompress_mask(chunks[0][1]).astype(bool))
    return chunks, decoded


def decode_frame(record: FrameRecord, prev: Optional[DecodedFrame], spec: DiFSpec, where: str = "") -> DecodedFrame:
    """Rebuild a frame from its record; P-frames need the previous decoded frame."""
    if not record.is_iframe and prev is None:
        raise CorruptChunkError(f"P-frame {record.frame_idx} has no decoded reference", where=where, offset=0)
    by_kind: Dict[ChunkType, List[bytes]] = {}
    for kind, payload in record.chunks:
        by_kind.setdefault(ChunkType(kind), []).append(payload)

    def one(kind: ChunkType) -> bytes:
        items = by_kind.get(kind, [])
        if len(items) != 1:
            raise CorruptChunkError(f"frame {record.frame_idx}: expected one {kind.name} chunk, found {len(items)}",
                                    where=where, offset=0)
        return items[0]

    sizes = {k.name: sum(len(p) for p in v) for k, v in by_kind.items()}
    occupancy = torch.from_numpy(decompress_mask(one(ChunkType.OCCUPANCY)).astype(bool))
    if record.is_iframe:
        mlp_state = dict(decompress_state_dict(one(ChunkType.MLP_WEIGHTS)))
    else:
        assert prev is not None
        mlp_state = prev.mlp_state
    model = IntegerGridContextModel.from_bytes(one(ChunkType.ENTROPY_MODEL))
    steps_raw = one(ChunkType.QUANT_STEPS)
    shapes = spec.grid_shapes()
    if len(steps_raw) != 4 * len(shapes):
        raise CorruptChunkError(f"frame {record.frame_idx}: QUANT_STEPS has {len(steps_raw)} bytes", where=where, offset=0)
    steps = [float(v) for v in np.frombuffer(steps_raw, dtype="<f4")]
    grid_payloads = by_kind.get(ChunkType.GRID, [])
    if len(grid_payloads) != len(shapes):
        raise CorruptChunkError(f"frame {record.frame_idx}: {len(grid_payloads)} GRID chunks, expected {len(shapes)}",
                                where=where, offset=0)
    ref = None if record.is_iframe else prev
    symbols = []
    for i, payload in enumerate(grid_payloads):
        gid, residual, *shape = _GRID_HDR.unpack_from(payload, 0)
        if gid != i or tuple(shape) != shapes[i] or residual != int(ref is not None):
            raise CorruptChunkError(f"frame {record.frame_idx}: grid {i} header {gid, residual, shape} does not match",
                                    where=where, offset=0)
        ps = ref.symbols[i] if ref is not None else None
        symbols.append(model.decompress(payload[_GRID_HDR.size:], shape, ps))
    grids = reconstruct(ref.grids if ref is not None else None, symbols, steps)
    return DecodedFrame(record.frame_idx, record.is_iframe, grids, symbols, mlp_state, occupancy, steps, sizes)
