"""BD-rate / BD-PSNR (PCHIP variant): exact shifts, independent reference, error cases."""

import math

import numpy as np
import pytest

from nerfstudio_vvc.eval.bdrate import BDRateError, bd_psnr, bd_quality, bd_rate

# RD points from the `bjontegaard` package README (ffmpeg libx265, two presets)
RATE_A = [9487.76, 4593.60, 2486.44, 1358.24]
PSNR_A = [40.037, 38.615, 36.845, 34.851]
RATE_B = [9787.80, 4469.00, 2451.52, 1356.24]
PSNR_B = [40.121, 38.651, 36.970, 34.987]


# ---------------------------------------------------------------- independent reference
def _ref_pchip_slopes(x, y):
    """Fritsch–Carlson / Moler `pchip` derivatives, written out scalar by scalar."""
    n = len(x)
    h = [x[i + 1] - x[i] for i in range(n - 1)]
    delta = [(y[i + 1] - y[i]) / h[i] for i in range(n - 1)]
    d = [0.0] * n
    for k in range(1, n - 1):
        if delta[k - 1] * delta[k] > 0:
            w1 = 2 * h[k] + h[k - 1]
            w2 = h[k] + 2 * h[k - 1]
            d[k] = (w1 + w2) / (w1 / delta[k - 1] + w2 / delta[k])
        else:
            d[k] = 0.0

    def end(h1, h2, del1, del2):
        v = ((2 * h1 + h2) * del1 - h1 * del2) / (h1 + h2)
        if v * del1 <= 0:
            return 0.0
        if del1 * del2 < 0 and abs(v) > abs(3 * del1):
            return 3 * del1
        return v

    d[0] = end(h[0], h[1], delta[0], delta[1])
    d[-1] = end(h[-1], h[-2], delta[-1], delta[-2])
    return d


def _ref_integral(x, y, lo, hi):
    """Integrate the Hermite cubic through (x, y, pchip slopes) over [lo, hi] with 3-pt Gauss–Legendre
    per knot interval (exact for cubics)."""
    d = _ref_pchip_slopes(x, y)
    gx = [-math.sqrt(3 / 5), 0.0, math.sqrt(3 / 5)]
    gw = [5 / 9, 8 / 9, 5 / 9]
    total = 0.0
    for k in range(len(x) - 1):
        a, b = max(lo, x[k]), min(hi, x[k + 1])
        if b <= a:
            continue
        hk = x[k + 1] - x[k]
        for t, w in zip(gx, gw):
            u = (a + b) / 2 + (b - a) / 2 * t
            s = (u - x[k]) / hk
            h00, h10, h01, h11 = 2 * s**3 - 3 * s**2 + 1, s**3 - 2 * s**2 + s, -2 * s**3 + 3 * s**2, s**3 - s**2
            val = h00 * y[k] + h10 * hk * d[k] + h01 * y[k + 1] + h11 * hk * d[k + 1]
            total += w * val * (b - a) / 2
    return total


def _ref_bd(r1, q1, r2, q2, mode):
    def prep(r, q):
        o = sorted(range(len(r)), key=lambda i: r[i])
        return [math.log10(r[i]) for i in o], [q[i] for i in o]

    l1, q1 = prep(r1, q1)
    l2, q2 = prep(r2, q2)
    if mode == "rate":
        lo, hi = max(q1[0], q2[0]), min(q1[-1], q2[-1])
        avg = (_ref_integral(q2, l2, lo, hi) - _ref_integral(q1, l1, lo, hi)) / (hi - lo)
        return (10**avg - 1) * 100
    lo, hi = max(l1[0], l2[0]), min(l1[-1], l2[-1])
    return (_ref_integral(l2, q2, lo, hi) - _ref_integral(l1, q1, lo, hi)) / (hi - lo)


# ---------------------------------------------------------------- tests
@pytest.mark.parametrize("k", [0.5, 0.8, 1.0, 1.25, 2.0])
def test_constant_rate_factor_gives_exact_bd_rate(k):
    rates = [120.0, 260.0, 510.0, 1100.0, 2300.0]
    psnr = [30.1, 32.9, 35.2, 37.8, 39.9]
    got = bd_rate(rates, psnr, [r * k for r in rates], psnr)
    assert got == pytest.approx((k - 1) * 100, abs=1e-9)


@pytest.mark.parametrize("d", [-1.5, 0.0, 0.37, 2.0])
def test_constant_quality_shift_gives_exact_bd_psnr(d):
    rates = [120.0, 260.0, 510.0, 1100.0]
    psnr = [30.1, 32.9, 35.2, 37.8]
    assert bd_psnr(rates, psnr, rates, [q + d for q in psnr]) == pytest.approx(d, abs=1e-9)


def test_point_order_does_not_matter():
    a = bd_rate(RATE_A, PSNR_A, RATE_B, PSNR_B)
    b = bd_rate(RATE_A[::-1], PSNR_A[::-1], [RATE_B[i] for i in (2, 0, 3, 1)], [PSNR_B[i] for i in (2, 0, 3, 1)])
    assert a == pytest.approx(b, abs=1e-12)


