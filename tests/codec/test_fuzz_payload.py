"""Hostile files: payload-level fuzzing (valid CRCs, crafted contents) and the checks it relies on.

The gate: >= 1,000 mutated vvc-rate-aware files, decoded in worker subprocesses under a memory and a time
cap, give 0 untyped exceptions, 0 hangs, 0 out-of-memory, 0 crashes and 0 non-finite decoded values, and
every typed error names the file.  The 10,000-case run is bench/bench_fuzz_payload.py (and the slow test).
"""

from __future__ import annotations

import dataclasses
import json
import math
import struct
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

from nerfstudio_vvc.codec.bitstream.container import ChunkType, ContainerReader
from nerfstudio_vvc.codec.bitstream.contents import StreamContents as Stream
from nerfstudio_vvc.codec.errors import BitstreamError, CorruptChunkError
from nerfstudio_vvc.methods.rate_aware.codec import DIF_RULES, MAX_GRID_ELEMS, decode_frame
from nerfstudio_vvc.methods.rate_aware.field import DiFSpec
from nerfstudio_vvc.playback.decoder import Decoder
from nerfstudio_vvc.testing.fuzz import case_bytes, run_fuzz
from nerfstudio_vvc.testing.fuzz_selftest import SELFTEST_MODES, selftest_mode
from nerfstudio_vvc.testing.fuzz_targets.rate_aware import decode, make_stream

TARGET = "nerfstudio_vvc.testing.fuzz_targets.rate_aware:decode"
SELFTEST = "nerfstudio_vvc.testing.fuzz_selftest:selftest_decode"
BAD = ("untyped", "hang", "oom", "crash", "nonfinite")


@pytest.fixture(scope="module")
def stream(tmp_path_factory) -> Path:
    return make_stream(tmp_path_factory.mktemp("fuzz") / "base.vvc")


def _rewrite(src: Path, dst: Path, edit) -> Path:
    s = Stream.load(src)
    edit(s)
    dst.write_bytes(s.to_bytes())
    return dst


def _with_config(src: Path, dst: Path, change) -> Path:
    def edit(s: Stream) -> None:
        meta = json.loads(s.global_chunks[0][1])
        change(meta)
        s.global_chunks[0] = (int(ChunkType.METHOD_CONFIG), json.dumps(meta).encode())

    return _rewrite(src, dst, edit)


# ------------------------------------------------------------------------------------------ gate
@pytest.mark.timeout(300)
def test_payload_fuzz_gate(stream: Path):
    """>= 1,000 payload mutations of a vvc-rate-aware stream: only typed errors (naming the file) or finite data."""
    res = run_fuzz(stream, TARGET, cases=1000, seed=0, workers=2, timeout_s=10.0, mem_mb=1024)
    print("payload fuzz:", json.dumps({k: v for k, v in res.to_json().items() if k != "findings"}))
    assert res.cases == 1000
    assert {k: res.counts[k] for k in BAD} == {k: 0 for k in BAD}, res.findings[:5]
    assert res.typed_unnamed == 0, res.findings[:5]
    assert res.counts["typed"] > 500 and res.counts["ok"] > 20  # the mutations reach both outcomes


@pytest.mark.timeout(600)
def test_payload_fuzz_gate_mv_inr(tmp_path: Path):
    """500 payload mutations of a vvc-mv-inr stream (METHOD_CONFIG with its hevc / render objects, the HEVC basic
    view, the INR weights), decoded through the method-codec contract: only typed errors naming the file, or
    finite data. The spec names the target, so bench/bench_fuzz_payload.py fuzzes it too."""
    from nerfstudio_vvc.methods.spec import get_method
    from nerfstudio_vvc.testing.fuzz_targets import mv_inr

    assert get_method("vvc-mv-inr").fuzz_target == mv_inr.__name__
    base = mv_inr.make_stream(tmp_path / "mv.vvc")
    assert sum(1 for _ in mv_inr.decode(base)) > 10  # the unmutated stream decodes
    res = run_fuzz(base, f"{mv_inr.__name__}:decode", cases=500, seed=0, workers=2, timeout_s=10.0, mem_mb=1024)
    print("payload fuzz mv-inr:", json.dumps({k: v for k, v in res.to_json().items() if k != "findings"}))
    assert res.cases == 500 and {k: res.counts[k] for k in BAD} == {k: 0 for k in BAD}, res.findings[:5]
    assert res.typed_unnamed == 0 and res.counts["typed"] > 200 and res.counts["ok"] > 20


