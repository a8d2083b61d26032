"""Container: round trip, seeking, crash durability, typed errors, fuzzing."""

from __future__ import annotations

import io
import os
import random
import struct
import time

import pytest

from nerfstudio_vvc.codec.bitstream.container import ChunkType, ContainerReader, ContainerWriter, SequenceHeader
from nerfstudio_vvc.codec.errors import (
    BitstreamError,
    CorruptChunkError,
    TruncatedError,
    UnknownChunkTypeError,
    UnsupportedVersionError,
)


def _hdr(n: int = 6) -> SequenceHeader:
    return SequenceHeader(method_id="vvc-test", num_frames=n, fps=30.0, gop_size=3, num_cameras=2,
                          scene_box=((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0)), extra={"k": [1, 2]})


def _frame_chunks(i: int) -> list:
    return [
        (ChunkType.OCCUPANCY, bytes([i]) * (5 + i)),
        (ChunkType.GRID, os.urandom(20 + 3 * i)),
        (ChunkType.GRID, b""),
    ]


def _write(path, n=6, close=True):
    frames = {}
    w = ContainerWriter(path, _hdr(n), global_chunks={ChunkType.METHOD_CONFIG: b'{"a":1}'})
    for i in range(n):
        ch = _frame_chunks(i)
        w.write_frame(i, is_iframe=(i % 3 == 0), chunks=ch)
        frames[i] = ch
    if close:
        w.close()
    return frames


def test_roundtrip_and_seek(tmp_path):
    p = tmp_path / "a.vvc"
    frames = _write(p)
    with ContainerReader(p, strict=True) as r:
        assert r.complete and r.header == _hdr(6)
        assert r.global_chunks == {ChunkType.METHOD_CONFIG: b'{"a":1}'}
        assert r.num_frames_written == 6 and r.frame_indices() == list(range(6))
        assert [r.iframe_of(i) for i in range(6)] == [0, 0, 0, 3, 3, 3]
        for i in reversed(range(6)):
            rec = r.read_frame(i)
            assert rec.frame_idx == i and rec.is_iframe == (i % 3 == 0) and rec.chunks == frames[i]
            assert r.frame_nbytes(i) > sum(len(d) for _, d in frames[i])
        with pytest.raises(KeyError):
            r.read_frame(17)


def test_crash_durability_and_append(tmp_path):
    p = tmp_path / "c.vvc"
    frames = _write(p, n=3, close=False)  # "killed" before the index is written
    size3 = p.stat().st_size
    w = ContainerWriter.open_append(p)
    w.write_frame(3, True, _frame_chunks(3))
    w._f.close()  # simulate kill: no close()
    full = p.read_bytes()
    for cut in (size3 + 1, size3 + 10, len(full) - 1):  # truncated mid-frame-4
        p.write_bytes(full[:cut])
        r = ContainerReader(p)
        assert r.frame_indices() == [0, 1, 2] and not r.complete and r.torn_tail
        assert [r.read_frame(i).chunks for i in range(3)] == [frames[i] for i in range(3)]
        r.close()
        with pytest.raises(TruncatedError):
            ContainerReader(p, strict=True)
    p.write_bytes(full[:size3] + b"\0" * 40)  # zero-filled torn tail
    assert ContainerReader(p).frame_indices() == [0, 1, 2]
    # resume after the crash: torn tail dropped, index rewritten on close
    w = ContainerWriter.open_append(p)
    w.write_frame(4, False, [(ChunkType.GRID, b"x")])
    w.close()
    r = ContainerReader(p, strict=True)
    assert r.complete and r.frame_indices() == [0, 1, 2, 4] and r.iframe_of(4) == 0


def test_unknown_chunks_and_version(tmp_path):
    p = tmp_path / "u.vvc"
    with ContainerWriter(p, _hdr(1)) as w:
        w.write_frame(0, True, [(0x8123, b"ancillary"), (ChunkType.GRID, b"g")])
    assert ContainerReader(p).read_frame(0).chunks == [(ChunkType.GRID, b"g")]
    with ContainerWriter(p, _hdr(1)) as w:
        w.write_frame(0, True, [(0x0777, b"critical")])
    with pytest.raises(UnknownChunkTypeError, match="0x0777"):
        ContainerReader(p).read_frame(0)
    data = bytearray(p.read_bytes())
    data[8:10] = struct.pack("<H", 9)
    p.write_bytes(bytes(data))
    with pytest.raises(UnsupportedVersionError, match=str(p)):
        ContainerReader(p)


def test_error_message_names_file_chunk_offset(tmp_path):
    p = tmp_path / "e.vvc"
    _write(p, n=2)
    data = bytearray(p.read_bytes())
    with ContainerReader(p) as r:
        off = r.frame_offset(r.frame_indices()[1])
    data[off + 40] ^= 0x10
    p.write_bytes(bytes(data))
    r = ContainerReader(p)
    with pytest.raises(CorruptChunkError) as ei:
        r.read_frame(1)
    msg = str(ei.value)
    assert str(p) in msg and "frame 1" in msg and "byte offset" in msg


def test_huge_length_field_is_checked_before_reading(tmp_path):
    p = tmp_path / "h.vvc"
    _write(p, n=1, close=False)
    data = bytearray(p.read_bytes())
    with ContainerReader(p) as r:
        off = r.frame_offset(r.frame_indices()[0])
    data[off + 4 : off + 12] = struct.pack("<Q", 1 << 62)
    p.write_bytes(bytes(data))
    with pytest.raises(TruncatedError, match="exceeds remaining"):
        ContainerReader(p, strict=True)


@pytest.mark.timeout(120)
def test_fuzz_reader(tmp_path):
    """>= 10,000 mutated files: only BitstreamError, never wrong data."""
    base_path = tmp_path / "base.vvc"
    frames = _write(base_path, n=4)
    base = base_path.read_bytes()
    hdr = _hdr(4)
    rng = random.Random(1234)
    n_ok = n_err = 0
    t0 = time.time()
    n_cases = int(os.environ.get("FUZZ_N", 20_000))
    for case in range(n_cases):
        kind = case % 5
        data = bytearray(base)
        if kind == 0:  # bit flips
            for _ in range(rng.randint(1, 3)):
                i = rng.randrange(len(data))
                data[i] ^= 1 << rng.randrange(8)
        elif kind == 1:  # truncation
            data = data[: rng.randrange(len(data))]
        elif kind == 2:  # extension
            data += os.urandom(rng.randint(1, 64))
        elif kind == 3:  # random bytes, half of them with a valid prefix
            data = bytearray(os.urandom(rng.randint(0, 300)))
            if rng.random() < 0.5:
                data = bytearray(base[: rng.randrange(len(base))]) + data
        else:  # overwrite a random run of bytes
            i = rng.randrange(len(data))
            n = rng.randint(1, 16)
            data[i : i + n] = os.urandom(n)
        try:
            with ContainerReader(io.BytesIO(bytes(data))) as r:
                assert r.header == hdr
                for i in r.frame_indices():
                    assert r.read_frame(i).chunks == frames[i], f"case {case}: silent wrong data"
                    assert r.iframe_of(i) == (i // 3) * 3
            n_ok += 1
        except BitstreamError:
            n_err += 1
    dt = time.time() - t0
    print(f"fuzz: {n_cases} cases in {dt:.1f}s ({n_err} rejected, {n_ok} accepted)")
    assert n_ok + n_err == n_cases and n_err > 1000
    assert dt < 60
