"""Append-only, per-frame-durable container (layout: docs/bitstream.md).

Why this shape: every record is self-delimiting (magic, kind, u64 length, CRC32), so a crash
leaves a prefix of complete frames that a scan recovers; the trailing index (written on close)
only accelerates seeking and is rebuilt by a scan when missing or inconsistent.  Every length is
checked against what remains in the file *before* anything is read or allocated.
"""

from __future__ import annotations

import os
import struct
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, Sequence, Union

from nerfstudio_vvc.codec.bitstream.header import ChunkType, SequenceHeader
from nerfstudio_vvc.codec.constants import (
    FILE_MAGIC,
    FORMAT_VERSION_MAJOR,
    FORMAT_VERSION_MINOR,
    MAX_CHUNKS_PER_RECORD,
    MAX_HEADER_JSON,
    RECORD_MAGIC,
    TRAILER_MAGIC,
)
from nerfstudio_vvc.codec.errors import (
    BitstreamError,
    CorruptChunkError,
    TruncatedError,
    UnknownChunkTypeError,
    UnsupportedVersionError,
)

PRELUDE = struct.Struct("<8sHH")  # magic, major, minor
REC_HDR = struct.Struct("<2sBBQ")  # magic "VR", kind, reserved(0), payload_len
CRC = struct.Struct("<I")
CHUNK_HDR = struct.Struct("<HHQ")  # type, reserved(0), length
CHUNK_COUNT = struct.Struct("<I")
FRAME_HDR = struct.Struct("<IB3x")  # frame_idx, flags (bit0 = I-frame)
INDEX_HDR = struct.Struct("<II")  # count, reserved(0)
INDEX_ENTRY = struct.Struct("<IB3xQQ")  # frame_idx, flags, offset, nbytes
TRAILER = struct.Struct("<Q8s")  # index record offset, magic

KIND_HEADER, KIND_GLOBALS, KIND_FRAME, KIND_INDEX = 1, 2, 3, 4
_KIND_NAMES = {KIND_HEADER: "header", KIND_GLOBALS: "globals", KIND_FRAME: "frame", KIND_INDEX: "index"}
REC_OVERHEAD = REC_HDR.size + CRC.size

ChunkList = list[tuple[Union[ChunkType, int], bytes]]
Chunks = Iterable[tuple[Union[ChunkType, int], bytes]]


@dataclass(frozen=True)
class FrameRecord:
    frame_idx: int
    is_iframe: bool
    chunks: ChunkList
    source: str = field(default="<bytes>", compare=False)
    """The file the record was read from (payload decoders name it in their errors)."""


@dataclass(frozen=True)
class _Entry:
    frame_idx: int
    is_iframe: bool
    offset: int
    nbytes: int


# ---------------------------------------------------------------------------------------- encode
def encode_chunks(chunks: Iterable[tuple[Union[ChunkType, int], bytes]]) -> bytes:
    """A chunk list (docs/bitstream.md §1.3): count, then each chunk with its header and CRC."""
    chunks = list(chunks)
    if len(chunks) > MAX_CHUNKS_PER_RECORD:
        raise ValueError(f"too many chunks ({len(chunks)})")
    parts = [CHUNK_COUNT.pack(len(chunks))]
    for ctype, data in chunks:
        code = int(ctype)
        if not 0 <= code < 0x10000:
            raise ValueError(f"chunk type {code} outside u16")
        data = bytes(data)
        head = CHUNK_HDR.pack(code, 0, len(data))
        parts += [head, data, CRC.pack(zlib.crc32(data, zlib.crc32(head)))]
    return b"".join(parts)


def frame_record_overhead(num_chunks: int) -> int:
    """Bytes a frame record adds around its chunk payloads (record header and CRC, frame header, chunk count,
    per-chunk header and CRC): a frame's file bytes are exactly this plus the sum of its payload lengths."""
    return REC_HDR.size + CRC.size + FRAME_HDR.size + CHUNK_COUNT.size + num_chunks * (CHUNK_HDR.size + CRC.size)


