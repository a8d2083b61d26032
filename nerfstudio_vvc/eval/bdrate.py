"""Bjøntegaard delta metrics (BD-rate, BD-quality) with piecewise-cubic Hermite interpolation.

Variant
-------
This is the **PCHIP** variant used by the JCT-VC / JVET common-test-condition spreadsheets
(JCTVC-L1100, JVET-T2010) and by the ``bjontegaard`` PyPI package's ``method="pchip"`` — not the
original single cubic polynomial fit of VCEG-M33, which can oscillate on real RD points.

* **BD-rate**: for each curve, ``log10(rate)`` is interpolated as a function of quality with a
  monotone piecewise-cubic Hermite interpolant (``scipy.interpolate.PchipInterpolator``, Fritsch–
  Carlson/Moler end conditions, identical to the spreadsheet's ``pchipend``). Both interpolants are
  integrated *exactly* (piecewise polynomial integration, no sampling) over the overlapping quality
  interval ``[max(min q_A, min q_B), min(max q_A, max q_B)]``; the mean log-rate difference ``Δ``
  gives ``BD-rate = (10**Δ − 1) · 100`` %. Negative = the test curve needs fewer bits for the same
  quality.
* **BD-quality** (BD-PSNR for PSNR): quality interpolated as a function of ``log10(rate)``,
  integrated over the overlapping log-rate interval; result = mean quality difference (test −
  anchor) in the metric's own unit (dB for PSNR). Positive = the test curve is better.

Any quality metric that increases with rate works (PSNR, SSIM, MS-SSIM, ``-LPIPS`` ...). For a
metric where *lower is better* (LPIPS) pass its negation.

Input requirements (violations raise :class:`BDRateError`, a ``ValueError``):

* at least :data:`MIN_POINTS` = 4 RD points per curve (the JVET convention; PCHIP itself would
  work with 2, but BD numbers from 2–3 points are not comparable with the literature). ``min_points``
  lowers it (not below 2) where a benchmark can afford only 3 points per curve and says so next to
  the figure (``bench/bench_panoptic_protocol.py``);
* finite values (no NaN/inf), strictly positive rates;
* after sorting by rate, rates strictly increasing (no duplicates) and quality strictly increasing
  (a non-monotonic RD curve cannot be inverted for BD-rate and usually signals a broken run);
* the two curves' quality ranges (BD-rate) / log-rate ranges (BD-quality) must overlap on an
  interval of non-zero length.

Rates may be in any unit (bits, bytes, KB/frame, bpp) as long as both curves use the same one;
BD-rate is a ratio and BD-quality uses log-rate differences only.
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np

__all__ = ["BDRateError", "MIN_POINTS", "bd_rate", "bd_quality", "bd_psnr", "bd_figures", "bd_text", "pareto"]

MIN_POINTS = 4


class BDRateError(ValueError):
    """Raised when two RD curves cannot be compared with the Bjøntegaard metric."""


def _prepare(
    rate: Sequence[float], quality: Sequence[float], name: str, min_points: int = MIN_POINTS
) -> Tuple[np.ndarray, np.ndarray]:
    r = np.asarray(rate, dtype=np.float64).reshape(-1)
    q = np.asarray(quality, dtype=np.float64).reshape(-1)
    if r.shape != q.shape:
        raise BDRateError(f"{name} curve: {r.size} rates but {q.size} quality values")
    if min_points < 2:
        raise ValueError(f"min_points must be at least 2, got {min_points}")
    if r.size < min_points:
        raise BDRateError(f"{name} curve: {r.size} RD points, at least {min_points} are required")
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(q))):
        raise BDRateError(f"{name} curve: contains NaN or infinite values (rate={r.tolist()}, quality={q.tolist()})")
    if np.any(r <= 0):
        raise BDRateError(f"{name} curve: rates must be strictly positive, got {r.tolist()}")
    order = np.argsort(r, kind="stable")
    r, q = r[order], q[order]
    if np.any(np.diff(r) <= 0):
        raise BDRateError(f"{name} curve: duplicate rates {r.tolist()}")
    if np.any(np.diff(q) <= 0):
        raise BDRateError(
            f"{name} curve: quality is not strictly increasing with rate (non-monotonic RD curve): "
            f"rate={r.tolist()}, quality={q.tolist()}"
        )
    return r, q


def _mean_diff(x_a: np.ndarray, y_a: np.ndarray, x_b: np.ndarray, y_b: np.ndarray, what: str) -> float:
    """Mean of (interp_b − interp_a) over the overlap of the two x ranges (x increasing)."""
    from scipy.interpolate import PchipInterpolator

    lo = max(x_a[0], x_b[0])
    hi = min(x_a[-1], x_b[-1])
    if not hi > lo:
        raise BDRateError(
            f"the curves' {what} ranges do not overlap: anchor [{x_a[0]:.6g}, {x_a[-1]:.6g}], "
            f"test [{x_b[0]:.6g}, {x_b[-1]:.6g}]"
        )
    int_a = PchipInterpolator(x_a, y_a, extrapolate=False).integrate(lo, hi)
    int_b = PchipInterpolator(x_b, y_b, extrapolate=False).integrate(lo, hi)
    return float((int_b - int_a) / (hi - lo))


def bd_rate(
    rate_anchor: Sequence[float],
    quality_anchor: Sequence[float],
    rate_test: Sequence[float],
    quality_test: Sequence[float],
    min_points: int = MIN_POINTS,
) -> float:
    """BD-rate in percent of the test curve relative to the anchor (PCHIP variant, see module doc).

    Negative means the test codec saves bits at equal quality. Points may be given in any order.
    """
    ra, qa = _prepare(rate_anchor, quality_anchor, "anchor", min_points)
    rt, qt = _prepare(rate_test, quality_test, "test", min_points)
    # x = quality (increasing because we validated monotonicity), y = log10(rate)
    delta = _mean_diff(qa, np.log10(ra), qt, np.log10(rt), "quality")
    return float((10.0**delta - 1.0) * 100.0)


def bd_quality(
    rate_anchor: Sequence[float],
    quality_anchor: Sequence[float],
    rate_test: Sequence[float],
    quality_test: Sequence[float],
    min_points: int = MIN_POINTS,
) -> float:
    """Mean quality difference (test − anchor) at equal rate, in the quality metric's unit."""
    ra, qa = _prepare(rate_anchor, quality_anchor, "anchor", min_points)
    rt, qt = _prepare(rate_test, quality_test, "test", min_points)
    return _mean_diff(np.log10(ra), qa, np.log10(rt), qt, "log-rate")


