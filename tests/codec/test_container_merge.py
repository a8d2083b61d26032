"""Container merge: per-GOP files → one sequence file, byte-identical to a single writer's file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nerfstudio_vvc.codec.bitstream.container import (
    ChunkType,
    ContainerReader,
    ContainerWriter,
    SequenceHeader,
    serialize_container,
)
from nerfstudio_vvc.codec.bitstream.merge import merge_containers
from nerfstudio_vvc.codec.errors import BitstreamError, IncompatibleStreamsError, TruncatedError

GOP = 3


def _hdr(gop: int = GOP, method: str = "vvc-test") -> SequenceHeader:
    return SequenceHeader(method_id=method, num_frames=8, fps=30.0, gop_size=gop, num_cameras=0,
                          scene_box=((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0)), extra={})


GLOBALS = {ChunkType.METHOD_CONFIG: b'{"cfg":1}'}


def _chunks(i: int) -> list:
    # an unknown *ancillary* chunk too: a verbatim copy keeps it (a re-encode through the reader would drop it)
    return [(ChunkType.GRID, bytes([i]) * (7 + i)), (ChunkType.OCCUPANCY, b"occ%d" % i), (0x8123, b"anc")]


def _write(path: Path, frames, header=None, globals_=GLOBALS, close=True) -> Path:
    w = ContainerWriter(path, header or _hdr(), global_chunks=globals_)
    for f in frames:
        w.write_frame(f, f % GOP == 0, _chunks(f))
    if close:
        w.close()
    return path


def _gop_parts(tmp: Path, n: int = 8):
    return [_write(tmp / f"gop{g}.vvc", range(s, min(s + GOP, n))) for g, s in enumerate(range(0, n, GOP))]


def test_merge_equals_single_writer_bytes(tmp_path: Path):
    whole = _write(tmp_path / "whole.vvc", range(8))
    parts = _gop_parts(tmp_path)
    res = merge_containers(parts, tmp_path / "merged.vvc", expect_frames=range(8))
    assert (tmp_path / "merged.vvc").read_bytes() == whole.read_bytes()
    assert res.frames == list(range(8)) and res.iframes == [0, 3, 6] and res.parts == 3
    with ContainerReader(tmp_path / "merged.vvc", strict=True) as r:
        assert r.complete and not r.index_rebuilt  # the rebuilt index is valid
        assert r.frame_indices() == list(range(8))
        assert [r.iframe_of(f) for f in range(8)] == [0, 0, 0, 3, 3, 3, 6, 6]
        for f in range(8):
            assert r.read_frame(f).chunks == _chunks(f)[:2]
    assert not (tmp_path / "merged.vvc.tmp").exists()


def test_merge_with_gaps_and_single_part(tmp_path: Path):
    a = _write(tmp_path / "a.vvc", [0, 1])
    b = _write(tmp_path / "b.vvc", [6, 7])
    res = merge_containers([a, b], tmp_path / "m.vvc")
    assert res.frames == [0, 1, 6, 7]
    with pytest.raises(IncompatibleStreamsError, match="expected 0-3, 6-7"):
        merge_containers([a, b], tmp_path / "m2.vvc", expect_frames=[0, 1, 2, 3, 6, 7])
    assert not (tmp_path / "m2.vvc").exists()
    merge_containers([a], tmp_path / "one.vvc")
    assert (tmp_path / "one.vvc").read_bytes() == a.read_bytes()


def test_unclosed_or_torn_part_is_rejected_by_name(tmp_path: Path):
    good = _write(tmp_path / "gop0.vvc", range(0, 3))
    running = _write(tmp_path / "gop1.vvc", range(3, 6), close=False)  # still being written: no index
    with pytest.raises(TruncatedError, match="gop1.vvc.*not a finished file"):
        merge_containers([good, running], tmp_path / "m.vvc")
    torn = tmp_path / "torn.vvc"
    data = _write(tmp_path / "full.vvc", range(3, 6)).read_bytes()
    torn.write_bytes(data[: len(data) - 40])  # cut inside the index
    with pytest.raises(TruncatedError, match="torn.vvc"):
        merge_containers([good, torn], tmp_path / "m.vvc")
    assert not (tmp_path / "m.vvc").exists() and not (tmp_path / "m.vvc.tmp").exists()


def test_corrupt_part_is_rejected_by_name(tmp_path: Path):
    good = _write(tmp_path / "gop0.vvc", range(0, 3))
    bad = tmp_path / "gop1.vvc"
    data = bytearray(_write(tmp_path / "x.vvc", range(3, 6)).read_bytes())
    with ContainerReader(tmp_path / "x.vvc") as r:
        off = r.frames_start + 20
    data[off] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(BitstreamError, match="gop1.vvc"):
        merge_containers([good, bad], tmp_path / "m.vvc")


@pytest.mark.parametrize("what", ["gop", "method", "globals"])
def test_incompatible_parts_are_rejected(tmp_path: Path, what: str):
    a = _write(tmp_path / "a.vvc", range(0, 3))
    kw = {"gop": dict(header=_hdr(gop=4)), "method": dict(header=_hdr(method="other")),
          "globals": dict(globals_={ChunkType.METHOD_CONFIG: b'{"cfg":2}'})}[what]
    b = _write(tmp_path / "b.vvc", range(3, 6), **kw)
    with pytest.raises(IncompatibleStreamsError) as exc:
        merge_containers([a, b], tmp_path / "m.vvc")
    msg = str(exc.value)
    assert "b.vvc" in msg
    assert {"gop": "gop_size", "method": "method_id", "globals": "globals"}[what] in msg


def test_overlapping_or_unordered_parts_are_rejected(tmp_path: Path):
    a = _write(tmp_path / "a.vvc", range(0, 4))
    b = _write(tmp_path / "b.vvc", range(3, 6))
    with pytest.raises(IncompatibleStreamsError, match="b.vvc.*do not follow frame 3"):
        merge_containers([a, b], tmp_path / "m.vvc")
    c = _write(tmp_path / "c.vvc", range(6, 8))
    with pytest.raises(IncompatibleStreamsError, match="a.vvc"):
        merge_containers([c, a], tmp_path / "m.vvc")


def _p_first_file(path: Path) -> Path:
    """A closed, CRC-valid file whose first frame is a P-frame (the writer refuses to make one)."""
    base = _write(path.with_suffix(".base"), [], close=False)
    with ContainerReader(base) as r:
        header_json, gl = r.header.to_json_bytes(), r.global_chunk_list
    path.write_bytes(serialize_container(header_json, gl, [(4, False, _chunks(4))]))
    return path


def test_part_starting_with_p_frame_is_rejected(tmp_path: Path):
    a = _write(tmp_path / "a.vvc", range(0, 3))
    p = _p_first_file(tmp_path / "p.vvc")
    with ContainerReader(p) as r:
        assert r.complete and r.frame_indices() == [4]
    with pytest.raises(IncompatibleStreamsError, match="p.vvc.*P-frame"):
        merge_containers([a, p], tmp_path / "m.vvc")


def test_merge_cli_one_line_error(tmp_path: Path):
    parts = _gop_parts(tmp_path)
    exe = Path(sys.executable).parent / "ns-vvc"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    ok = subprocess.run([str(exe), "merge", *map(str, parts), "--out", str(tmp_path / "m.vvc")],
                        capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "8 frames (0-7), I-frames [0, 3, 6]" in ok.stdout
    running = _write(tmp_path / "run.vvc", range(9, 10), close=False)
    bad = subprocess.run([str(exe), "merge", *map(str, parts), str(running), "--out", str(tmp_path / "m2.vvc")],
                         capture_output=True, text=True, env=env)
    assert bad.returncode != 0
    assert "run.vvc" in bad.stderr and "not a finished file" in bad.stderr and "Traceback" not in bad.stderr