def encode_record(kind: int, payload: bytes) -> bytes:
    """One self-delimiting record (§1.2): magic, kind, length, payload, CRC."""
    head = REC_HDR.pack(RECORD_MAGIC, kind, 0, len(payload))
    crc = zlib.crc32(payload, zlib.crc32(head[2:]))
    return head + payload + CRC.pack(crc)


def container_prefix(header_json: bytes, global_chunks: Chunks) -> bytes:
    """Prelude + HEADER + GLOBALS records: the bytes before the first frame record."""
    return (
        PRELUDE.pack(FILE_MAGIC, FORMAT_VERSION_MAJOR, FORMAT_VERSION_MINOR)
        + encode_record(KIND_HEADER, header_json)
        + encode_record(KIND_GLOBALS, encode_chunks(global_chunks))
    )


def encode_frame_record(frame_idx: int, is_iframe: bool, chunks: Chunks) -> bytes:
    """One FRAME record (§1.4), as `ContainerWriter.write_frame` appends it."""
    return encode_record(KIND_FRAME, FRAME_HDR.pack(frame_idx, 1 if is_iframe else 0) + encode_chunks(chunks))


def encode_index(entries: Iterable[tuple[int, bool, int, int]], index_offset: int) -> bytes:
    """INDEX record + trailer (§1.4, §1.5) for (frame_idx, is_iframe, record_offset, record_nbytes) entries."""
    entries = list(entries)
    payload = INDEX_HDR.pack(len(entries), 0) + b"".join(
        INDEX_ENTRY.pack(idx, int(is_i), off, nbytes) for idx, is_i, off, nbytes in entries
    )
    return encode_record(KIND_INDEX, payload) + TRAILER.pack(index_offset, TRAILER_MAGIC)


def serialize_container(header_json: bytes, global_chunks: Chunks, frames: Iterable[tuple[int, bool, Chunks]]) -> bytes:
    """A whole closed file from its parts, byte for byte what a `ContainerWriter` writing the same header JSON,
    globals and frames and then closing produces (valid CRCs and index). No ordering checks: tests and fuzzers
    build files a writer refuses (P-frame first, repeated ids) with it; readers must reject those."""
    parts = [container_prefix(header_json, global_chunks)]
    off = len(parts[0])
    entries = []
    for idx, is_i, chunks in frames:
        rec = encode_frame_record(idx, is_i, chunks)
        entries.append((idx, bool(is_i), off, len(rec)))
        parts.append(rec)
        off += len(rec)
    parts.append(encode_index(entries, off))
    return b"".join(parts)


# ---------------------------------------------------------------------------------------- decode
def _decode_chunks(buf: bytes, pos: int, *, source: str, where: str, base: int) -> ChunkList:
    """Parse a chunk list starting at ``buf[pos:]`` that must end exactly at ``len(buf)``."""

    def err(cls: type[BitstreamError], msg: str, at: int) -> BitstreamError:
        return cls(msg, source=source, where=where, offset=base + at)

    if len(buf) - pos < CHUNK_COUNT.size:
        raise err(TruncatedError, "chunk count missing", pos)
    (n,) = CHUNK_COUNT.unpack_from(buf, pos)
    pos += CHUNK_COUNT.size
    min_chunk = CHUNK_HDR.size + CRC.size
    if n > MAX_CHUNKS_PER_RECORD or n * min_chunk > len(buf) - pos:
        raise err(CorruptChunkError, f"implausible chunk count {n}", pos - CHUNK_COUNT.size)
    out: ChunkList = []
    for i in range(n):
        cwhere = f"{where} chunk #{i}"
        if len(buf) - pos < min_chunk:
            raise TruncatedError("chunk header truncated", source=source, where=cwhere, offset=base + pos)
        code, reserved, length = CHUNK_HDR.unpack_from(buf, pos)
        if length > len(buf) - pos - min_chunk:
            raise TruncatedError(
                f"chunk length {length} exceeds remaining record bytes", source=source, where=cwhere, offset=base + pos
            )
        if reserved != 0:
            raise CorruptChunkError(
                f"reserved chunk field is {reserved}, expected 0", source=source, where=cwhere, offset=base + pos
            )
        dstart = pos + CHUNK_HDR.size
        data = buf[dstart : dstart + length]
        (crc,) = CRC.unpack_from(buf, dstart + length)
        if zlib.crc32(data, zlib.crc32(buf[pos:dstart])) != crc:
            raise CorruptChunkError(
                f"chunk CRC mismatch (type 0x{code:04x})", source=source, where=cwhere, offset=base + pos
            )
        pos = dstart + length + CRC.size
        try:
            out.append((ChunkType(code), data))
        except ValueError:
            if not ChunkType.is_ancillary(code):
                raise UnknownChunkTypeError(
                    f"unknown critical chunk type 0x{code:04x}", source=source, where=cwhere, offset=base + pos
                ) from None
            # unknown ancillary chunk: skipped by design (docs/bitstream.md)
    if pos != len(buf):
        raise CorruptChunkError(
            f"{len(buf) - pos} trailing bytes after chunk list", source=source, where=where, offset=base + pos
        )
    return out


