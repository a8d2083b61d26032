"""Property-based round trips: range coder sessions, masks, integer tensors, state dicts."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nerfstudio_vvc.codec.coder import CoderSession, choose_range
from nerfstudio_vvc.codec.errors import BitstreamError
from nerfstudio_vvc.codec.masks import METHOD_LZMA, METHOD_RANGE, compress_mask, decompress_mask
from nerfstudio_vvc.codec.quant import quantize_noise, quantize_ste, symbols_ste
from nerfstudio_vvc.codec.rate import gaussian_bits, laplace_bits
from nerfstudio_vvc.codec.weights import (
    compress_int_tensor,
    compress_state_dict,
    decompress_int_tensor,
    decompress_state_dict,
)

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
magnitudes = st.sampled_from([0, 1, 3, 100, 40_000, 2**31, 2**40])
scales = st.sampled_from([1e-9, 1e-3, 0.05, 1.0, 30.0, 1e4, 1e9])


@st.composite
def symbol_arrays(draw):
    n = draw(st.integers(0, 300))
    mag = draw(magnitudes)
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["laplace", "uniform", "zeros", "const"]))
    if kind == "zeros":
        return np.zeros(n, np.int64)
    if kind == "const":
        return np.full(n, draw(st.integers(-(2**40), 2**40)), np.int64)
    if kind == "uniform":
        return rng.integers(-mag, mag + 1, n, dtype=np.int64)
    return np.round(rng.laplace(0, max(mag, 1) / 10, n)).astype(np.int64)


@SETTINGS
@given(symbol_arrays(), scales, st.floats(-1e6, 1e6), st.booleans())
def test_session_roundtrip(sym, scale, mean, gaussian):
    lo, hi, esc = choose_range(sym)
    n = sym.size
    rng = np.random.default_rng(0)
    means = np.full(n, mean) + rng.normal(0, 3, n)
    scl = np.full(n, scale) * rng.uniform(0.5, 2, n)
    enc = CoderSession("encode")
    fn = "code_gaussian" if gaussian else "code_laplace"
    getattr(enc, fn)(sym, means, scl, lo, hi, esc)
    enc.code_laplace_fixed(sym, n, mean, scale, lo, hi, esc)
    data = enc.to_bytes()
    dec = CoderSession("decode", data)
    np.testing.assert_array_equal(getattr(dec, fn)(None, means, scl, lo, hi, esc), sym)
    np.testing.assert_array_equal(dec.code_laplace_fixed(None, n, mean, scale, lo, hi, esc), sym)
    dec.finish_decode()


@SETTINGS
@given(
    st.lists(st.integers(1, 9), min_size=0, max_size=4),
    st.floats(0, 1),
    st.sampled_from([None, METHOD_LZMA, METHOD_RANGE]),
    st.integers(0, 2**31),
)
def test_mask_roundtrip(shape, density, method, seed):
    m = np.random.default_rng(seed).random(shape) < density
    data = compress_mask(m, method)
    out = decompress_mask(data)
    assert out.shape == m.shape and (out == m).all()
    if method is None:
        assert len(data) <= min(len(compress_mask(m, METHOD_LZMA)), len(compress_mask(m, METHOD_RANGE)))


@SETTINGS
@given(symbol_arrays(), st.sampled_from([(-1,), (1, -1), (3, -1)]))
def test_int_tensor_roundtrip(sym, shape):
    if shape[0] == 3:
        sym = np.concatenate([sym, sym, sym])
    t = torch.from_numpy(sym.reshape(shape))
    assert torch.equal(decompress_int_tensor(compress_int_tensor(t)), t)


@SETTINGS
@given(
    st.integers(0, 2**31),
    st.sampled_from([None, 2, 8, 16]),
    st.sampled_from([torch.float32, torch.float16, torch.float64]),
)
def test_state_dict_roundtrip(seed, bits, dtype):
    g = torch.Generator().manual_seed(seed)
    sd = {
        "l1.weight": (torch.randn(8, 5, generator=g) * 3).to(dtype),
        "l1.bias": torch.zeros(8, dtype=dtype),
        "scalar": torch.tensor(1e-7, dtype=dtype),
        "steps": torch.tensor([7, -3]),
        "empty": torch.zeros(0, 4),
    }
    data, deq = compress_state_dict(sd, step=0.01 if bits is None else None, bits=bits)
    out = decompress_state_dict(data)
    assert list(out) == list(sd)
    for k in sd:
        assert out[k].dtype == sd[k].dtype and torch.equal(out[k], deq[k])
    err = (deq["l1.weight"].double() - sd["l1.weight"].double()).abs().max()
    step = 0.01 if bits is None else float(sd["l1.weight"].abs().max()) / (2 ** (bits - 1) - 1)
    assert err <= step / 2 + 1e-2 * step + (1e-2 if dtype == torch.float16 else 0)


def test_payload_decoders_raise_bitstream_errors_only():
    rng = np.random.default_rng(0)
    payloads = [
        (decompress_mask, compress_mask(rng.random((7, 9)) < 0.3, METHOD_RANGE)),
        (decompress_mask, compress_mask(rng.random((7, 9)) < 0.3, METHOD_LZMA)),
        (decompress_int_tensor, compress_int_tensor(torch.randint(-50, 50, (4, 300)))),
        (decompress_state_dict, compress_state_dict({"w": torch.randn(5, 5)}, bits=6)[0]),
    ]
    for fn, data in payloads:
        for i in range(600):
            d = bytearray(data)
            if i % 3 == 0:
                d = d[: rng.integers(0, len(d))]
            else:
                j = rng.integers(0, len(d))
                d[j] ^= 1 << int(rng.integers(0, 8))
            try:
                fn(bytes(d))
            except BitstreamError:
                pass


def test_rate_functions_match_probabilities():
    x = torch.arange(-60, 61, dtype=torch.float64)
    for mean, s in [(0.0, 0.3), (0.4, 2.0), (-3.2, 7.0)]:
        p = torch.exp2(-laplace_bits(x, torch.tensor(mean), torch.tensor(s)))
        assert abs(p.sum().item() - 1) < 1e-3
        p = torch.exp2(-gaussian_bits(x, torch.tensor(mean), torch.tensor(s)))
        assert abs(p.sum().item() - 1) < 1e-3


def test_quant_helpers():
    x = torch.linspace(-3, 3, 101, requires_grad=True)
    y = quantize_ste(x, 0.5)
    assert torch.equal(y.detach(), torch.round(x.detach() / 0.5) * 0.5)
    y.sum().backward()
    assert torch.allclose(x.grad, torch.ones_like(x))
    s = symbols_ste(x.detach(), 0.25)
    assert torch.equal(s, torch.round(x.detach() / 0.25))
    n = quantize_noise(x.detach(), 0.5)
    assert (n - x.detach()).abs().max() <= 0.25


def test_import_without_nerfstudio():
    code = (
        "import sys, nerfstudio_vvc.codec; assert 'nerfstudio' not in sys.modules, 'nerfstudio imported'; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr


def test_categorical_tensor_round_trip_beats_laplace_on_a_spike_and_rejects_bad_counts():
    import numpy as np
    import torch

    from nerfstudio_vvc.codec.errors import BitstreamError
    from nerfstudio_vvc.codec.weights import compress_categorical, compress_int_tensor, decompress_categorical

    g = np.random.default_rng(0)
    q = np.where(g.random(20000) < 0.6, 0, g.integers(-127, 128, 20000)).reshape(100, 200)  # pruned: spike + spread
    data = compress_categorical(q)
    assert torch.equal(decompress_categorical(data, (100, 200)), torch.from_numpy(q))
    assert len(data) < 0.8 * len(compress_int_tensor(q))
    with pytest.raises(BitstreamError):
        decompress_categorical(data, (200, 100))  # not the expected shape
    const = np.full((7, 9), -3)  # one category (e.g. an unused, all-zero tensor): no coded symbols at all
    assert torch.equal(decompress_categorical(compress_categorical(const), (7, 9)), torch.from_numpy(const))
    bad = bytearray(data)
    bad[1 + 8 + 8] ^= 0x01  # first histogram count: counts no longer add up to the tensor
    with pytest.raises(BitstreamError):
        decompress_categorical(bytes(bad), (100, 200))
