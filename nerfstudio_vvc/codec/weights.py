"""Quantized weight / integer tensor coding with factorized Laplace models.

Integer tensor payload (``compress_int_tensor``):
  u8 ndim | ndim x u32 shape | u32 G (groups along dim 0, or 1) | G x (f64 mean, f64 scale)
  | range header (i32 lo, i32 hi, u8 escape) | CoderSession stream (groups coded in order)
State dict payload (``compress_state_dict``):
  b"SDC1" | u32 count | per tensor: u16 name_len, name utf-8, u8 kind (0 quantized float,
  1 integer), u8 dtype code, f64 step, u32 payload_len, int-tensor payload
Dequantization is ``(sym.double() * step).to(dtype)`` on both sides, hence bit-identical.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from typing import Mapping, Optional

import numpy as np
import torch

from nerfstudio_vvc.codec.coder import CoderSession, choose_range, pack_range, unpack_range
from nerfstudio_vvc.codec.errors import CorruptChunkError, TruncatedError

MAX_GROUPS = 256
MIN_GROUP_ELEMS = 256  # per-row models only pay off (16 header bytes each) for long rows
MAX_ELEMS = 1 << 26  # 512 MiB of int64 symbols; callers that know the shape pass expected_shape
_F2 = struct.Struct("<dd")
_DTYPES = {
    0: torch.float32,
    1: torch.float16,
    2: torch.bfloat16,
    3: torch.float64,
    4: torch.int64,
    5: torch.int32,
    6: torch.int16,
    7: torch.int8,
    8: torch.uint8,
    9: torch.bool,
}
_DTYPE_CODES = {v: k for k, v in _DTYPES.items()}
_INT_RANGE = {
    torch.int64: (-(1 << 63), (1 << 63) - 1),
    torch.int32: (-(1 << 31), (1 << 31) - 1),
    torch.int16: (-(1 << 15), (1 << 15) - 1),
    torch.int8: (-128, 127),
    torch.uint8: (0, 255),
    torch.bool: (0, 1),
}


def _groups(shape: tuple[int, ...]) -> int:
    if len(shape) < 2 or not 1 <= shape[0] <= MAX_GROUPS:
        return 1
    n = int(np.prod(shape, dtype=np.int64))
    return shape[0] if n // shape[0] >= MIN_GROUP_ELEMS else 1


def compress_int_tensor(sym: torch.Tensor | np.ndarray) -> bytes:
    """Range-code an integer tensor with a factorized (per-row for ndim>=2) Laplace model."""
    a = sym.detach().cpu().numpy() if isinstance(sym, torch.Tensor) else np.asarray(sym)
    a = a.astype(np.int64)
    shape = tuple(int(n) for n in a.shape)
    g = _groups(shape)
    rows = a.reshape(g, -1)
    lo, hi, esc = choose_range(a.reshape(-1))
    params = []
    for r in rows:
        if r.size == 0:
            params.append((0.0, 1.0))
            continue
        med = float(np.median(r))
        scale = float(np.mean(np.abs(r - med))) + 0.05  # ML estimate of Laplace scale (+ floor)
        params.append((med, scale))
    s = CoderSession("encode")
    for r, (mu, sc) in zip(rows, params):
        s.code_laplace_fixed(r, r.size, mu, sc, lo, hi, esc)
    head = struct.pack(f"<B{len(shape)}II", len(shape), *shape, g) + b"".join(_F2.pack(*p) for p in params)
    return head + pack_range(lo, hi, esc) + s.to_bytes()


def peek_int_tensor_shape(data: bytes) -> tuple[int, ...]:
    """The shape an int-tensor payload declares (nothing is decoded or allocated)."""
    if len(data) < 1:
        raise TruncatedError("int tensor payload empty", where="int tensor", offset=0)
    ndim = data[0]
    if len(data) < 1 + 4 * ndim + 4:
        raise TruncatedError("int tensor shape truncated", where="int tensor", offset=1)
    return tuple(struct.unpack_from(f"<{ndim}I", data, 1))


def decompress_int_tensor(data: bytes, expected_shape: Optional[tuple[int, ...]] = None) -> torch.Tensor:
    """Inverse of ``compress_int_tensor`` (int64 tensor); a payload whose shape is not
    ``expected_shape`` (when given) is rejected before decoding."""
    shape = list(peek_int_tensor_shape(data))
    ndim = len(shape)
    if expected_shape is not None and tuple(shape) != tuple(expected_shape):
        raise CorruptChunkError(
            f"tensor shape {tuple(shape)}, expected {tuple(expected_shape)}", where="int tensor", offset=1
        )
    pos = 1 + 4 * ndim + 4
    (g,) = struct.unpack_from("<I", data, 1 + 4 * ndim)
    n = int(np.prod(shape, dtype=object)) if ndim else 1  # exact (an int64 product could wrap)
    if n > MAX_ELEMS or g != _groups(tuple(shape)):
        raise CorruptChunkError(f"implausible tensor shape {shape} / groups {g}", where="int tensor", offset=1)
    if len(data) < pos + g * _F2.size:
        raise TruncatedError("int tensor model params truncated", where="int tensor", offset=pos)
    params = [_F2.unpack_from(data, pos + i * _F2.size) for i in range(g)]
    pos += g * _F2.size
    if not all(np.isfinite(p).all() and p[1] > 0 for p in params):
        raise CorruptChunkError("non-finite model params", where="int tensor", offset=pos)
    lo, hi, esc, pos = unpack_range(data, pos, where="int tensor")
    s = CoderSession("decode", data[pos:], where="int tensor")
    # refuse element counts the payload cannot possibly hold: each symbol costs at least
    # -log2(P_max) bits with P_max <= 1 - exp(-1/(2 scale)) (bound with 2x slack)
    min_bits = min(-np.log2(-np.expm1(-0.5 / p[1])) if p[1] < 1e6 else 1e-12 for p in params)
    # constriction's leaky 24-bit quantizer gives every other symbol of [lo, hi] >= 2**-24
    min_bits = max(min_bits, -np.log2(1.0 - (hi - lo) * 2.0**-24))
    if n > 2 * (8 * len(data) + 256) / max(min_bits, 1e-300) + 4096:
        raise CorruptChunkError("element count implausible for payload size", where="int tensor", offset=1)
    per = n // g if g else 0
    rows = [s.code_laplace_fixed(None, per, mu, sc, lo, hi, esc) for mu, sc in params]
    s.finish_decode()
    out = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    return torch.from_numpy(out.reshape(shape))


def _varints(values: np.ndarray) -> bytes:
    out = bytearray()
    for v in np.asarray(values, dtype=np.int64).tolist():
        while True:
            b = v & 0x7F
            v >>= 7
            out.append(b | (0x80 if v else 0))
            if not v:
                break
    return bytes(out)


def _read_varints(data: bytes, pos: int, count: int) -> tuple[list[int], int]:
    vals = []
    for _ in range(count):
        v, shift = 0, 0
        while True:
            if pos >= len(data):
                raise TruncatedError("histogram truncated", where="categorical tensor", offset=pos)
            b = data[pos]
            pos += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
            if shift > 56:
                raise CorruptChunkError("histogram count too large", where="categorical tensor", offset=pos)
        vals.append(v)
    return vals, pos


MAX_CATEGORIES = 1 << 16


def compress_categorical(sym: torch.Tensor | np.ndarray) -> bytes:
    """Range-code an integer tensor with its own histogram as the model (worth it when the symbols are far from
    Laplace, e.g. pruned weights: a spike at 0 beside a wide spread).

    Payload: u8 ndim | ndim × u32 shape | i32 lo | u32 K | K varint counts of lo..lo+K−1 | CoderSession stream."""
    a = (sym.detach().cpu().numpy() if isinstance(sym, torch.Tensor) else np.asarray(sym)).astype(np.int64)
    shape = tuple(int(n) for n in a.shape)
    flat = a.reshape(-1)
    lo = int(flat.min()) if flat.size else 0
    hi = int(flat.max()) if flat.size else 0
    if hi - lo + 1 > MAX_CATEGORIES:
        raise ValueError(f"symbol span {hi - lo + 1} exceeds {MAX_CATEGORIES} categories")
    counts = np.bincount(flat - lo, minlength=hi - lo + 1) if flat.size else np.ones(1, np.int64)
    s = CoderSession("encode")
    if flat.size:
        s.code_categorical(flat - lo, flat.size, counts)
    head = struct.pack(f"<B{len(shape)}IiI", len(shape), *shape, lo, counts.size)
    return head + _varints(counts) + s.to_bytes()


def decompress_categorical(data: bytes, expected_shape: tuple[int, ...]) -> torch.Tensor:
    """Inverse of ``compress_categorical``; the shape must be `expected_shape` and the counts must add up to it."""
    shape = peek_int_tensor_shape(data)
    if tuple(shape) != tuple(expected_shape):
        raise CorruptChunkError(
            f"tensor shape {tuple(shape)}, expected {tuple(expected_shape)}", where="categorical tensor", offset=1
        )
    n = int(np.prod(shape, dtype=object)) if shape else 1
    pos = 1 + 4 * len(shape)
    if len(data) < pos + 8:
        raise TruncatedError("categorical header truncated", where="categorical tensor", offset=pos)
    lo, k = struct.unpack_from("<iI", data, pos)
    pos += 8
    if not 1 <= k <= MAX_CATEGORIES:
        raise CorruptChunkError(f"{k} categories (1..{MAX_CATEGORIES})", where="categorical tensor", offset=pos - 4)
    counts, pos = _read_varints(data, pos, k)
    if n and sum(counts) != n:
        raise CorruptChunkError(
            f"histogram counts {sum(counts)} symbols, the tensor has {n}", where="categorical tensor", offset=pos
        )
    s = CoderSession("decode", data[pos:], where="categorical tensor")
    out = s.code_categorical(None, n, np.asarray(counts)) if n else np.zeros(0, np.int64)
    s.finish_decode()
    return torch.from_numpy(out.astype(np.int64) + lo).reshape(shape)


def _step_for(t: torch.Tensor, step: Optional[float], bits: Optional[int]) -> float:
    if step is not None:
        return float(step)
    if bits is None:
        raise ValueError("give step or bits")
    m = float(t.detach().abs().max()) if t.numel() else 0.0
    return m / (2 ** (bits - 1) - 1) if m > 0 else 1.0


def compress_state_dict(
    state_dict: Mapping[str, torch.Tensor], step: Optional[float] = None, bits: Optional[int] = None
) -> tuple[bytes, "OrderedDict[str, torch.Tensor]"]:
    """Quantize float tensors with a per-tensor step (given, or from ``bits``), range-code them.

    Returns (payload, dequantized state dict) -- the latter equals ``decompress_state_dict(payload)``
    bit for bit, so the encoder can render with exactly what the decoder will get."""
    parts = [b"SDC1", struct.pack("<I", len(state_dict))]
    deq: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    for name, t in state_dict.items():
        t = t.detach().cpu()
        if t.dtype not in _DTYPE_CODES:
            raise ValueError(f"unsupported dtype {t.dtype} for {name}")
        nb = name.encode("utf-8")
        if t.is_floating_point():
            st = _step_for(t, step, bits)
            if not (np.isfinite(st) and st > 0):
                raise ValueError(f"bad step {st} for {name}")
            sym = torch.round(t.double() / st).to(torch.int64)
            deq[name] = (sym.double() * st).to(t.dtype)
            kind = 0
        else:
            st, sym, kind = 1.0, t.to(torch.int64), 1
            deq[name] = t.clone()
        payload = compress_int_tensor(sym)
        parts.append(
            struct.pack("<H", len(nb))
            + nb
            + struct.pack("<BBdI", kind, _DTYPE_CODES[t.dtype], st, len(payload))
            + payload
        )
    return b"".join(parts), deq


def decompress_state_dict(
    data: bytes, expected: Optional[Mapping[str, tuple[tuple[int, ...], torch.dtype]]] = None
) -> "OrderedDict[str, torch.Tensor]":
    """Inverse of ``compress_state_dict``. ``expected`` (name -> (shape, dtype), e.g. from the method
    config): the payload must hold exactly these tensors, checked before each one is decoded.
    Dequantized float tensors must be finite."""
    if data[:4] != b"SDC1":
        raise CorruptChunkError("bad state dict magic", where="state dict", offset=0)
    if len(data) < 8:
        raise TruncatedError("state dict header truncated", where="state dict", offset=4)
    (count,) = struct.unpack_from("<I", data, 4)
    pos, out = 8, OrderedDict()
    if count > len(data):
        raise CorruptChunkError(f"implausible tensor count {count}", where="state dict", offset=4)
    if expected is not None and count != len(expected):
        raise CorruptChunkError(f"{count} tensors, expected {len(expected)}", where="state dict", offset=4)
    for i in range(count):
        where = f"state dict tensor #{i}"
        if len(data) - pos < 2:
            raise TruncatedError("name length truncated", where=where, offset=pos)
        (nl,) = struct.unpack_from("<H", data, pos)
        if len(data) - pos - 2 - nl < 14:
            raise TruncatedError("tensor header truncated", where=where, offset=pos)
        try:
            name = data[pos + 2 : pos + 2 + nl].decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptChunkError("bad tensor name", where=where, offset=pos) from None
        kind, code, st, plen = struct.unpack_from("<BBdI", data, pos + 2 + nl)
        pos += 2 + nl + 14
        if plen > len(data) - pos:
            raise TruncatedError(f"tensor payload length {plen} exceeds remaining bytes", where=where, offset=pos)
        if kind not in (0, 1) or code not in _DTYPES or not (np.isfinite(st) and st > 0):
            raise CorruptChunkError("bad tensor header", where=where, offset=pos)
        dtype = _DTYPES[code]
        if name in out:
            raise CorruptChunkError(f"duplicate tensor {name!r}", where=where, offset=pos)
        exp_shape = None
        if expected is not None:
            if name not in expected:
                raise CorruptChunkError(f"unexpected tensor {name!r:.80}", where=where, offset=pos)
            exp_shape, exp_dtype = expected[name]
            if dtype != exp_dtype:
                raise CorruptChunkError(
                    f"tensor {name!r} has dtype {dtype}, expected {exp_dtype}", where=where, offset=pos
                )
        if (kind == 0) != dtype.is_floating_point:
            raise CorruptChunkError(f"tensor kind {kind} does not match dtype {dtype}", where=where, offset=pos)
        try:
            sym = decompress_int_tensor(data[pos : pos + plen], exp_shape)
        except CorruptChunkError as e:
            raise e.in_context(where=where) from None
        pos += plen
        if kind == 0:
            val = (sym.double() * st).to(dtype)
            if not bool(torch.isfinite(val).all()):
                raise CorruptChunkError(
                    f"tensor {name!r} dequantizes to non-finite values", where=where, offset=pos - plen
                )
        else:
            if sym.numel() and (int(sym.min()) < _INT_RANGE[dtype][0] or int(sym.max()) > _INT_RANGE[dtype][1]):
                raise CorruptChunkError(f"tensor {name!r} values outside {dtype}", where=where, offset=pos - plen)
            val = sym.to(dtype)
        out[name] = val
    if pos != len(data):
        raise CorruptChunkError("trailing bytes after state dict", where="state dict", offset=pos)
    return out
