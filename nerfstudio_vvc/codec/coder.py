"""The only module that imports constriction: range coding with quantized Laplace/Gaussian models.

Why a session object: encoder and decoder run the *same* sequence of ``code_*`` calls (Cool-chic
style ``mode="encode"/"decode"``), so model code that computes parameters is written once and
cannot drift between the two sides.  In encode mode a call takes symbols and returns them; in
decode mode it takes ``None`` and returns the decoded symbols.

Escapes: a symbol range ``[lo, hi]`` is part of every call.  When ``escape=True`` the two end
symbols double as escape markers: any value <= lo (>= hi) is coded as lo (hi) and its exact int64
value is stored raw in a side list.  ``choose_range`` picks ``lo``/``hi`` from the data so that no
symbol is ever unencodable and constriction's 24-bit probability floor stays negligible.
"""

from __future__ import annotations

import struct
import zlib
from typing import Literal, Optional

import numpy as np

from nerfstudio_vvc.codec.constants import MAX_CODED_SPAN
from nerfstudio_vvc.codec.errors import BitstreamError, CorruptChunkError, TruncatedError

Mode = Literal["encode", "decode"]
_I32_LO, _I32_HI = -(1 << 31) + 2, (1 << 31) - 2
_SESSION_HDR = struct.Struct("<BII")  # version, n_escapes, n_words
_SESSION_VERSION = 1
_RANGE_HDR = struct.Struct("<iiB")  # lo, hi, escape flag
class _LazyConstriction:
    """`constriction`, imported on first use: importing the codec (e.g. a training model's module, resolved at every
    `ns-train` start through the method entry points) must not load the native coder."""

    def __getattr__(self, name: str):
        import constriction as module

        return getattr(module, name)


constriction = _LazyConstriction()

_MIN_SCALE = 1e-6  # constriction needs scale > 0; tiny scales are legal, zero is not


