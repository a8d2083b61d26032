"""vvc-mv-inr bitstream (container layout in docs/bitstream.md, "vvc-mv-inr"):

    GLOBALS   METHOD_CONFIG  JSON {"inr": architecture, "views": basic + coded cameras, "hevc": {...}, "render": {...}}
              VIDEO_STREAM   the basic view's HEVC elementary stream (x265), all frames, as written by the encoder
              INR_WEIGHTS    every network parameter but the per-frame time grid g1 (8-bit tanh symbols)
    FRAME t   INR_WEIGHTS    row t of g1 (its own tanh peak); every frame is an I-frame (decodable alone)

INR_WEIGHTS payload: b"INR1" | u32 count | per tensor: u16 name_len, name (utf-8), u32 units | per unit: f64 m
(tanh peak, 0 < m <= 1), u32 len, u8 kind (0: factorized-Laplace int tensor, 1: own-histogram categorical;
the encoder keeps the smaller, codec/weights.py), payload (symbols in -L..L). Dequantisation is
``compress.dequantize`` on both sides. Every name, shape and count is checked against the network the METHOD_CONFIG
declares before anything is decoded, and every failure is a ``BitstreamError`` naming the chunk.
"""

from __future__ import annotations

import io
import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from nerfstudio_vvc.codec.bitstream.header import ChunkType
from nerfstudio_vvc.codec.errors import BitstreamError, CorruptChunkError, TruncatedError
from nerfstudio_vvc.codec.method_config import Rule, check_object, parse_method_config_json
from nerfstudio_vvc.codec.weights import (
    compress_categorical,
    compress_int_tensor,
    decompress_categorical,
    decompress_int_tensor,
)
from nerfstudio_vvc.methods.mv_inr.compress import PER_ROW, dequantize_units, huffman_bits
from nerfstudio_vvc.methods.mv_inr.network import MVINR
from nerfstudio_vvc.methods.mv_inr.spec import METHOD_ID  # noqa: F401 - the header's method_id, re-exported

MAGIC = b"INR1"
MAX_METHOD_CONFIG_BYTES = 1 << 18
MAX_PIXELS = 4096 * 4096
MAX_FRAMES = 1 << 16
MAX_VIEWS = 512
MAX_CHANNELS = 1024
MAX_PARAMS = 1 << 28
"""Decoder bounds: a METHOD_CONFIG beyond them is refused before any allocation."""
X265_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")
HEVC_RULES: Dict[str, Rule] = {
    "qp": Rule(int, 0, 51),
    "preset": Rule(str, choices=X265_PRESETS),
}
"""The METHOD_CONFIG's `hevc` object: how the basic view was coded (informational: the decoder reads the stream)."""
RENDER_RULES: Dict[str, Rule] = {
    "background": Rule(float, 0.0, 1.0, seq=True, min_len=3, max_len=3),
}
"""The METHOD_CONFIG's `render` object: what the viewer shows outside the decoded image."""


@dataclass
class Camera:
    """A coded view's pinhole camera in the run's scene coordinates (OpenGL camera-to-world, as nerfstudio)."""

    cam_id: int
    fx: float
    fy: float
    cx: float
    cy: float
    c2w: List[List[float]]  # 3 x 4

    def to_json(self) -> Dict[str, Any]:
        return {"id": self.cam_id, "fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy, "c2w": self.c2w}


@dataclass
class StreamConfig:
    """A validated METHOD_CONFIG."""

    n_frames: int
    height: int
    width: int
    grid_channels: int
    conv_channels: Tuple[int, ...]
    compensation: bool
    grid_embedding: bool
    bits: int
    cameras: List[Camera]
    basic: int
    """Index into ``cameras`` of the basic view (HEVC); the others are the INR's views 0.. in camera order."""
    hevc: Dict[str, Any] = field(default_factory=dict)
    render: Dict[str, Any] = field(default_factory=dict)

    @property
    def inr_views(self) -> List[int]:
        """Indices into ``cameras`` of the INR's views, in INR view order."""
        return [i for i in range(len(self.cameras)) if i != self.basic]

    def network(self) -> MVINR:
        return MVINR(self.n_frames, len(self.inr_views), self.height, self.width, self.grid_channels,
                     self.conv_channels, compensation=self.compensation, grid_embedding=self.grid_embedding)

    def to_json(self) -> Dict[str, Any]:
        return {"inr": {"n_frames": self.n_frames, "height": self.height, "width": self.width,
                        "grid_channels": self.grid_channels, "conv_channels": list(self.conv_channels),
                        "compensation": self.compensation, "grid_embedding": self.grid_embedding, "bits": self.bits},
                "views": {"basic": self.basic, "cameras": [c.to_json() for c in self.cameras]},
                "hevc": self.hevc, "render": self.render}

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), sort_keys=True, allow_nan=False).encode("utf-8")