class _File:
    """Bounds-checked random access: never reads (or allocates) past what the file holds."""

    def __init__(self, src: Union[Path, BinaryIO]) -> None:
        if isinstance(src, Path):
            self.name = str(src)
            self.f: BinaryIO = open(src, "rb")
            self._own = True
        else:  # any seekable binary file object (e.g. io.BytesIO)
            self.name = str(getattr(src, "name", "<stream>"))
            self.f = src
            self._own = False
        self.size = self.f.seek(0, os.SEEK_END)

    def read(self, off: int, n: int, where: str) -> bytes:
        if off < 0 or n < 0 or off > self.size or n > self.size - off:
            raise TruncatedError(
                f"need {n} bytes but only {max(self.size - off, 0)} remain", source=self.name, where=where, offset=off
            )
        self.f.seek(off)
        data = self.f.read(n)
        if len(data) != n:  # file shrank under us
            raise TruncatedError("short read", source=self.name, where=where, offset=off)
        return data

    def close(self) -> None:
        if self._own:
            self.f.close()


def _read_record(fh: _File, off: int, where: str) -> tuple[int, bytes, int]:
    """Read and verify one record at ``off``: returns (kind, payload, end offset)."""
    head = fh.read(off, REC_HDR.size, where)
    magic, kind, reserved, plen = REC_HDR.unpack(head)
    if magic != RECORD_MAGIC:
        raise CorruptChunkError(f"bad record magic {magic!r}", source=fh.name, where=where, offset=off)
    if kind not in _KIND_NAMES or reserved != 0:
        raise CorruptChunkError(
            f"bad record kind/reserved ({kind}, {reserved})", source=fh.name, where=where, offset=off
        )
    remaining = fh.size - off - REC_OVERHEAD
    if plen > remaining:
        raise TruncatedError(
            f"record length {plen} exceeds remaining file size {max(remaining, 0)}",
            source=fh.name,
            where=where,
            offset=off,
        )
    body = fh.read(off + REC_HDR.size, plen + CRC.size, where)
    payload = body[:plen]
    (crc,) = CRC.unpack_from(body, plen)
    if zlib.crc32(payload, zlib.crc32(head[2:])) != crc:
        raise CorruptChunkError(f"{_KIND_NAMES[kind]} record CRC mismatch", source=fh.name, where=where, offset=off)
    return kind, payload, off + REC_OVERHEAD + plen