def choose_range(sym: np.ndarray) -> tuple[int, int, bool]:
    """(lo, hi, escape) covering ``sym``: the full min/max when the span is small, else a clamp
    window around the central mass with boundary escapes."""
    if sym.size == 0:
        return 0, 1, False
    mn, mx = int(sym.min()), int(sym.max())
    if mx - mn <= MAX_CODED_SPAN and mn >= _I32_LO and mx <= _I32_HI:
        return mn, max(mx, mn + 1), False
    center = int(np.clip(np.median(sym), _I32_LO + MAX_CODED_SPAN, _I32_HI - MAX_CODED_SPAN))
    dev = float(np.quantile(np.abs(sym.astype(np.float64) - center), 0.999))
    half = int(min(max(dev, 4.0) + 2, MAX_CODED_SPAN // 2))
    return center - half, center + half, True


def pack_range(lo: int, hi: int, escape: bool) -> bytes:
    return _RANGE_HDR.pack(lo, hi, int(escape))


def unpack_range(data: bytes, pos: int = 0, *, where: str = "range header") -> tuple[int, int, bool, int]:
    if len(data) - pos < _RANGE_HDR.size:
        raise TruncatedError("range header truncated", where=where, offset=pos)
    lo, hi, esc = _RANGE_HDR.unpack_from(data, pos)
    if not (lo < hi and hi - lo <= MAX_CODED_SPAN and esc in (0, 1) and _I32_LO <= lo and hi <= _I32_HI):
        raise CorruptChunkError(f"implausible symbol range [{lo}, {hi}] escape={esc}", where=where, offset=pos)
    return lo, hi, bool(esc), pos + _RANGE_HDR.size


class CoderSession:
    """One range-coded stream plus its escape side list; identical call sequence on both sides."""

    def __init__(self, mode: Mode, data: Optional[bytes] = None, *, where: str = "coded stream") -> None:
        if mode not in ("encode", "decode"):
            raise ValueError(mode)
        self.mode = mode
        self.where = where
        self._escapes: list[np.ndarray] = []
        self._esc_pos = 0
        if mode == "encode":
            self._enc = constriction.stream.queue.RangeEncoder()
            return
        if data is None:
            raise ValueError("decode mode needs data")
        if len(data) < _SESSION_HDR.size:
            raise TruncatedError("coder session header truncated", where=where, offset=0)
        ver, n_esc, n_words = _SESSION_HDR.unpack_from(data, 0)
        if ver != _SESSION_VERSION:
            raise CorruptChunkError(f"unknown coder session version {ver}", where=where, offset=0)
        need = _SESSION_HDR.size + 8 * n_esc + 4 * n_words
        if need != len(data):
            raise (TruncatedError if need > len(data) else CorruptChunkError)(
                f"coder session declares {need} bytes, payload has {len(data)}", where=where, offset=0
            )
        p = _SESSION_HDR.size
        self._esc_all = np.frombuffer(data, dtype="<i8", count=n_esc, offset=p).astype(np.int64)
        words = np.frombuffer(data, dtype="<u4", count=n_words, offset=p + 8 * n_esc).astype(np.uint32)
        self._dec = constriction.stream.queue.RangeDecoder(words)

    # -- escapes
    def _escape_in(self, sym: np.ndarray, lo: int, hi: int, escape: bool) -> np.ndarray:
        if not escape:
            if sym.size and (sym.min() < lo or sym.max() > hi):
                raise ValueError(f"symbols outside [{lo}, {hi}] with escape disabled")
            return sym.astype(np.int32)
        mark = (sym <= lo) | (sym >= hi)
        self._escapes.append(sym[mark].astype(np.int64))
        return np.clip(sym, lo, hi).astype(np.int32)

    def _escape_out(self, coded: np.ndarray, lo: int, hi: int, escape: bool) -> np.ndarray:
        out = coded.astype(np.int64)
        if not escape:
            return out
        mark = (out == lo) | (out == hi)
        n = int(mark.sum())
        if self._esc_pos + n > self._esc_all.size:
            raise CorruptChunkError("escape list exhausted", where=self.where)
        vals = self._esc_all[self._esc_pos : self._esc_pos + n]
        if np.any((out[mark] == lo) & (vals > lo)) or np.any((out[mark] == hi) & (vals < hi)):
            raise CorruptChunkError("escape value inconsistent with its marker", where=self.where)
        out[mark] = vals
        self._esc_pos += n
        return out

    # -- coding calls (same sequence on both sides)
    def _run(
        self, sym: Optional[np.ndarray], model, params: tuple, n: int, lo: int, hi: int, escape: bool
    ) -> np.ndarray:
        if self.mode == "encode":
            if sym is None:
                raise ValueError("encode mode needs symbols")
            sym = np.asarray(sym, dtype=np.int64).reshape(-1)
            if sym.size != n:
                raise ValueError(f"{sym.size} symbols for {n} parameters")
            if n:
                self._enc.encode(self._escape_in(sym, lo, hi, escape), model, *params)
            return sym
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        try:
            coded = self._dec.decode(model, *params) if params else self._dec.decode(model, n)
        except BitstreamError:
            raise
        except Exception as e:  # constriction raises on exhausted/invalid streams
            raise CorruptChunkError(f"range decoder failed ({e})", where=self.where) from None
        return self._escape_out(np.asarray(coded), lo, hi, escape)

    def code_laplace(
        self, sym: Optional[np.ndarray], means: np.ndarray, scales: np.ndarray, lo: int, hi: int, escape: bool = False
    ) -> np.ndarray:
        """Per-symbol quantized Laplace(mean, scale) on [lo, hi]; params are float64 arrays."""
        means = np.clip(np.ascontiguousarray(means, dtype=np.float64).reshape(-1), lo, hi)
        scales = np.maximum(np.ascontiguousarray(scales, dtype=np.float64).reshape(-1), _MIN_SCALE)
        model = constriction.stream.model.QuantizedLaplace(lo, hi)
        return self._run(sym, model, (means, scales), means.size, lo, hi, escape)

    def code_gaussian(
        self, sym: Optional[np.ndarray], means: np.ndarray, stds: np.ndarray, lo: int, hi: int, escape: bool = False
    ) -> np.ndarray:
        """Per-symbol quantized Gaussian(mean, std) on [lo, hi]."""
        means = np.clip(np.ascontiguousarray(means, dtype=np.float64).reshape(-1), lo, hi)
        stds = np.maximum(np.ascontiguousarray(stds, dtype=np.float64).reshape(-1), _MIN_SCALE)
        model = constriction.stream.model.QuantizedGaussian(lo, hi)
        return self._run(sym, model, (means, stds), means.size, lo, hi, escape)

    def code_laplace_fixed(
        self, sym: Optional[np.ndarray], n: int, mean: float, scale: float, lo: int, hi: int, escape: bool = False
    ) -> np.ndarray:
        """``n`` i.i.d. symbols with one quantized Laplace (factorized model)."""
        mean = float(min(max(mean, lo), hi))
        model = constriction.stream.model.QuantizedLaplace(lo, hi, mean, max(float(scale), _MIN_SCALE))
        return self._run(sym, model, (), n, lo, hi, escape)

    def code_categorical(self, sym: Optional[np.ndarray], n: int, counts: np.ndarray) -> np.ndarray:
        """``n`` i.i.d. symbols in [0, len(counts)) with the empirical distribution `counts` (integers, as both sides
        have them: probabilities = counts / sum in float64, bit-identical everywhere)."""
        counts = np.asarray(counts, dtype=np.int64)
        if counts.ndim != 1 or counts.size == 0 or counts.min() < 0 or counts.sum() <= 0:
            raise CorruptChunkError("invalid categorical counts", where=self.where)
        if counts.size == 1:  # one possible symbol: nothing to code (constriction needs two categories)
            if self.mode == "encode":
                sym = np.asarray(sym, dtype=np.int64).reshape(-1)
                if sym.size != n or np.any(sym != 0):
                    raise ValueError("symbols outside the single category")
                return sym
            return np.zeros(n, dtype=np.int64)
        probs = counts.astype(np.float64) / float(counts.sum())
        model = constriction.stream.model.Categorical(probs, perfect=False)
        return self._run(sym, model, (), n, 0, counts.size - 1, False)

    def code_bits(self, bits: Optional[np.ndarray], n: int, p_one: float) -> np.ndarray:
        """``n`` binary symbols with a fixed Bernoulli(p_one) model."""
        p = float(min(max(p_one, 1e-6), 1 - 1e-6))
        model = constriction.stream.model.Bernoulli(p, perfect=False)
        return self._run(bits, model, (), n, 0, 1, False)

    # -- finishing
    def to_bytes(self) -> bytes:
        if self.mode != "encode":
            raise ValueError("to_bytes() is for encode mode")
        words = np.asarray(self._enc.get_compressed(), dtype="<u4")
        esc = np.concatenate(self._escapes).astype("<i8") if self._escapes else np.zeros(0, "<i8")
        return _SESSION_HDR.pack(_SESSION_VERSION, esc.size, words.size) + esc.tobytes() + words.tobytes()

    def finish_decode(self) -> None:
        """Check that the decoder consumed all escapes (catches some silent mismatches)."""
        if self.mode == "decode" and self._esc_pos != self._esc_all.size:
            raise CorruptChunkError("unused escape values left in stream", where=self.where)


def crc32(data: bytes) -> int:
    return zlib.crc32(data)
