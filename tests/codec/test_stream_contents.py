"""The public container-serialise API (`StreamContents`, `serialize_container`) the fuzzer and the crafted-file
tests share; the codec package and the test harnesses import light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nerfstudio_vvc.codec.bitstream import ChunkType, ContainerReader, ContainerWriter, SequenceHeader, StreamContents
from nerfstudio_vvc.codec.bitstream.container import serialize_container
from nerfstudio_vvc.codec.errors import BitstreamError, TruncatedError


def _file(path: Path, close: bool = True) -> Path:
    header = SequenceHeader(method_id="vvc-test", num_frames=4, fps=25.0, gop_size=2, num_cameras=2,
                            scene_box=((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0)), extra={"k": 1})
    w = ContainerWriter(path, header, [(ChunkType.METHOD_CONFIG, b'{"a": 1}'), (ChunkType.USER_ANCILLARY, b"x")])
    for f in range(4):
        w.write_frame(f, f % 2 == 0, [(ChunkType.GRID, bytes([f]) * (f + 3)), (ChunkType.GENERIC, b"")])
    if close:
        w.close()
    return path


def test_round_trip_is_the_writers_bytes(tmp_path: Path):
    path = _file(tmp_path / "a.vvc")
    s = StreamContents.read(path)
    assert s.to_bytes() == path.read_bytes()
    assert s.header.fps == 25.0 and [i for i, _, _ in s.frames] == [0, 1, 2, 3]
    assert s.copy().to_bytes() == path.read_bytes()


def test_an_open_file_reads_leniently_and_closes_on_write(tmp_path: Path):
    path = _file(tmp_path / "open.vvc", close=False)
    with open(path, "ab") as f:  # a torn tail: a record header promising more bytes than the file has
        f.write(b"VR\x03\x00" + (1 << 20).to_bytes(8, "little"))
    with pytest.raises(TruncatedError):
        StreamContents.read(path, strict=True)
    s = StreamContents.read(path, strict=False)
    out = s.write(tmp_path / "closed.vvc")
    with ContainerReader(out) as r:
        assert r.complete and r.frame_indices() == [0, 1, 2, 3]


def test_edits_are_what_a_reader_sees(tmp_path: Path):
    s = StreamContents.read(_file(tmp_path / "a.vvc"))
    s.global_chunks[0] = (int(ChunkType.METHOD_CONFIG), b'{"a": 2}')
    s.frames[1] = (1, False, [(int(ChunkType.GRID), b"edited")])
    s.frames.pop()
    out = s.write(tmp_path / "b.vvc")
    with ContainerReader(out, strict=True) as r:
        assert r.global_chunks[ChunkType.METHOD_CONFIG] == b'{"a": 2}'
        assert r.read_frame(1).chunks == [(ChunkType.GRID, b"edited")] and r.frame_indices() == [0, 1, 2]


def test_files_a_writer_refuses_are_serialised_for_the_readers_to_reject(tmp_path: Path):
    s = StreamContents.read(_file(tmp_path / "a.vvc"))
    data = serialize_container(s.header_json, s.global_chunks, [s.frames[1], s.frames[0]])  # ids decrease
    (tmp_path / "bad.vvc").write_bytes(data)
    with pytest.raises(BitstreamError):
        with ContainerReader(tmp_path / "bad.vvc", strict=True) as r:
            list(r.iter_frames())


def test_codec_package_and_harnesses_import_light():
    code = (
        "import sys\n"
        "import nerfstudio_vvc.codec, nerfstudio_vvc.testing, nerfstudio_vvc.testing.faults\n"
        "from nerfstudio_vvc.codec.bitstream import StreamContents\n"
        "from nerfstudio_vvc.codec import BitstreamError, ContainerReader\n"
        "print('HEAVY', [m for m in ('torch', 'numpy', 'constriction', 'nerfstudio') if m in sys.modules])\n"
        "from nerfstudio_vvc.codec import laplace_bits\n"
        "print('LAZY', 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "HEAVY []" in out.stdout and "LAZY True" in out.stdout, out.stdout


def test_fault_hooks(tmp_path: Path, monkeypatch):
    from nerfstudio_vvc.testing import faults

    marker = tmp_path / "fired"
    assert faults.gop_fault_for(None, 0) is None
    assert faults.gop_fault_for(f"1:2:{marker}", 0) is None
    assert faults.gop_fault_for(f"1:2:{marker}", 1) == (2, marker)
    marker.write_text("x")
    assert faults.gop_fault_for(f"1:2:{marker}", 1) is None  # fired once: the retry runs normally
    monkeypatch.setenv(faults.KILL_ENV, "code:3")
    faults.maybe_kill("code", 2)
    faults.maybe_kill("train", 5)
    with pytest.raises(faults.SimulatedKill, match="stage code after 3 units"):
        faults.maybe_kill("code", 3)


def test_write_atomically_renames_only_a_complete_file(tmp_path: Path):
    from nerfstudio_vvc.codec.bitstream.container import write_atomically

    ref = _file(tmp_path / "ref.vvc")
    s = StreamContents.read(ref)
    out = tmp_path / "out.vvc"
    with write_atomically(out, s.header, s.global_chunks) as w:
        for idx, is_i, chunks in s.frames:
            w.write_frame(idx, is_i, chunks)
        assert not out.exists()  # nothing at the final name while frames are written
    assert out.read_bytes() == ref.read_bytes() and not (tmp_path / "out.vvc.part").exists()
    with pytest.raises(RuntimeError, match="killed"):
        with write_atomically(out, s.header, s.global_chunks) as w:
            w.write_frame(0, True, [(ChunkType.GRID, b"new")])
            raise RuntimeError("killed")
    assert out.read_bytes() == ref.read_bytes()  # the previous complete file survives
    with ContainerReader(tmp_path / "out.vvc.part") as r:  # the partial one is closed, for inspection
        assert r.complete and r.frame_indices() == [0]