@pytest.mark.timeout(200)
def test_fuzz_harness_sees_every_outcome(stream: Path):
    """The harness counts what a bad decoder does: raw exceptions, hangs, memory blow-ups, crashes, NaNs."""
    base = Stream.load(stream)
    n = 24
    expected = Counter(selftest_mode(case_bytes(base, 7, i)[0]) for i in range(n))
    assert all(expected[m] > 0 for m in SELFTEST_MODES), expected  # every mode is drawn
    res = run_fuzz(stream, SELFTEST, cases=n, seed=7, workers=1, timeout_s=1.0,
                   mem_mb=256)
    assert res.counts == {m: expected[m] for m in SELFTEST_MODES}
    assert res.restarts == expected["crash"]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_fuzz_harness_watchdog_kills_native_hangs(stream: Path, monkeypatch):
    """A hang that never returns to the interpreter (timer signal blocked) is killed and counted."""
    monkeypatch.setenv("VVC_FUZZ_SELFTEST_MODES", "ok,native-hang")
    base = Stream.load(stream)
    expected = Counter(selftest_mode(case_bytes(base, 3, i)[0], ("ok", "native-hang")) for i in range(6))
    res = run_fuzz(stream, SELFTEST, cases=6, seed=3, workers=1, timeout_s=1.0)
    assert res.counts["hang"] == expected["native-hang"] > 0
    assert res.counts["ok"] == expected["ok"]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_payload_fuzz_10k(stream: Path):
    res = run_fuzz(stream, TARGET, cases=10_000, seed=1, workers=2, timeout_s=10.0, mem_mb=1024)
    print("payload fuzz 10k:", json.dumps({k: v for k, v in res.to_json().items() if k != "findings"}))
    assert {k: res.counts[k] for k in BAD} == {k: 0 for k in BAD}, res.findings[:5]
    assert res.typed_unnamed == 0


# ------------------------------------------------------------------------------------------ the stream itself
def test_reserialised_stream_is_identical_and_decodes(stream: Path):
    assert Stream.load(stream).to_bytes() == stream.read_bytes()
    values = list(decode(stream))
    assert len(values) > 10 and all(v.isfinite().all() for v in values)


# ------------------------------------------------------------------------------------------ METHOD_CONFIG
def _set(path, value):
    def change(meta):
        obj = meta
        for k in path[:-1]:
            obj = obj[k]
        if value is KeyError:
            del obj[path[-1]]
        else:
            obj[path[-1]] = value

    return change


CONFIG_CASES = [
    (("dif", "hidden_dim"), "16", "hidden_dim must be an integer"),
    (("dif", "hidden_dim"), 16.5, "hidden_dim must be an integer"),
    (("dif", "hidden_dim"), True, "hidden_dim must be an integer"),
    (("dif", "hidden_dim"), -3, "outside"),
    (("dif", "basis_dims"), [4, "x", 4, 2, 2, 2], r"basis_dims\[1\]"),
    (("dif", "basis_dims"), 4, "must be a list"),
    (("dif", "basis_dims"), [4, 4], "differ in length"),
    (("dif", "basis_resolutions"), [6, 8, 8, 10, 10, -12], "outside"),
    (("dif", "basis_resolutions"), [6, 8, 8, 10, 10, 1000], "exceed the decoder's bound"),
    (("dif", "coeff_resolution"), 10**12, "outside"),
    (("dif", "basis_freqs"), [2.0, 3.2, 4.4, 5.6, 6.8, None], "must be a number"),
    (("dif", "coeff_resolution"), KeyError, "coeff_resolution missing"),
    (("dif", "new_field"), 3, "unknown DiF field"),
    (("render", "occupancy_resolution"), 100000, "outside"),
    (("render", "occupancy_resolution"), "16", "must be an integer"),
    (("render", "num_samples"), 0, "outside"),
    (("render", "near_plane"), -1.0, "outside"),
    (("render", "aabb"), [[0, 0, 0], [0, 1, 1]], "empty"),
    (("render", "aabb"), [[0, 0], [1, 1]], "aabb must be"),
    (("render", "background"), [1.0, 1.0], "3 values"),
    (("render", "rate_aware"), 1, "true/false"),
    (("render", "contraction"), True, "render.contraction must be a number"),
    (("render", "world_opacity"), 1, "true/false"),
    (("render", "warp_speed"), 2, "unknown render field"),
    (("render",), [], "'dif' and 'render' objects"),
]


