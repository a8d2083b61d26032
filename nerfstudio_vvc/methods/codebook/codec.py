"""vvc-codebook stream: shared codebook + index planes + MLP in GLOBALS, dynamic codes per time fragment.

    GLOBALS   METHOD_CONFIG   JSON {"hex": HexSpec, "codebook": {...}, "render": {...}}
              CODEBOOK ×2     shared codebook of a group (density 0, appearance 1): steps + symbols
              INDEX_PLANE ×n  one per plane, in HexSpec.plane_shapes() order: indices into its group's codebook
              MLP_WEIGHTS     the head (codec/weights.py state-dict payload)
    FRAME f   f % fragment_size == 0 (I):  CODEBOOK ×2 (the fragment's dynamic codes: ids + symbols)
                                           OCCUPANCY (the fragment's occupancy grid, codec/masks.py)
              other frames (P):            no chunk: the fragment's codes at the frame's time

A fragment's codebook is the shared one with entry ``ids[j]`` replaced by dynamic code j: every index
that pointed to a selected code points to its dynamic copy for that fragment, so the fragment's index
planes differ from the shared ones exactly there and need no bytes of their own.
Dequantisation is ``symbols.float32 · step`` on both sides (one helper, ``reconstruct``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from nerfstudio_vvc.codec.bitstream.container import ChunkType, FrameRecord
from nerfstudio_vvc.codec.errors import BitstreamError, CorruptChunkError, TruncatedError
from nerfstudio_vvc.codec.masks import compress_mask, decompress_mask
from nerfstudio_vvc.codec.method_config import Rule, check_object, check_value, parse_method_config_json
from nerfstudio_vvc.codec.weights import compress_int_tensor, decompress_int_tensor, decompress_state_dict
from nerfstudio_vvc.components.rendering import RenderSettings
from nerfstudio_vvc.methods.codebook.codebook import dequantize
from nerfstudio_vvc.methods.codebook.field import GROUPS, HexHead, HexSpec, gather_planes, spec_json
from nerfstudio_vvc.methods.codebook.spec import METHOD_ID  # noqa: F401 - the header's method_id, re-exported

SHARED, DYNAMIC = 0, 1
_CB_HDR = struct.Struct("<BBIH")  # group id, kind (0 shared, 1 dynamic), count, channels
_IX_HDR = struct.Struct("<HHH")  # plane id, H, W
_LEN = struct.Struct("<I")

MAX_CODES = 1 << 24
"""Bound on the codes (plane pixels) of a group a METHOD_CONFIG may declare (paper scale DyNeRF: ~1.5M)."""
MAX_METHOD_CONFIG_BYTES = 1 << 16


def frame_time(frame: int, num_frames: int) -> float:
    """The time of a frame as training saw it (nerfstudio camera times are float32)."""
    return float(np.float32(frame / max(num_frames - 1, 1)))


# ------------------------------------------------------------------------------ states
@dataclass
class SharedState:
    """The decoded GLOBALS: shared codebooks (symbols + per-channel steps), index planes, MLP."""

    symbols: Dict[str, torch.Tensor]  # group -> [M, C] int64
    steps: Dict[str, torch.Tensor]  # group -> [C] float32
    indices: List[torch.Tensor]  # per plane [H, W] int64
    mlp_state: Dict[str, torch.Tensor]

    def codebook(self, group: str) -> torch.Tensor:
        return dequantize(self.symbols[group], self.steps[group])


@dataclass
class FragmentCodes:
    """One fragment's dynamic codes: sorted entry ids and their symbols (steps: the shared ones)."""

    ids: Dict[str, torch.Tensor]  # group -> [n] int64
    symbols: Dict[str, torch.Tensor]  # group -> [n, C] int64

    @classmethod
    def empty(cls, spec: HexSpec) -> "FragmentCodes":
        return cls({g: torch.zeros(0, dtype=torch.long) for g in GROUPS},
                   {g: torch.zeros(0, spec.group_dim(g), dtype=torch.long) for g in GROUPS})


def reconstruct(shared: SharedState, dyn: FragmentCodes) -> Dict[str, torch.Tensor]:
    """The fragment's codebooks: shared entries, with entry ids[j] replaced by dynamic code j."""
    out = {}
    for g in GROUPS:
        cb = shared.codebook(g).clone()
        if len(dyn.ids[g]):
            cb[dyn.ids[g]] = dequantize(dyn.symbols[g], shared.steps[g])
        out[g] = cb
    return out