class ContainerReader:
    """Verifying reader.

    ``strict=False`` (default) tolerates a torn tail -- an incomplete last record, e.g. after a crash
    -- and exposes every complete frame (``complete`` is then False).  ``strict=True`` raises
    ``TruncatedError`` instead.  Corruption inside complete records always raises.
    """

    def __init__(self, path: Union[str, os.PathLike, BinaryIO], *, strict: bool = False) -> None:
        is_file_obj = hasattr(path, "read") and hasattr(path, "seek")
        self.path = Path(getattr(path, "name", "<stream>")) if is_file_obj else Path(path)  # type: ignore[arg-type]
        self.strict = strict
        self.torn_tail = False
        self.index_rebuilt = False
        self._fh = _File(path if is_file_obj else self.path)  # type: ignore[arg-type]
        try:
            self._open()
        except BaseException:
            self._fh.close()
            raise

    # -- opening
    def _open(self) -> None:
        fh = self._fh
        magic, major, minor = PRELUDE.unpack(fh.read(0, PRELUDE.size, "prelude"))
        if magic != FILE_MAGIC:
            raise CorruptChunkError(
                f"not a nerfstudio-vvc file (magic {magic!r})", source=fh.name, where="prelude", offset=0
            )
        if major != FORMAT_VERSION_MAJOR:
            raise UnsupportedVersionError(
                f"container version {major}.{minor}, this reader supports {FORMAT_VERSION_MAJOR}.x",
                source=fh.name,
                where="prelude",
                offset=8,
            )
        self.version = (major, minor)
        off = PRELUDE.size
        if fh.size - off - REC_OVERHEAD > MAX_HEADER_JSON:
            head = fh.read(off, REC_HDR.size, "header record")
            if REC_HDR.unpack(head)[3] > MAX_HEADER_JSON:
                raise CorruptChunkError("implausible header length", source=fh.name, where="header record", offset=off)
        kind, payload, off2 = _read_record(fh, off, "header record")
        if kind != KIND_HEADER:
            raise CorruptChunkError("first record is not the header", source=fh.name, where="header record", offset=off)
        self.header = SequenceHeader.from_json_bytes(payload, source=fh.name, offset=off + REC_HDR.size)
        kind, payload, off3 = _read_record(fh, off2, "globals record")
        if kind != KIND_GLOBALS:
            raise CorruptChunkError(
                "second record is not the globals record", source=fh.name, where="globals record", offset=off2
            )
        self.global_chunk_list = _decode_chunks(
            payload, 0, source=fh.name, where="globals record", base=off2 + REC_HDR.size
        )
        self.global_chunks: dict[Union[ChunkType, int], bytes] = dict(self.global_chunk_list)
        self.frames_start = off3
        entries = self._entries_from_index()
        if entries is None:
            self.index_rebuilt = True
            entries = self._scan()
        self._entries = entries
        self._by_idx = {e.frame_idx: i for i, e in enumerate(entries)}

    def _entries_from_index(self) -> list[_Entry] | None:
        """Entries from the trailing index, or None when it is missing or inconsistent (then scan)."""
        fh = self._fh
        if fh.size < self.frames_start + REC_OVERHEAD + INDEX_HDR.size + TRAILER.size:
            return None
        idx_off, magic = TRAILER.unpack(fh.read(fh.size - TRAILER.size, TRAILER.size, "trailer"))
        if magic != TRAILER_MAGIC or not self.frames_start <= idx_off <= fh.size - TRAILER.size - REC_OVERHEAD:
            return None
        try:
            kind, payload, end = _read_record(fh, idx_off, "index record")
        except BitstreamError:
            return None
        if kind != KIND_INDEX or end != fh.size - TRAILER.size or len(payload) < INDEX_HDR.size:
            return None
        count, reserved = INDEX_HDR.unpack_from(payload, 0)
        if reserved != 0 or len(payload) != INDEX_HDR.size + count * INDEX_ENTRY.size:
            return None
        entries, expect, last = [], self.frames_start, -1
        for i in range(count):
            fidx, flags, off, nbytes = INDEX_ENTRY.unpack_from(payload, INDEX_HDR.size + i * INDEX_ENTRY.size)
            # index must describe a gap-free sequence of records with increasing frame ids
            if off != expect or nbytes < REC_OVERHEAD or fidx <= last or flags > 1:
                return None
            entries.append(_Entry(fidx, bool(flags & 1), off, nbytes))
            expect, last = off + nbytes, fidx
        if expect != idx_off:
            return None
        return entries

    def _scan(self) -> list[_Entry]:
        """Rebuild the frame index by walking (and verifying) every record after the globals."""
        fh = self._fh
        off, entries, last = self.frames_start, [], -1
        while off < fh.size:
            where = f"record at frame slot {len(entries)}"
            remaining = fh.size - off
            try:
                if remaining < REC_OVERHEAD:
                    raise TruncatedError("incomplete record header", source=fh.name, where=where, offset=off)
                head = fh.read(off, REC_HDR.size, where)
                plen = REC_HDR.unpack(head)[3]
                if head[:2] == RECORD_MAGIC and plen > remaining - REC_OVERHEAD:
                    raise TruncatedError(
                        f"record length {plen} exceeds remaining file size", source=fh.name, where=where, offset=off
                    )
                if head[:2] != RECORD_MAGIC and remaining <= 1 << 20 and not any(fh.read(off, remaining, where)):
                    raise TruncatedError("zero-filled tail", source=fh.name, where=where, offset=off)
            except TruncatedError:
                if self.strict:
                    raise
                self.torn_tail = True
                break
            kind, payload, end = _read_record(fh, off, where)
            if kind == KIND_INDEX:
                break  # index record whose trailer was lost: everything before it is verified
            if kind != KIND_FRAME or len(payload) < FRAME_HDR.size:
                raise CorruptChunkError(f"unexpected record kind {kind}", source=fh.name, where=where, offset=off)
            fidx, flags = FRAME_HDR.unpack_from(payload, 0)
            if fidx <= last or flags > 1:
                raise CorruptChunkError(
                    f"frame id {fidx} not increasing / bad flags {flags}", source=fh.name, where=where, offset=off
                )
            _decode_chunks(payload, FRAME_HDR.size, source=fh.name, where=f"frame {fidx}", base=off + REC_HDR.size)
            entries.append(_Entry(fidx, bool(flags & 1), off, end - off))
            off, last = end, fidx
        return entries

    # -- public API
    @property
    def complete(self) -> bool:
        """True when the file was closed properly (valid trailing index)."""
        return not self.index_rebuilt

    @property
    def num_frames_written(self) -> int:
        return len(self._entries)

    def frame_indices(self) -> list[int]:
        return [e.frame_idx for e in self._entries]

    @property
    def frames_end(self) -> int:
        """Offset just past the last complete FRAME record (the end of the globals without frames): the file's
        bytes before it are a valid prefix that a writer only ever appends after."""
        return self._entries[-1].offset + self._entries[-1].nbytes if self._entries else self.frames_start

    def _entry(self, frame_idx: int) -> _Entry:
        try:
            return self._entries[self._by_idx[frame_idx]]
        except KeyError:
            raise KeyError(f"frame {frame_idx} not in {self.path}") from None

    def iframe_of(self, frame_idx: int) -> int:
        """Frame id of the I-frame that starts the GOP containing ``frame_idx``."""
        pos = self._by_idx.get(frame_idx)
        if pos is None:
            raise KeyError(f"frame {frame_idx} not in {self.path}")
        for e in reversed(self._entries[: pos + 1]):
            if e.is_iframe:
                return e.frame_idx
        raise CorruptChunkError(f"no I-frame at or before frame {frame_idx}", source=str(self.path), where="index")

    def frame_nbytes(self, frame_idx: int) -> int:
        return self._entry(frame_idx).nbytes

    def frame_offset(self, frame_idx: int) -> int:
        """Byte offset of the frame's record in the file."""
        return self._entry(frame_idx).offset

    def has_frame(self, frame_idx: int) -> bool:
        """Whether the file holds a complete record of `frame_idx`."""
        return frame_idx in self._by_idx

    def read_frame(self, frame_idx: int) -> FrameRecord:
        e = self._entry(frame_idx)
        fh = self._fh
        where = f"frame {frame_idx} record"
        kind, payload, end = _read_record(fh, e.offset, where)
        if kind != KIND_FRAME or end - e.offset != e.nbytes or len(payload) < FRAME_HDR.size:
            raise CorruptChunkError(
                "index does not point at this frame record", source=fh.name, where=where, offset=e.offset
            )
        fidx, flags = FRAME_HDR.unpack_from(payload, 0)
        if fidx != frame_idx or bool(flags & 1) != e.is_iframe or flags > 1:
            raise CorruptChunkError(
                f"record holds frame {fidx}, index says {frame_idx}", source=fh.name, where=where, offset=e.offset
            )
        chunks = _decode_chunks(
            payload, FRAME_HDR.size, source=fh.name, where=f"frame {frame_idx}", base=e.offset + REC_HDR.size
        )
        return FrameRecord(fidx, bool(flags & 1), chunks, source=fh.name)

    def prefix_bytes(self) -> bytes:
        """Prelude, header and globals records, verbatim (everything before the first frame record)."""
        return self._fh.read(0, self.frames_start, "header and globals")

    def frame_record_bytes(self, frame_idx: int) -> bytes:
        """The whole FRAME record of ``frame_idx``, verbatim, after verifying it (CRCs, ids, chunk list)."""
        self.read_frame(frame_idx)
        e = self._entry(frame_idx)
        return self._fh.read(e.offset, e.nbytes, f"frame {frame_idx} record")

    def iter_frames(self) -> Iterable[FrameRecord]:
        for e in self._entries:
            yield self.read_frame(e.frame_idx)

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "ContainerReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self._fh.close()
        except Exception:
            pass


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class ContainerWriter:
    """Append-only writer; each ``write_frame`` is durable (flush + fsync) when it returns."""

    def __init__(
        self,
        path: Union[str, os.PathLike],
        header: SequenceHeader,
        global_chunks: dict[Union[ChunkType, int], bytes] | Sequence[tuple[Union[ChunkType, int], bytes]] | None = None,
        *,
        _resume: tuple[BinaryIO, list[_Entry]] | None = None,
    ) -> None:
        self.path = Path(path)
        self.header = header
        self._closed = False
        if _resume is not None:
            self._f, self._entries = _resume
            return
        gl = list(global_chunks.items()) if isinstance(global_chunks, dict) else list(global_chunks or [])
        self._f = open(self.path, "wb")
        self._entries = []
        self._f.write(container_prefix(header.to_json_bytes(), gl))
        self._sync()
        _fsync_dir(self.path)

    @classmethod
    def open_append(cls, path: Union[str, os.PathLike], keep_frames: int | None = None) -> "ContainerWriter":
        """Resume a file (e.g. after a crash): drops the index/torn tail, keeps complete frames (only the
        first ``keep_frames`` of them when given: frames written after the last checkpoint are dropped)."""
        with ContainerReader(path) as r:
            entries = list(r._entries)
            if keep_frames is not None:
                entries = entries[: max(int(keep_frames), 0)]
            end = entries[-1].offset + entries[-1].nbytes if entries else r.frames_start
            header = r.header
        f = open(path, "r+b")
        f.truncate(end)
        f.seek(end)
        w = cls(path, header, _resume=(f, entries))
        w._sync()
        return w

    @classmethod
    def with_prefix(cls, path: Union[str, os.PathLike], header: SequenceHeader, prefix: bytes) -> "ContainerWriter":
        """A new file whose magic, header and GLOBALS are `prefix` verbatim (e.g. copied from another file of the
        same stream, as `merge_streams` does); frames are appended as usual. `header` is what `prefix` holds."""
        f = open(path, "wb")
        try:
            f.write(prefix)
        except BaseException:
            f.close()
            raise
        w = cls(path, header, _resume=(f, []))
        w._sync()
        return w

    def _sync(self) -> None:
        self._f.flush()
        os.fsync(self._f.fileno())

    @property
    def num_frames_written(self) -> int:
        return len(self._entries)

    def write_frame(
        self, frame_idx: int, is_iframe: bool, chunks: Iterable[tuple[Union[ChunkType, int], bytes]]
    ) -> int:
        """Append one frame record; returns its size in bytes. Frame ids must increase."""
        if self._closed:
            raise ValueError("writer is closed")
        frame_idx = int(frame_idx)
        if not 0 <= frame_idx < 1 << 32:
            raise ValueError(f"frame index {frame_idx} outside u32")
        if self._entries and frame_idx <= self._entries[-1].frame_idx:
            raise ValueError(f"frame ids must increase: {frame_idx} after {self._entries[-1].frame_idx}")
        if not self._entries and not is_iframe:
            raise ValueError("the first frame must be an I-frame")
        rec = encode_frame_record(frame_idx, is_iframe, chunks)
        off = self._f.seek(0, os.SEEK_END)
        self._f.write(rec)
        self._sync()
        self._entries.append(_Entry(frame_idx, bool(is_iframe), off, len(rec)))
        return len(rec)

    def append_frame_record(self, frame_idx: int, is_iframe: bool, record: bytes) -> int:
        """Append a FRAME record copied verbatim from another file (``ContainerReader.frame_record_bytes``):
        the same ordering rules as ``write_frame``; the record's own id and flags must match."""
        if self._closed:
            raise ValueError("writer is closed")
        if len(record) < REC_OVERHEAD + FRAME_HDR.size or record[:2] != RECORD_MAGIC or record[2] != KIND_FRAME:
            raise ValueError("not a frame record")
        fidx, flags = FRAME_HDR.unpack_from(record, REC_HDR.size)
        if fidx != frame_idx or bool(flags & 1) != bool(is_iframe):
            raise ValueError(f"record holds frame {fidx} (I={bool(flags & 1)}), expected {frame_idx} (I={is_iframe})")
        if self._entries and frame_idx <= self._entries[-1].frame_idx:
            raise ValueError(f"frame ids must increase: {frame_idx} after {self._entries[-1].frame_idx}")
        if not self._entries and not is_iframe:
            raise ValueError("the first frame must be an I-frame")
        off = self._f.seek(0, os.SEEK_END)
        self._f.write(record)
        self._entries.append(_Entry(frame_idx, bool(is_iframe), off, len(record)))
        return len(record)

    def close(self) -> None:
        """Write the trailing index (optional accelerator) and close."""
        if self._closed:
            return
        self._closed = True
        off = self._f.seek(0, os.SEEK_END)
        self._f.write(encode_index([(e.frame_idx, e.is_iframe, e.offset, e.nbytes) for e in self._entries], off))
        self._sync()
        self._f.close()

    def abort(self) -> None:
        """Close without the index (a file being given up, e.g. a failed merge's temporary); no-op once closed."""
        if not self._closed:
            self._closed = True
            self._f.close()

    def __enter__(self) -> "ContainerWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def write_atomically(
    path: Union[str, os.PathLike],
    header: SequenceHeader,
    global_chunks: dict[Union[ChunkType, int], bytes] | Sequence[tuple[Union[ChunkType, int], bytes]] | None = None,
) -> Iterator[ContainerWriter]:
    """The lifecycle of a file written in one go (a whole-sequence method's coding stage): the frames go into
    `<path>.part`, which is closed (index + trailer) and renamed to `path` only when the block ends normally, so
    `path` is either absent, the previous complete file, or the new complete file. On an exception `<path>.part` is
    closed and left for inspection; rerunning the stage rewrites it. (A frame-sequential method appends to its live
    file instead and resumes it with `ContainerWriter.open_append`.)"""
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    writer = ContainerWriter(tmp, header, global_chunks)
    try:
        yield writer
    finally:
        writer.close()
    os.replace(tmp, path)
    _fsync_dir(path)