def bd_psnr(
    rate_anchor: Sequence[float],
    psnr_anchor: Sequence[float],
    rate_test: Sequence[float],
    psnr_test: Sequence[float],
) -> float:
    """BD-PSNR in dB (alias of :func:`bd_quality` for PSNR curves)."""
    return bd_quality(rate_anchor, psnr_anchor, rate_test, psnr_test)


def bd_figures(anchor, test, sign: int = 1, min_points: int = MIN_POINTS) -> Dict[str, object]:
    """BD-rate and BD-quality of two (rates, qualities) curves, each on its own: ``bd_rate_pct`` / ``bd_quality``, or
    ``bd_rate_error`` / ``bd_quality_error`` with the reason (``error`` alone when neither is computable). A
    lower-is-better metric (``sign`` −1, LPIPS) is negated for the fit and its BD-quality flipped back, so BD-quality
    is always (test − anchor) in the metric's own unit."""
    qa, qt = [sign * q for q in anchor[1]], [sign * q for q in test[1]]
    out: Dict[str, object] = {}
    try:  # each figure on its own: curves that overlap in quality but not in rate still get a BD-rate
        out["bd_rate_pct"] = bd_rate(anchor[0], qa, test[0], qt, min_points)
    except BDRateError as exc:
        out["bd_rate_error"] = str(exc)
    try:
        out["bd_quality"] = sign * bd_quality(anchor[0], qa, test[0], qt, min_points)
    except BDRateError as exc:
        out["bd_quality_error"] = str(exc)
    if "bd_rate_pct" not in out and "bd_quality" not in out:
        return {"error": str(out["bd_rate_error"])}
    return out


def bd_text(figures: Dict[str, object]) -> str:
    """One line for a `bd_figures` result: "BD-rate -12.3 %, BD-quality +0.456" (or what is not computable and why)."""
    if "error" in figures:
        return f"not computable ({figures['error']})"
    rate = (f"BD-rate {figures['bd_rate_pct']:+.1f} %" if "bd_rate_pct" in figures
            else f"BD-rate not computable ({figures['bd_rate_error']})")
    qual = (f"BD-quality {figures['bd_quality']:+.3f}" if "bd_quality" in figures
            else f"BD-quality not computable ({figures['bd_quality_error']})")
    return f"{rate}, {qual}"


def pareto(rates: Sequence[float], quals: Sequence[float]) -> Tuple[List[int], List[int]]:
    """Split a curve's points into (kept, dropped) indices: a point is dropped when another point of the
    same curve has no more bytes and at least its quality (one of them strictly). Dropped points are not on
    the codec's operational RD curve (nobody would pick them), and keeping them would make the curve
    non-monotonic, which BD-rate rejects."""
    kept, dropped = [], []
    for i, (r, q) in enumerate(zip(rates, quals)):
        dominated = any(
            (rj <= r and qj >= q) and (rj < r or qj > q) for j, (rj, qj) in enumerate(zip(rates, quals)) if j != i
        )
        (dropped if dominated else kept).append(i)
    return kept, dropped