def _int(v: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name} must be an integer")
    if not lo <= v <= hi:
        raise ValueError(f"{name} = {v} is outside [{lo}, {hi}]")
    return v


def _real(v: Any, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise TypeError(f"{name} must be a finite number")
    return float(v)


def _lists(obj: Dict[str, Any]) -> Dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in obj.items()}  # as JSON reads them


def validate_method_config(meta: Any) -> StreamConfig:
    if not isinstance(meta, dict) or set(meta) != {"inr", "views", "hevc", "render"}:
        raise TypeError("METHOD_CONFIG must be an object with exactly 'inr', 'views', 'hevc' and 'render'")
    inr, views = meta["inr"], meta["views"]
    if not isinstance(inr, dict) or not isinstance(views, dict):
        raise TypeError("inr and views must be objects")
    h = _int(inr["height"], "inr.height", 2, 1 << 14)
    w = _int(inr["width"], "inr.width", 2, 1 << 14)
    if h * w > MAX_PIXELS:
        raise ValueError(f"{w}x{h} pixels exceed the decoder's bound")
    chans = inr["conv_channels"]
    if not isinstance(chans, list) or not 1 <= len(chans) <= 8:
        raise TypeError("inr.conv_channels must be a list of 1..8 integers")
    cams_in = views["cameras"]
    if not isinstance(cams_in, list) or not 2 <= len(cams_in) <= MAX_VIEWS:
        raise ValueError(f"views.cameras must list 2..{MAX_VIEWS} cameras")
    cams = []
    for i, c in enumerate(cams_in):
        if not isinstance(c, dict):
            raise TypeError(f"views.cameras[{i}] must be an object")
        m = c["c2w"]
        if not (isinstance(m, list) and len(m) == 3 and all(isinstance(r, list) and len(r) == 4 for r in m)):
            raise TypeError(f"views.cameras[{i}].c2w must be 3 rows of 4 numbers")
        cams.append(Camera(_int(c["id"], f"views.cameras[{i}].id", 0, 1 << 30),
                           *(_real(c[k], f"views.cameras[{i}].{k}") for k in ("fx", "fy", "cx", "cy")),
                           [[_real(v, f"views.cameras[{i}].c2w") for v in r] for r in m]))
    for k in ("compensation", "grid_embedding"):
        if not isinstance(inr[k], bool):
            raise TypeError(f"inr.{k} must be true or false")
    cfg = StreamConfig(
        n_frames=_int(inr["n_frames"], "inr.n_frames", 1, MAX_FRAMES),
        height=h,
        width=w,
        grid_channels=_int(inr["grid_channels"], "inr.grid_channels", 1, MAX_CHANNELS),
        conv_channels=tuple(_int(c, f"inr.conv_channels[{i}]", 1, MAX_CHANNELS) for i, c in enumerate(chans)),
        compensation=inr["compensation"],
        grid_embedding=inr["grid_embedding"],
        bits=_int(inr["bits"], "inr.bits", 2, 16),
        cameras=cams,
        basic=_int(views["basic"], "views.basic", 0, len(cams) - 1),
        hevc=check_object(meta["hevc"], "hevc", HEVC_RULES),
        render=_lists(check_object(meta["render"], "render", RENDER_RULES)),
    )
    n_params = expected_parameter_count(cfg)
    if n_params > MAX_PARAMS:
        raise ValueError(f"the declared network has {n_params} parameters, beyond the decoder's bound")
    return cfg


