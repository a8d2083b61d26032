"""The method-codec contract (`codec/method_codec.py`): the three codecs expose the same decode calls, and decoding a
file through the contract gives what the method's decoder gives."""

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
                         for n in ("parse_config", "decode_globals", "decode_frame")))
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