@dataclass
class DecodedFrame:
    """A decoded frame: its fragment's codebooks, the shared index planes and MLP, the fragment's occupancy."""

    frame_idx: int
    is_iframe: bool
    fragment: int
    time: float
    codebooks: Dict[str, torch.Tensor]
    indices: List[torch.Tensor]
    mlp_state: Dict[str, torch.Tensor]
    occupancy: torch.Tensor  # bool [R, R, R]
    chunk_bytes: Dict[str, int] = field(default_factory=dict)

    def planes(self, spec: HexSpec) -> List[torch.Tensor]:
        return gather_planes(spec, self.codebooks, self.indices)

    def to_state(self) -> Dict[str, object]:
        return {"frame_idx": self.frame_idx, "is_iframe": self.is_iframe, "fragment": self.fragment, "time": self.time,
                "codebooks": self.codebooks, "indices": self.indices, "mlp": self.mlp_state,
                "occupancy": self.occupancy, "chunk_bytes": self.chunk_bytes}

    @classmethod
    def from_state(cls, s: Dict[str, object]) -> "DecodedFrame":
        return cls(s["frame_idx"], s["is_iframe"], s["fragment"], s["time"], s["codebooks"], s["indices"],  # type: ignore[arg-type]
                   s["mlp"], s["occupancy"], s.get("chunk_bytes", {}))  # type: ignore[arg-type]


def expected_mlp_state(spec: HexSpec) -> Dict[str, Tuple[Tuple[int, ...], torch.dtype]]:
    return {k: (tuple(v.shape), v.dtype) for k, v in HexHead(spec).state_dict().items()}


# ------------------------------------------------------------------------------ method config
@dataclass(frozen=True)
class StreamConfig:
    """A validated METHOD_CONFIG."""

    spec: HexSpec
    num_frames: int
    fragment_size: int
    entries: Dict[str, int]  # shared codebook entries per group
    render: Dict[str, object]

    @property
    def occupancy_shape(self) -> Tuple[int, int, int]:
        r = int(self.render["occupancy_resolution"])  # type: ignore[arg-type]
        return (r, r, r)

    def fragment_of(self, frame: int) -> int:
        return frame // self.fragment_size

    def meta(self) -> dict:
        return {"num_frames": self.num_frames, "fragment_size": self.fragment_size, "entries": dict(self.entries)}

    def to_bytes(self) -> bytes:
        return spec_json(self.spec, self.meta(), dict(self.render))


def _num(v: object, name: str, kind: type, lo: float, hi: float) -> object:
    return check_value(v, name, Rule(kind, lo, hi))


HEX_RULES: Dict[str, Rule] = {
    "density_resolution": Rule(int, 2, 4096),
    "time_resolution": Rule(int, 2, 4096),
    "density_dim": Rule(int, 1, 256),
    "appearance_dim": Rule(int, 1, 256),
    "hidden_dim": Rule(int, 1, 1024),
    "appearance_resolutions": Rule(int, 2, 4096, seq=True, max_len=8),
}
"""The METHOD_CONFIG's `hex` object: one line per HexSpec field."""


def validate_method_config(meta: object) -> StreamConfig:
    """METHOD_CONFIG JSON (parsed) → StreamConfig; every field's type and range is checked (TypeError /
    ValueError / KeyError naming the field)."""
    if not isinstance(meta, dict) or set(meta) != {"hex", "codebook", "render"}:
        raise TypeError("METHOD_CONFIG must be an object with exactly 'hex', 'codebook' and 'render'")
    spec = HexSpec(**check_object(meta["hex"], "hex", HEX_RULES))
    for g in GROUPS:
        if spec.num_codes(g) > MAX_CODES:
            raise ValueError(f"{spec.num_codes(g)} {g} codes exceed the decoder's bound {MAX_CODES}")
    cb = meta["codebook"]
    if not isinstance(cb, dict) or set(cb) != {"num_frames", "fragment_size", "entries"}:
        raise TypeError("codebook must be an object with num_frames, fragment_size, entries")
    num_frames = _num(cb["num_frames"], "codebook.num_frames", int, 1, 1 << 20)
    fragment_size = _num(cb["fragment_size"], "codebook.fragment_size", int, 1, 1 << 20)
    ent = cb["entries"]
    if not isinstance(ent, dict) or set(ent) != set(GROUPS):
        raise TypeError(f"codebook.entries must name {list(GROUPS)}")
    entries = {g: int(_num(ent[g], f"codebook.entries.{g}", int, 1, spec.num_codes(g) + 1)) for g in GROUPS}  # type: ignore[arg-type]
    out = RenderSettings.validate_json(meta["render"])
    return StreamConfig(spec, int(num_frames), int(fragment_size), entries, out)  # type: ignore[arg-type]


