"""The method-codec contract (`codec/method_codec.py`): the three codecs expose the same encode and decode calls, a
stream written through the encode calls decodes through the decode calls, and decoding a file through the contract
gives what the method's decoder gives."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch

from nerfstudio_vvc.codec.bitstream import ChunkType, StreamContents
from nerfstudio_vvc.codec.errors import BitstreamError, UnknownMethodError
from nerfstudio_vvc.codec.method_codec import MethodCodec, decode_file, load_codec
from nerfstudio_vvc.methods.spec import discover_methods, get_method


def test_every_codec_method_has_the_same_contract():
    codecs = {m.method_id: load_codec(m.codec) for m in discover_methods().values() if m.codec}
    assert sorted(codecs) == ["vvc-codebook", "vvc-mv-inr", "vvc-rate-aware"]
    shapes = set()
    for mid, codec in codecs.items():
        assert isinstance(codec, MethodCodec) and codec.method_id == mid
        shapes.add(tuple(tuple(inspect.signature(getattr(codec, n)).parameters)
                         for n in ("encode_globals", "encode_frame", "parse_config", "decode_globals", "decode_frame")))
    assert len(shapes) == 1, shapes  # same names, same parameters
    for codec in codecs.values():
        with pytest.raises(BitstreamError, match="METHOD_CONFIG"):
            codec.parse_config(None, "x.vvc")


def _frames_equal(a, b) -> bool:
    for name in ("grids", "codebooks", "occupancy", "mlp_state"):
        va, vb = getattr(a, name, None), getattr(b, name, None)
        if isinstance(va, dict):
            va, vb = list(va.values()), list(vb.values())
        if isinstance(va, torch.Tensor):
            va, vb = [va], [vb]
        if va is not None and not all(torch.equal(x, y) for x, y in zip(va, vb, strict=True)):
            return False
    return a.frame_idx == b.frame_idx and a.is_iframe == b.is_iframe


@pytest.mark.parametrize("method", ["vvc-rate-aware", "vvc-codebook"])
def test_decoding_through_the_contract_is_the_decoders_decode(method: str, tmp_path: Path):
    import importlib

    from nerfstudio_vvc.playback.registry import open_decoder

    spec = get_method(method)
    stream = importlib.import_module(spec.fuzz_target).make_stream(tmp_path / "s.vvc")
    frames = list(decode_file(stream, load_codec(spec.codec)))
    dec = open_decoder(stream)
    assert [f.frame_idx for f in frames] == dec.frames()
    for f in frames:
        assert _frames_equal(f, dec.decode_frame(f.frame_idx)), f.frame_idx
    dec.close()
    other = get_method("vvc-codebook" if method == "vvc-rate-aware" else "vvc-rate-aware")
    with pytest.raises(UnknownMethodError, match=f"not '{other.method_id}'"):
        list(decode_file(stream, load_codec(other.codec)))
    s = StreamContents.read(stream)  # a frame chunk cut short: one typed error naming the file and the frame
    idx, is_i, chunks = s.frames[0]
    s.frames[0] = (idx, is_i, [(t, d[: len(d) // 2]) if t != int(ChunkType.OCCUPANCY) else (t, d) for t, d in chunks])
    bad = s.write(tmp_path / "bad.vvc")
    with pytest.raises(BitstreamError) as err:
        list(decode_file(bad, load_codec(spec.codec)))
    assert str(bad) in str(err.value) and "frame 0" in str(err.value)


@pytest.mark.parametrize("method", ["vvc-rate-aware", "vvc-codebook", "vvc-mv-inr"])
def test_a_stream_written_through_the_encode_calls_decodes_through_the_decode_calls(method: str, tmp_path: Path):
    """The fuzz targets write their streams with CODEC.encode_globals / encode_frame only: the METHOD_CONFIG they
    wrote parses back to the config they were given, and every frame decodes through the contract."""
    import importlib

    from nerfstudio_vvc.codec.bitstream.container import ContainerReader

    spec = get_method(method)
    codec = load_codec(spec.codec)
    stream = importlib.import_module(spec.fuzz_target).make_stream(tmp_path / "s.vvc")
    with ContainerReader(stream) as reader:
        chunks = reader.global_chunk_list
        assert int(chunks[0][0]) == int(ChunkType.METHOD_CONFIG)  # encode_globals: METHOD_CONFIG first
        config = codec.parse_config(chunks[0][1], str(stream))
        num_frames = len(reader.frame_indices())
    again = codec.encode_globals(config, _globals_payload(method, stream, codec, config))
    if method != "vvc-mv-inr":
        assert [(int(t), bytes(d)) for t, d in again] == [(int(t), bytes(d)) for t, d in chunks]
    else:  # (re-quantizing the decoded network need not give the same scale bytes: compare what decodes)
        assert [(int(t), bytes(d)) for t, d in again[:2]] == [(int(t), bytes(d)) for t, d in chunks[:2]]
        a, b = codec.decode_globals(config, chunks, "a"), codec.decode_globals(config, again, "b")
        for (n, p), (_, q) in zip(a.net.named_parameters(), b.net.named_parameters(), strict=True):
            assert n == "g1" or torch.allclose(p, q, atol=1e-6), n  # (g1: per-frame rows, not in the GLOBALS)
    assert len(list(decode_file(stream, codec))) == num_frames > 0


def _globals_payload(method: str, stream: Path, codec, config):
    """The payload encode_globals takes, rebuilt from what decode_globals gives (so: encode(decode(x)) == x)."""
    from nerfstudio_vvc.codec.bitstream.container import ContainerReader

    if method == "vvc-rate-aware":
        return None
    with ContainerReader(stream) as reader:
        chunks = reader.global_chunk_list
        shared = codec.decode_globals(config, chunks, str(stream))
    if method == "vvc-codebook":
        from nerfstudio_vvc.methods.codebook.codec import CodedGlobals

        return CodedGlobals(shared, bytes(next(d for t, d in chunks if int(t) == int(ChunkType.MLP_WEIGHTS))))
    from nerfstudio_vvc.methods.mv_inr.codec import CodedGlobals as MvGlobals
    from nerfstudio_vvc.methods.mv_inr.codec import split_units
    from nerfstudio_vvc.methods.mv_inr.compress import quantize_params

    units, _ = split_units(quantize_params(shared.net, config.bits))
    return MvGlobals(bytes(next(d for t, d in chunks if int(t) == int(ChunkType.VIDEO_STREAM))), units)


def test_rate_aware_method_config_bytes_are_unchanged_by_the_contract():
    """vvc-rate-aware's METHOD_CONFIG through StreamConfig.to_bytes is byte for byte what the model wrote before
    (field.spec_json), so existing streams and the demo stay byte-identical."""
    from nerfstudio_vvc.methods.rate_aware.codec import CODEC, StreamConfig
    from nerfstudio_vvc.methods.rate_aware.field import spec_json
    from nerfstudio_vvc.testing.fuzz_targets.rate_aware import TINY_RENDER, TINY_SPEC

    cfg = StreamConfig(TINY_SPEC, dict(TINY_RENDER))
    assert cfg.to_bytes() == spec_json(TINY_SPEC, **TINY_RENDER)
    assert CODEC.parse_config(cfg.to_bytes()) == cfg