def expected_parameter_count(cfg: StreamConfig) -> int:
    """Parameters of the declared network, computed without building it (bounds checks before allocation)."""
    from nerfstudio_vvc.methods.mv_inr.network import upsample_factors

    (gh, gw), factors = upsample_factors(cfg.height, cfg.width, n_blocks=len(cfg.conv_channels))
    c, v, t = cfg.grid_channels, len(cfg.cameras) - 1, cfg.n_frames
    n = (t + (t + 1) // 2 + (t + 3) // 4 + v) * c * gh * gw
    c_in = c
    for c_out, s in zip(cfg.conv_channels, factors):
        n += c_in * c_out * s * s * 9 + c_out * s * s + v * c_out * s * s
        c_in = c_out
    return n + c_in * 3 * 9 + 3 + (c_in * 3 * 9 + 3 + 3 * 3 * 9 + 3) * cfg.compensation


def parse_method_config(data: Optional[bytes], source: str = "<bytes>") -> StreamConfig:
    """METHOD_CONFIG bytes → StreamConfig, or CorruptChunkError naming the file and the field."""
    return parse_method_config_json(data, validate_method_config, MAX_METHOD_CONFIG_BYTES, source)


# ------------------------------------------------------------------------------ weights payload
_U16, _U32, _F64 = struct.Struct("<H"), struct.Struct("<I"), struct.Struct("<d")


def encode_weights(units: Dict[str, List[Tuple[torch.Tensor, float]]]) -> bytes:
    """name -> [(symbols, m)] (compress.quantize_params order) → INR_WEIGHTS payload."""
    out = [MAGIC, _U32.pack(len(units))]
    for name, us in units.items():
        nb = name.encode("utf-8")
        out += [_U16.pack(len(nb)), nb, _U32.pack(len(us))]
        for q, m in us:
            data = best_payload(q)
            out += [_F64.pack(m), _U32.pack(len(data)), data]
    return b"".join(out)


KIND_LAPLACE, KIND_CATEGORICAL = 0, 1


def best_payload(q: torch.Tensor) -> bytes:
    """u8 kind + the smaller of the factorized-Laplace payload (4.4) and the own-histogram payload (4.8)."""
    lap = compress_int_tensor(q)
    cat = compress_categorical(q) if q.numel() else None
    if cat is not None and len(cat) < len(lap):
        return bytes([KIND_CATEGORICAL]) + cat
    return bytes([KIND_LAPLACE]) + lap


def read_payload(data: bytes, shape: Tuple[int, ...]) -> torch.Tensor:
    if not data:
        raise TruncatedError("empty tensor payload", where="INR_WEIGHTS")
    if data[0] == KIND_LAPLACE:
        return decompress_int_tensor(data[1:], expected_shape=shape)
    if data[0] == KIND_CATEGORICAL:
        return decompress_categorical(data[1:], expected_shape=shape)
    raise CorruptChunkError(f"unknown tensor payload kind {data[0]}", where="INR_WEIGHTS")


def decode_weights(
    data: bytes, expected: Dict[str, Tuple[int, ...]], bits: int
) -> Dict[str, List[Tuple[torch.Tensor, float]]]:
    """INR_WEIGHTS payload → name -> [(symbols, m)]; names, unit counts and shapes must be exactly `expected`
    (name -> full tensor shape; ``PER_ROW`` tensors: one unit per row)."""
    levels = (1 << (bits - 1)) - 1
    pos = 0

    def take(n: int, what: str) -> bytes:
        nonlocal pos
        if pos + n > len(data):
            raise TruncatedError(f"{what} truncated", where="INR_WEIGHTS", offset=pos)
        b = data[pos : pos + n]
        pos += n
        return b

    if take(4, "magic") != MAGIC:
        raise CorruptChunkError("not an INR_WEIGHTS payload (bad magic)", where="INR_WEIGHTS", offset=0)
    (count,) = _U32.unpack(take(4, "count"))
    if count != len(expected):
        raise CorruptChunkError(f"{count} tensors, expected {len(expected)}", where="INR_WEIGHTS", offset=4)
    out: Dict[str, List[Tuple[torch.Tensor, float]]] = {}
    for _ in range(count):
        (nl,) = _U16.unpack(take(2, "name length"))
        try:
            name = take(nl, "name").decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptChunkError("tensor name is not utf-8", where="INR_WEIGHTS", offset=pos) from None
        if name not in expected or name in out:
            raise CorruptChunkError(f"unexpected tensor {name!r}", where="INR_WEIGHTS", offset=pos)
        shape = expected[name]
        n_units, unit_shape = (shape[0], shape[1:]) if name in PER_ROW else (1, shape)
        (got_units,) = _U32.unpack(take(4, "unit count"))
        if got_units != n_units:
            raise CorruptChunkError(f"{name}: {got_units} units, expected {n_units}", where="INR_WEIGHTS", offset=pos)
        us = []
        for _ in range(n_units):
            (m,) = _F64.unpack(take(8, "peak"))
            if not (math.isfinite(m) and 0.0 < m <= 1.0):
                raise CorruptChunkError(f"{name}: tanh peak {m} outside (0, 1]", where="INR_WEIGHTS", offset=pos - 8)
            (ln,) = _U32.unpack(take(4, "payload length"))
            try:
                q = read_payload(take(ln, f"{name} payload"), tuple(unit_shape))
            except BitstreamError as exc:
                raise exc.in_context(where=f"INR_WEIGHTS {name}") from None
            if q.numel() and int(q.abs().max()) > levels:
                raise CorruptChunkError(f"{name}: symbol beyond ±{levels}", where="INR_WEIGHTS", offset=pos)
            us.append((q, m))
        out[name] = us
    if pos != len(data):
        raise CorruptChunkError(f"{len(data) - pos} trailing bytes", where="INR_WEIGHTS", offset=pos)
    return out


def split_units(units: Dict[str, List[Tuple[torch.Tensor, float]]]) -> Tuple[Dict[str, List], List[Dict[str, List]]]:
    """(globals: every tensor but g1, per frame: {"g1": [row t]})."""
    glob = {n: u for n, u in units.items() if n not in PER_ROW}
    rows = units.get("g1", [])
    return glob, [{"g1": [r]} for r in rows]


def coding_stats(units: Dict[str, List[Tuple[torch.Tensor, float]]], coded_bytes: int) -> Dict[str, Any]:
    """Symbols, zero share, our coded bytes, and what Huffman / raw 8-bit would give (comparisons only)."""
    syms = np.concatenate([q.reshape(-1).numpy() for us in units.values() for q, _ in us])
    return {
        "symbols": int(syms.size),
        "zero_fraction": float((syms == 0).mean()),
        "coded_bytes_constriction": int(coded_bytes),
        "huffman_bytes_comparison": int(math.ceil(huffman_bits(syms) / 8)),
        "raw_8bit_bytes_comparison": int(syms.size),
    }


# ------------------------------------------------------------------------------ HEVC
def decode_video_stream(data: bytes, n_frames: int, height: int, width: int, source: str = "<bytes>") -> torch.Tensor:
    """The VIDEO_STREAM chunk (HEVC elementary stream) → uint8 T × H × W × 3, or CorruptChunkError."""
    import av

    frames = []
    try:
        with av.open(io.BytesIO(data), mode="r", format="hevc") as c:
            for f in c.decode(video=0):
                if f.height != height or f.width != width:
                    raise ValueError(f"frame of {f.width}x{f.height}, expected {width}x{height}")
                frames.append(torch.from_numpy(f.to_ndarray(format="rgb24")))
                if len(frames) > n_frames:
                    break
    except (av.error.FFmpegError, ValueError, EOFError) as exc:  # type: ignore[attr-defined]
        raise CorruptChunkError(
            f"HEVC stream does not decode ({type(exc).__name__}: {exc})", source=source, where="VIDEO_STREAM"
        ) from None
    if len(frames) != n_frames:
        raise CorruptChunkError(
            f"HEVC stream holds {len(frames)} frames, expected {n_frames}", source=source, where="VIDEO_STREAM"
        )
    return torch.stack(frames)


# ------------------------------------------------------------------------------ decoded frame
@dataclass
class DecodedViews:
    """Every coded view at one frame: ``images[i]`` is camera ``cameras[i]`` (uint8 H × W × 3)."""

    frame_idx: int
    is_iframe: bool
    images: torch.Tensor
    cam_ids: List[int]

    def to_state(self) -> Dict[str, Any]:
        return {"frame_idx": self.frame_idx, "images": self.images, "cam_ids": list(self.cam_ids)}


class SharedState:
    """What the GLOBALS give: the network with every parameter but g1 set, and the decoded basic view."""

    def __init__(self, cfg: StreamConfig, chunks: Sequence[Tuple[int, bytes]], source: str = "<bytes>") -> None:
        by_type: Dict[int, List[bytes]] = {}
        for t, b in chunks:
            by_type.setdefault(int(t), []).append(b)
        for t in (ChunkType.VIDEO_STREAM, ChunkType.INR_WEIGHTS):
            if len(by_type.get(int(t), [])) != 1:
                raise CorruptChunkError(f"GLOBALS need exactly one {t.name} chunk", source=source, where="GLOBALS")
        self.cfg = cfg
        self.net = cfg.network()
        shapes = {n: tuple(p.shape) for n, p in self.net.named_parameters() if n not in PER_ROW}
        try:
            units = decode_weights(by_type[int(ChunkType.INR_WEIGHTS)][0], shapes, cfg.bits)
        except BitstreamError as exc:
            raise exc.in_context(source=source, where="GLOBALS") from None
        with torch.no_grad():
            for n, p in self.net.named_parameters():
                if n in units:
                    p.copy_(dequantize_units(n, units[n], cfg.bits))
        self.basic = decode_video_stream(
            by_type[int(ChunkType.VIDEO_STREAM)][0], cfg.n_frames, cfg.height, cfg.width, source
        )
        self.g1_shape = tuple(self.net.g1.shape[1:])

    def decode_frame(self, frame: int, chunks: Sequence[Tuple[int, bytes]]) -> DecodedViews:
        from nerfstudio_vvc.methods.mv_inr.train import render_frame

        cfg = self.cfg
        if not 0 <= frame < cfg.n_frames:
            raise CorruptChunkError(f"frame {frame} is outside the {cfg.n_frames} coded frames", where=f"frame {frame}")
        weights = [b for t, b in chunks if int(t) == int(ChunkType.INR_WEIGHTS)]
        if len(weights) != 1:
            raise CorruptChunkError("a frame needs exactly one INR_WEIGHTS chunk", where=f"frame {frame}")
        units = decode_weights(weights[0], {"g1": (1, *self.g1_shape)}, cfg.bits)
        with torch.no_grad():
            self.net.g1[frame].copy_(dequantize_units("g1", units["g1"], cfg.bits)[0])
        basic_t = self.basic[frame]
        coded = render_frame(self.net, frame, len(cfg.inr_views), basic_t if cfg.compensation else None)
        images = torch.empty(len(cfg.cameras), cfg.height, cfg.width, 3, dtype=torch.uint8)
        images[cfg.basic] = basic_t
        images[cfg.inr_views] = coded
        return DecodedViews(frame, True, images, [c.cam_id for c in cfg.cameras])


# ------------------------------------------------------------------------------ the method-codec contract
@dataclass
class CodedGlobals:
    """What `MVInrCodec.encode_globals` codes: the basic view's HEVC stream and the network's quantized units (all
    parameters but the per-frame rows of g1; `split_units`)."""

    hevc: bytes
    units: Dict[str, List[Tuple[torch.Tensor, float]]]


class MVInrCodec:
    """vvc-mv-inr under the method-codec contract (`codec/method_codec.py`): the network and the basic view's HEVC
    stream in the GLOBALS; one time-grid row per frame (every frame an I-frame; frame payload: that row's units)."""

    method_id = METHOD_ID

    def encode_globals(self, config: StreamConfig, payload: CodedGlobals) -> List[Tuple[ChunkType, bytes]]:
        return [(ChunkType.METHOD_CONFIG, config.to_bytes()), (ChunkType.VIDEO_STREAM, payload.hevc),
                (ChunkType.INR_WEIGHTS, encode_weights(payload.units))]

    def encode_frame(self, config: StreamConfig, payload: Dict[str, List[Tuple[torch.Tensor, float]]],
                     prev: Optional[DecodedViews]) -> List[Tuple[ChunkType, bytes]]:
        return [(ChunkType.INR_WEIGHTS, encode_weights(payload))]

    def parse_config(self, data: Optional[bytes], source: str = "<bytes>") -> StreamConfig:
        return parse_method_config(data, source=source)

    def decode_globals(self, config: StreamConfig, global_chunks: Sequence[Tuple[int, bytes]],
                       source: str = "<bytes>") -> SharedState:
        return SharedState(config, global_chunks, source=source)

    def decode_frame(self, config: StreamConfig, shared: SharedState, record: Any,
                     prev: Optional[DecodedViews]) -> DecodedViews:
        try:
            return shared.decode_frame(record.frame_idx, record.chunks)
        except BitstreamError as exc:
            raise exc.in_context(source=record.source, where=f"frame {record.frame_idx}") from None


CODEC = MVInrCodec()