def test_matches_independent_reference_on_published_points():
    got_r = bd_rate(RATE_A, PSNR_A, RATE_B, PSNR_B)
    got_p = bd_psnr(RATE_A, PSNR_A, RATE_B, PSNR_B)
    assert got_r == pytest.approx(_ref_bd(RATE_A, PSNR_A, RATE_B, PSNR_B, "rate"), abs=1e-9)
    assert got_p == pytest.approx(_ref_bd(RATE_A, PSNR_A, RATE_B, PSNR_B, "psnr"), abs=1e-9)
    # values produced by the `bjontegaard` PyPI package (FAU-LMS, method="pchip", which its authors
    # validated against the JVET CTC Excel sheet to 10 decimals) on the same points
    assert got_r == pytest.approx(-4.417485350589045, abs=1e-9)
    assert got_p == pytest.approx(0.11969278542479489, abs=1e-9)
    # the test preset is better: fewer bits for the same PSNR, more PSNR for the same bits
    assert got_r < 0 < got_p


def test_matches_independent_reference_on_random_curves():
    rng = np.random.default_rng(1)
    for _ in range(50):
        n = int(rng.integers(4, 8))
        r1 = np.sort(rng.uniform(50, 5000, n))
        q1 = np.sort(rng.uniform(25, 45, n))
        r2 = np.sort(r1 * rng.uniform(0.6, 1.5, n))
        q2 = np.sort(q1 + rng.uniform(-1.0, 1.0, n))
        if np.any(np.diff(r2) <= 0) or np.any(np.diff(q2) <= 0):
            continue
        if min(q1[-1], q2[-1]) <= max(q1[0], q2[0]):
            continue
        ref = _ref_bd(list(r1), list(q1), list(r2), list(q2), "rate")
        assert bd_rate(r1, q1, r2, q2) == pytest.approx(ref, abs=1e-8)
        assert bd_psnr(r1, q1, r2, q2) == pytest.approx(
            _ref_bd(list(r1), list(q1), list(r2), list(q2), "psnr"), abs=1e-9
        )


def test_works_on_ssim():
    rates = [100.0, 200.0, 400.0, 800.0]
    ssim = [0.80, 0.86, 0.91, 0.94]
    assert bd_quality(rates, ssim, rates, [s + 0.01 for s in ssim]) == pytest.approx(0.01, abs=1e-12)
    assert bd_rate(rates, ssim, [r * 0.9 for r in rates], ssim) == pytest.approx(-10.0, abs=1e-9)


@pytest.mark.parametrize(
    "r1,q1,match",
    [
        ([100, 200, 400], [30, 33, 36], "at least 4"),
        ([100, 200, 400, 800], [30, 33, 32, 36], "non-monotonic"),
        ([100, 200, 400, 800], [30, 33, 33, 36], "non-monotonic"),
        ([0, 200, 400, 800], [30, 33, 34, 36], "strictly positive"),
        ([-5, 200, 400, 800], [30, 33, 34, 36], "strictly positive"),
        ([100, 200, 400, 800], [30, float("nan"), 34, 36], "NaN"),
        ([100, float("inf"), 400, 800], [30, 33, 34, 36], "NaN or infinite"),
        ([100, 200, 200, 800], [30, 33, 34, 36], "duplicate"),
        ([100, 200, 400, 800], [30, 33, 34], "rates but"),
    ],
)
def test_errors(r1, q1, match):
    good_r, good_q = [100, 200, 400, 800], [30, 33, 35, 36]
    with pytest.raises(BDRateError, match=match):
        bd_rate(r1, q1, good_r, good_q)
    with pytest.raises(BDRateError, match=match):
        bd_psnr(good_r, good_q, r1, q1)


def test_no_overlap_errors():
    r = [100, 200, 400, 800]
    with pytest.raises(BDRateError, match="quality ranges do not overlap"):
        bd_rate(r, [20, 21, 22, 23], r, [30, 31, 32, 33])
    with pytest.raises(BDRateError, match="log-rate ranges do not overlap"):
        bd_psnr(r, [20, 21, 22, 23], [1e4, 2e4, 4e4, 8e4], [30, 31, 32, 33])


def test_error_is_value_error():
    assert issubclass(BDRateError, ValueError)


def test_min_points_lowers_the_required_count_and_not_below_two():
    r, q = [10.0, 20.0, 40.0], [30.0, 32.0, 34.0]
    with pytest.raises(BDRateError, match="at least 4"):
        bd_rate(r, q, [x / 2 for x in r], q)
    assert bd_rate(r, q, [x / 2 for x in r], q, min_points=3) == pytest.approx(-50.0)
    with pytest.raises(ValueError, match="at least 2"):
        bd_rate(r, q, r, q, min_points=1)