@pytest.mark.parametrize(
    "path,value,match", CONFIG_CASES, ids=[f"{'.'.join(p)}={v!r}"[:40] for p, v, _ in CONFIG_CASES]
)
def test_crafted_method_config_gives_typed_error(stream: Path, tmp_path: Path, path, value, match):
    bad = _with_config(stream, tmp_path / "bad.vvc", _set(path, value))
    with pytest.raises(CorruptChunkError, match=match) as ei:
        Decoder(bad)
    assert str(bad) in str(ei.value) and "METHOD_CONFIG" in str(ei.value)


def test_world_opacity_in_the_method_config_reaches_the_renderer(stream: Path, tmp_path: Path):
    """`render.world_opacity` (written by `--pipeline.model.outer-opacity world`) switches the decoder's renderer to
    world-length opacity outside the box; absent, a contracted stream renders as before."""
    from nerfstudio_vvc.playback.registry import open_decoder

    c2w = torch.tensor([[1.0, 0, 0, 0], [0, 0, -1, -3.0], [0, 1, 0, 0.2]])
    renders = {}
    for world in (False, True):

        def change(meta, world=world):
            meta["render"].update(contraction=0.5, num_outer_samples=8, **({"world_opacity": True} if world else {}))

        dec = open_decoder(_with_config(stream, tmp_path / f"w{int(world)}.vvc", change))
        assert dec.render_settings.world_opacity is world
        renders[world] = dec.render(dec.decode_frame(0), c2w, 10.0, 10.0, 6.0, 6.0, 12, 12)
    assert torch.isfinite(renders[True]).all() and not torch.equal(renders[False], renders[True])


def test_method_config_nan_and_non_json(stream: Path, tmp_path: Path):
    for i, payload in enumerate((b'{"dif": NaN}', b"\xff\xfe", b"[]", b"1" * 70000)):
        bad = _rewrite(stream, tmp_path / f"b{i}.vvc", lambda s: s.global_chunks.__setitem__(0, (1, payload)))
        with pytest.raises(CorruptChunkError, match="METHOD_CONFIG"):
            Decoder(bad)


def test_every_difspec_field_has_a_rule():
    """Adding a field to DiFSpec = adding one line to DIF_RULES (methods/rate_aware/codec.py). (A render setting
    added to RateAwareModel.method_config_bytes without a rule — RenderSettings.JSON_RULES or RENDER_EXTRA_RULES —
    fails tests/methods/test_rate_aware.py, whose real ns-train stream the decoder then refuses.)"""
    assert {f.name for f in dataclasses.fields(DiFSpec)} == set(DIF_RULES)


def test_default_full_size_spec_is_within_bounds():
    total = sum(math.prod(s) for s in DiFSpec().grid_shapes())
    assert total < MAX_GRID_ELEMS / 4


# ------------------------------------------------------------------------------------------ payloads
def _edit_chunk(kind: ChunkType, frame: int, fn):
    def edit(s: Stream) -> None:
        idx, is_i, chunks = s.frames[frame]
        chunks[:] = [(t, fn(d) if t == int(kind) else d) for t, d in chunks]

    return edit


@pytest.mark.parametrize("value", [math.nan, math.inf, -1.0, 0.0, 3.0e38])
def test_bad_quantization_step_names_file_frame_chunk(stream: Path, tmp_path: Path, value):
    bad = _rewrite(
        stream, tmp_path / "q.vvc", _edit_chunk(ChunkType.QUANT_STEPS, 0, lambda d: struct.pack("<f", value) + d[4:])
    )
    with pytest.raises(CorruptChunkError) as ei:
        list(decode(bad))
    msg = str(ei.value)
    assert str(bad) in msg and "frame 0" in msg and ("QUANT_STEPS" in msg or "GRID #0" in msg), msg