def parse_method_config(data: Optional[bytes], source: str = "<bytes>") -> StreamConfig:
    """METHOD_CONFIG bytes → StreamConfig, or CorruptChunkError naming the file and the field."""
    return parse_method_config_json(data, validate_method_config, MAX_METHOD_CONFIG_BYTES, source)


# ------------------------------------------------------------------------------ payloads
def _compress_codes(
    group: int,
    kind: int,
    symbols: torch.Tensor,
    ids: Optional[torch.Tensor] = None,
    steps: Optional[torch.Tensor] = None,
) -> bytes:
    n, c = symbols.shape
    out = [_CB_HDR.pack(group, kind, n, c)]
    if steps is not None:
        out.append(steps.to(torch.float32).cpu().numpy().astype("<f4").tobytes())
    if ids is not None:
        diffs = torch.diff(ids.cpu(), prepend=torch.zeros(1, dtype=torch.long)) if n else ids.cpu()
        p = compress_int_tensor(diffs) if n else b""
        out += [_LEN.pack(len(p)), p]
    if n:
        out.append(compress_int_tensor(symbols.t().contiguous().cpu()))
    return b"".join(out)


def encode_globals(cfg: StreamConfig, shared: SharedState, mlp_payload: bytes) -> List[Tuple[ChunkType, bytes]]:
    chunks: List[Tuple[ChunkType, bytes]] = [(ChunkType.METHOD_CONFIG, cfg.to_bytes())]
    for gi, g in enumerate(GROUPS):
        chunks.append((ChunkType.CODEBOOK, _compress_codes(gi, SHARED, shared.symbols[g], steps=shared.steps[g])))
    for pi, ((_, (_, h, w)), idx) in enumerate(zip(cfg.spec.plane_shapes(), shared.indices)):
        chunks.append((ChunkType.INDEX_PLANE, _IX_HDR.pack(pi, h, w) + compress_int_tensor(idx.cpu())))
    chunks.append((ChunkType.MLP_WEIGHTS, mlp_payload))
    return chunks


def encode_fragment(dyn: FragmentCodes, occupancy: torch.Tensor) -> List[Tuple[ChunkType, bytes]]:
    chunks = [
        (ChunkType.CODEBOOK, _compress_codes(gi, DYNAMIC, dyn.symbols[g], ids=dyn.ids[g]))
        for gi, g in enumerate(GROUPS)
    ]
    chunks.append((ChunkType.OCCUPANCY, compress_mask(occupancy.cpu())))
    return chunks


class _Reader:
    """Bounds-checked cursor over one payload; errors name the file and chunk."""

    def __init__(self, data: bytes, source: str, where: str) -> None:
        self.data, self.pos, self.source, self.where = data, 0, source, where

    def bad(self, msg: str, cls: type = CorruptChunkError) -> BitstreamError:
        return cls(msg, source=self.source, where=self.where, offset=self.pos)

    def take(self, n: int) -> bytes:
        if n < 0 or n > len(self.data) - self.pos:
            raise self.bad(f"need {n} bytes, {len(self.data) - self.pos} remain", TruncatedError)
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, st: struct.Struct) -> tuple:
        return st.unpack(self.take(st.size))

    def int_tensor(self, n: int, shape: Tuple[int, ...]) -> torch.Tensor:
        try:
            return decompress_int_tensor(self.take(n), shape)
        except BitstreamError as e:
            raise e.in_context(source=self.source, where=self.where) from None


