"""Binary mask coding: bit-pack + LZMA (as in the rate-aware paper) or range-coded Bernoulli,
whichever is smaller; the payload's first byte says which.

Payload: u8 method | u8 ndim | ndim x u32 shape | body
  method 0: body = LZMA (xz container) of numpy.packbits(mask.ravel())  (big-endian bit order)
  method 1: body = u32 p1 (P(1) * 2**32, clamped) | CoderSession stream of Bernoulli symbols
"""

from __future__ import annotations

import lzma
import struct
from typing import Optional, Sequence, Union

import numpy as np
import torch

from nerfstudio_vvc.codec.coder import CoderSession
from nerfstudio_vvc.codec.errors import BitstreamError, CorruptChunkError, TruncatedError

METHOD_LZMA, METHOD_RANGE = 0, 1
MAX_MASK_ELEMS = 1 << 27  # a 512^3 occupancy grid; callers that know the shape pass expected_shape
_P1 = struct.Struct("<I")


def _as_bool_np(mask: Union[torch.Tensor, np.ndarray]) -> np.ndarray:
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    return np.asarray(mask).astype(bool)


def _shape_bytes(shape: tuple[int, ...]) -> bytes:
    return struct.pack(f"<B{len(shape)}I", len(shape), *shape)


def compress_mask(mask: Union[torch.Tensor, np.ndarray], method: int | None = None) -> bytes:
    """Encode a boolean array of any shape; ``method`` forces one coder (tests/benchmarks)."""
    m = _as_bool_np(mask)
    if m.ndim > 255:
        raise ValueError("too many dims")
    flat = m.reshape(-1)
    cands = {}
    if method in (None, METHOD_LZMA):
        cands[METHOD_LZMA] = lzma.compress(np.packbits(flat).tobytes(), preset=9 | lzma.PRESET_EXTREME)
    if method in (None, METHOD_RANGE):
        q = int(min(max(round(flat.mean() * 2**32) if flat.size else 0, 1), 2**32 - 1))
        s = CoderSession("encode")
        s.code_bits(flat.astype(np.int64), flat.size, q / 2**32)
        cands[METHOD_RANGE] = _P1.pack(q) + s.to_bytes()
    best = min(cands, key=lambda k: len(cands[k]))
    return bytes([best]) + _shape_bytes(m.shape) + cands[best]


def decompress_mask(data: bytes, expected_shape: Optional[Sequence[int]] = None) -> np.ndarray:
    """Inverse of ``compress_mask``; raises BitstreamError subclasses on bad input.

    ``expected_shape`` (what the method config says): a payload declaring another shape is rejected
    before anything is decompressed or allocated."""
    if len(data) < 2:
        raise TruncatedError("mask payload truncated", where="mask", offset=0)
    method, ndim = data[0], data[1]
    pos = 2 + 4 * ndim
    if len(data) < pos:
        raise TruncatedError("mask shape truncated", where="mask", offset=2)
    shape = struct.unpack_from(f"<{ndim}I", data, 2)
    if expected_shape is not None and tuple(shape) != tuple(int(v) for v in expected_shape):
        raise CorruptChunkError(f"mask shape {tuple(shape)}, expected {tuple(expected_shape)}", where="mask", offset=2)
    n = int(np.prod(shape, dtype=object)) if ndim else 1  # exact: an int64 product could wrap
    if n > MAX_MASK_ELEMS:
        raise CorruptChunkError(f"implausible mask size {n}", where="mask", offset=2)
    body = data[pos:]
    if method == METHOD_LZMA:
        nbytes = (n + 7) // 8
        dec = lzma.LZMADecompressor()
        try:
            raw = dec.decompress(body, max_length=nbytes + 1)
        except lzma.LZMAError as e:
            raise CorruptChunkError(f"LZMA error ({e})", where="mask", offset=pos) from None
        if len(raw) != nbytes or not dec.eof or dec.unused_data:
            raise CorruptChunkError(f"LZMA body gives {len(raw)} bytes, expected {nbytes}", where="mask", offset=pos)
        bits = np.unpackbits(np.frombuffer(raw, np.uint8), count=n)
        if n % 8 and np.frombuffer(raw, np.uint8)[-1] & ((1 << (8 - n % 8)) - 1):
            raise CorruptChunkError("non-zero padding bits", where="mask", offset=pos)
    elif method == METHOD_RANGE:
        if len(body) < _P1.size:
            raise TruncatedError("mask probability truncated", where="mask", offset=pos)
        (q,) = _P1.unpack_from(body, 0)
        if not 1 <= q < 2**32:
            raise CorruptChunkError("bad mask probability", where="mask", offset=pos)
        s = CoderSession("decode", body[_P1.size :], where="mask")
        min_bits = -np.log2(max(q, 2**32 - q) / 2**32)
        if n > 2 * (8 * len(body) + 256) / max(min_bits, 1e-300) + 4096:
            raise CorruptChunkError("mask size implausible for payload length", where="mask", offset=pos)
        bits = s.code_bits(None, n, q / 2**32)
    else:
        raise CorruptChunkError(f"unknown mask method {method}", where="mask", offset=0)
    return bits.astype(bool).reshape(shape)


__all__ = ["compress_mask", "decompress_mask", "METHOD_LZMA", "METHOD_RANGE", "BitstreamError"]