def test_occupancy_shape_is_checked_before_decompressing(stream: Path, tmp_path: Path):
    import lzma

    # a 512^3 LZMA mask (128M cells) in a few hundred bytes: what a decompression bomb looks like
    big = bytes([0, 3]) + struct.pack("<3I", 512, 512, 512) + lzma.compress(bytes(1 << 24))
    bad = _rewrite(stream, tmp_path / "o.vvc", _edit_chunk(ChunkType.OCCUPANCY, 0, lambda d: big))
    t0 = time.perf_counter()
    with pytest.raises(
        CorruptChunkError, match=r"frame 0 OCCUPANCY.*mask shape \(512, 512, 512\), expected \(16, 16, 16\)"
    ):
        list(decode(bad))
    assert time.perf_counter() - t0 < 5


def test_mlp_tensors_are_checked_against_the_spec(stream: Path, tmp_path: Path):
    import torch

    from nerfstudio_vvc.codec.weights import compress_state_dict

    wrong = compress_state_dict({"net.0.weight": torch.zeros(16, 18)}, bits=8)[0]
    bad = _rewrite(stream, tmp_path / "m.vvc", _edit_chunk(ChunkType.MLP_WEIGHTS, 0, lambda d: wrong))
    with pytest.raises(CorruptChunkError, match="frame 0 MLP_WEIGHTS.*1 tensors, expected 8"):
        list(decode(bad))
    huge = compress_state_dict({"w": torch.full((4, 4), 1e30)}, step=1e30)[0]
    from nerfstudio_vvc.codec.weights import decompress_state_dict

    half = bytearray(huge)
    half[huge.index(b"w") + 2] = 1  # dtype code 1: float16, whose range 1e30 exceeds
    with pytest.raises(CorruptChunkError, match="non-finite"):
        decompress_state_dict(bytes(half))


def test_garbage_grid_payload_terminates(stream: Path, tmp_path: Path):
    """Random words behind a valid range and session header: the range decoder stops (typed error or data)."""
    import random

    rng = random.Random(0)

    def garbage(d: bytes) -> bytes:
        words = rng.randbytes(4 * 64)
        return d[:10] + d[10:19] + struct.pack("<BII", 1, 0, 64) + words

    bad = _rewrite(stream, tmp_path / "g.vvc", _edit_chunk(ChunkType.GRID, 0, garbage))
    t0 = time.perf_counter()
    try:
        values = list(decode(bad))
        assert all(v.isfinite().all() for v in values)
    except BitstreamError as e:
        assert str(bad) in str(e)
    assert time.perf_counter() - t0 < 10


# ------------------------------------------------------------------------------------------ sequence header
@pytest.mark.parametrize(
    "field,value,ok",
    [
        ("num_frames", (1 << 32) - 1, True),
        ("gop_size", (1 << 32) - 1, True),
        ("num_frames", 1 << 40, False),
        ("num_frames", -1, False),
        ("num_frames", "3", False),
        ("num_frames", 3.0, False),
        ("fps", 0, False),
        ("fps", "30", False),
        ("num_cameras", 1 << 20, False),
        ("method_id", 7, False),
        ("scene_box", [[0, 0, 0]], False),
        ("extra", [], False),
    ],
)
def test_header_fields_are_validated_and_never_allocated(stream: Path, tmp_path: Path, field, value, ok):
    def edit(s: Stream) -> None:
        h = json.loads(s.header_json)
        h[field] = value
        s.header_json = json.dumps(h).encode()

    p = _rewrite(stream, tmp_path / "h.vvc", edit)
    if ok:  # a huge frame count / GOP in the header is just a number: nothing is sized by it
        with ContainerReader(p) as r:
            assert getattr(r.header, field) == value and r.frame_indices() == [0, 1, 2]
        assert len(list(decode(p))) > 0
    else:
        with pytest.raises(CorruptChunkError, match=f"{p}: header.*invalid sequence header"):
            ContainerReader(p)


def test_p_frame_reference_mismatch_is_typed(stream: Path, tmp_path: Path):
    dec = Decoder(stream)
    rec1 = dec.reader.read_frame(1)
    with pytest.raises(BitstreamError, match="reference"):
        decode_frame(rec1, None, dec.spec)