def _decode_codes(
    data: bytes, group: int, kind: int, cfg: StreamConfig, source: str, where: str, max_count: int
) -> Tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
    """(symbols [n, C], ids or None, steps or None) of a CODEBOOK payload, every field checked."""
    r = _Reader(data, source, where)
    gid, k, n, c = r.unpack(_CB_HDR)
    g = GROUPS[group]
    if gid != group or k != kind:
        raise r.bad(f"codebook header (group {gid}, kind {k}) where (group {group}, kind {kind}) belongs")
    if c != cfg.spec.group_dim(g) or n > max_count:
        raise r.bad(f"{g} codebook of {n} x {c}, expected at most {max_count} x {cfg.spec.group_dim(g)}")
    steps = ids = None
    if kind == SHARED:
        if n != cfg.entries[g]:
            raise r.bad(f"{g} codebook has {n} entries, METHOD_CONFIG says {cfg.entries[g]}")
        steps = torch.from_numpy(np.frombuffer(r.take(4 * c), dtype="<f4").astype(np.float32))
        if not bool(torch.isfinite(steps).all() and (steps > 0).all()):
            raise r.bad("quantisation steps must be finite and positive")
    else:
        (plen,) = r.unpack(_LEN)
        if n:
            diffs = r.int_tensor(plen, (n,))
            if int(diffs[0]) < 1 or (n > 1 and int(diffs[1:].min()) < 1):
                raise r.bad("dynamic code ids must increase and skip the zero code")
            ids = torch.cumsum(diffs, 0)
            if int(ids[-1]) >= cfg.entries[g]:
                raise r.bad(f"dynamic code id {int(ids[-1])} outside the {cfg.entries[g]}-entry codebook")
        else:
            if plen:
                raise r.bad("ids payload for zero dynamic codes")
            ids = torch.zeros(0, dtype=torch.long)
    sym = r.int_tensor(len(data) - r.pos, (c, n)).t().contiguous() if n else torch.zeros(0, c, dtype=torch.long)
    if r.pos != len(data):
        raise r.bad("trailing bytes")
    return sym, ids, steps


def decode_globals(chunks: Sequence[Tuple[object, bytes]], cfg: StreamConfig, source: str = "<bytes>") -> SharedState:
    """The GLOBALS chunks (container order) → SharedState, checked against the METHOD_CONFIG."""
    by: Dict[object, List[bytes]] = {}
    for kind, payload in chunks:
        by.setdefault(kind, []).append(payload)
    spec = cfg.spec
    shapes = spec.plane_shapes()

    def need(kind: ChunkType, n: int) -> List[bytes]:
        items = by.get(kind, [])
        if len(items) != n:
            raise CorruptChunkError(
                f"{len(items)} {kind.name} chunk(s) in GLOBALS, expected {n}",
                source=source,
                where=f"globals {kind.name}",
            )
        return items

    symbols, steps = {}, {}
    for gi, (g, payload) in enumerate(zip(GROUPS, need(ChunkType.CODEBOOK, len(GROUPS)))):
        sym, _, st = _decode_codes(payload, gi, SHARED, cfg, source, f"globals CODEBOOK #{gi}", cfg.entries[g])
        assert st is not None
        cb = dequantize(sym, st)
        if not bool(torch.isfinite(cb).all()):
            raise CorruptChunkError(
                f"{g} codebook dequantises to non-finite values", source=source, where=f"globals CODEBOOK #{gi}"
            )
        symbols[g], steps[g] = sym, st
    indices = []
    for pi, payload in enumerate(need(ChunkType.INDEX_PLANE, len(shapes))):
        g, (_, h, w) = shapes[pi]
        r = _Reader(payload, source, f"globals INDEX_PLANE #{pi}")
        got = r.unpack(_IX_HDR)
        if got != (pi, h, w):
            raise r.bad(f"index plane header {got}, expected {(pi, h, w)}")
        idx = r.int_tensor(len(payload) - r.pos, (h, w))
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= cfg.entries[g]):
            raise r.bad(f"indices outside the {cfg.entries[g]}-entry {g} codebook")
        indices.append(idx)
    (mlp_raw,) = need(ChunkType.MLP_WEIGHTS, 1)
    try:
        mlp_state = dict(decompress_state_dict(mlp_raw, expected_mlp_state(spec)))
    except BitstreamError as e:
        raise e.in_context(source=source, where="globals MLP_WEIGHTS") from None
    return SharedState(symbols, steps, indices, mlp_state)


def decode_frame(
    record: FrameRecord, prev: Optional[DecodedFrame], cfg: StreamConfig, shared: SharedState, source: str = "<bytes>"
) -> DecodedFrame:
    """One frame record → DecodedFrame. A fragment's first frame (I) carries its codes; the others (P)
    reuse the previous decoded frame of the same fragment."""
    f = record.frame_idx
    where = f"frame {f}"
    bad = lambda msg, chunk="": CorruptChunkError(msg, source=source, where=f"{where} {chunk}".strip())  # noqa: E731
    if f >= cfg.num_frames:
        raise bad(f"frame {f} beyond the {cfg.num_frames} frames of the METHOD_CONFIG")
    first = f % cfg.fragment_size == 0
    if record.is_iframe != first:
        raise bad(
            f"frame {f} is {'an I' if record.is_iframe else 'a P'}-frame; fragments of {cfg.fragment_size} "
            "frames start with an I-frame and hold only P-frames after it"
        )
    by: Dict[ChunkType, List[bytes]] = {}
    for kind, payload in record.chunks:
        if isinstance(kind, ChunkType) and not ChunkType.is_ancillary(kind):
            by.setdefault(kind, []).append(payload)
    time = frame_time(f, cfg.num_frames)
    if not record.is_iframe:
        if by:
            raise bad(f"a P-frame carries no chunk, found {sorted(k.name for k in by)}")
        if prev is None or prev.fragment != cfg.fragment_of(f):
            raise bad(f"P-frame {f} has no decoded reference (the previous frame of fragment {cfg.fragment_of(f)})")
        return DecodedFrame(
            f, False, prev.fragment, time, prev.codebooks, prev.indices, prev.mlp_state, prev.occupancy, {}
        )
    if set(by) - {ChunkType.CODEBOOK, ChunkType.OCCUPANCY}:
        raise bad(f"unexpected chunk(s) {sorted(k.name for k in set(by) - {ChunkType.CODEBOOK, ChunkType.OCCUPANCY})}")
    cbs = by.get(ChunkType.CODEBOOK, [])
    occ_raw = by.get(ChunkType.OCCUPANCY, [])
    if len(cbs) != len(GROUPS) or len(occ_raw) != 1:
        raise bad(f"{len(cbs)} CODEBOOK and {len(occ_raw)} OCCUPANCY chunks, expected {len(GROUPS)} and 1")
    dyn = FragmentCodes({}, {})
    for gi, g in enumerate(GROUPS):
        sym, ids, _ = _decode_codes(cbs[gi], gi, DYNAMIC, cfg, source, f"{where} CODEBOOK #{gi}", cfg.entries[g] - 1)
        assert ids is not None
        dyn.ids[g], dyn.symbols[g] = ids, sym
    try:
        occ = torch.from_numpy(decompress_mask(occ_raw[0], cfg.occupancy_shape).astype(bool))
    except BitstreamError as e:
        raise e.in_context(source=source, where=f"{where} OCCUPANCY") from None
    codebooks = reconstruct(shared, dyn)
    for g, cb in codebooks.items():
        if not bool(torch.isfinite(cb).all()):
            raise bad(f"{g} dynamic codes dequantise to non-finite values", "CODEBOOK")
    sizes = {"CODEBOOK": sum(len(p) for p in cbs), "OCCUPANCY": len(occ_raw[0])}
    return DecodedFrame(f, True, cfg.fragment_of(f), time, codebooks, shared.indices, shared.mlp_state, occ, sizes)


# ------------------------------------------------------------------------------ the method-codec contract
@dataclass
class CodedGlobals:
    """What `CodebookCodec.encode_globals` codes: the shared codebooks and index planes, and the MLP's payload."""

    shared: SharedState
    mlp_payload: bytes


@dataclass
class CodedFragment:
    """What `CodebookCodec.encode_frame` codes on a fragment's first frame: its dynamic codes and occupancy grid."""

    codes: FragmentCodes
    occupancy: torch.Tensor


class CodebookCodec:
    """vvc-codebook under the method-codec contract (`codec/method_codec.py`): shared codebooks, index planes and
    MLP in the GLOBALS; dynamic codes per fragment (the other frames of a fragment are empty records: payload None)."""

    method_id = METHOD_ID

    def encode_globals(self, config: StreamConfig, payload: CodedGlobals) -> List[Tuple[ChunkType, bytes]]:
        return encode_globals(config, payload.shared, payload.mlp_payload)

    def encode_frame(self, config: StreamConfig, payload: Optional[CodedFragment],
                     prev: Optional[DecodedFrame]) -> List[Tuple[ChunkType, bytes]]:
        return [] if payload is None else encode_fragment(payload.codes, payload.occupancy)

    def parse_config(self, data: Optional[bytes], source: str = "<bytes>") -> StreamConfig:
        return parse_method_config(data, source=source)

    def decode_globals(self, config: StreamConfig, global_chunks: Sequence[Tuple[object, bytes]],
                       source: str = "<bytes>") -> SharedState:
        return decode_globals(global_chunks, config, source=source)

    def decode_frame(self, config: StreamConfig, shared: SharedState, record: FrameRecord,
                     prev: Optional[DecodedFrame]) -> DecodedFrame:
        return decode_frame(record, prev, config, shared, source=record.source)


CODEC = CodebookCodec()
