"""A container's contents as plain, editable data, and back to a file (the public serialise API).

`StreamContents.read(path)` verifies a file like any reader and returns its header JSON, global chunks and frames;
`to_bytes()` re-serialises them with valid record and chunk CRCs and a valid trailing index: for an unedited
file, the same bytes a `ContainerWriter` wrote. Tests that craft hostile files (`tests/stream_edit.py`) and the
payload fuzzer (`nerfstudio_vvc/testing/fuzz.py`) edit a file through it, never through the container's
internals. A writer refuses some edits (a P-frame first, ids out of order); this API does not, so readers and
decoders can be tested against them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Tuple, Union

from nerfstudio_vvc.codec.bitstream.container import ContainerReader, FrameRecord, serialize_container
from nerfstudio_vvc.codec.bitstream.header import SequenceHeader

ChunkData = List[Tuple[int, bytes]]
"""(chunk type code, payload) in stream order."""


@dataclass
class StreamContents:
    """Header JSON, global chunks and frames `(frame_idx, is_iframe, chunks)` of a container, editable in place."""

    header_json: bytes
    global_chunks: ChunkData
    frames: List[Tuple[int, bool, ChunkData]] = field(default_factory=list)

    @classmethod
    def read(cls, path: Union[str, Path], strict: bool = True) -> "StreamContents":
        """Every frame of `path`, verified (CRCs, chunk lists); `strict` refuses a torn tail."""
        with ContainerReader(Path(path), strict=strict) as r:
            frames = [(f.frame_idx, f.is_iframe, [(int(t), bytes(d)) for t, d in f.chunks]) for f in r.iter_frames()]
            return cls(r.header.to_json_bytes(), [(int(t), bytes(d)) for t, d in r.global_chunk_list], frames)

    load = read  # the fuzzer's name

    @property
    def header(self) -> SequenceHeader:
        """The header, parsed and validated (raises the reader's typed error when an edit broke it)."""
        return SequenceHeader.from_json_bytes(self.header_json)

    @header.setter
    def header(self, value: SequenceHeader) -> None:
        self.header_json = value.to_json_bytes()

    def frame_records(self, source: str = "<bytes>") -> List[FrameRecord]:
        """The frames as the reader's `FrameRecord`s (what method decoders take)."""
        return [FrameRecord(idx, is_i, list(chunks), source=source) for idx, is_i, chunks in self.frames]

    def copy(self) -> "StreamContents":
        return StreamContents(self.header_json, list(self.global_chunks), [(i, f, list(c)) for i, f, c in self.frames])

    def to_bytes(self) -> bytes:
        """Serialise with valid record/chunk CRCs and a valid trailing index (what a writer would produce)."""
        return serialize_container(self.header_json, self.global_chunks, self.frames)

    def write(self, path: Union[str, Path]) -> Path:
        path = Path(path)
        path.write_bytes(self.to_bytes())
        return path


__all__ = ["ChunkData", "StreamContents"]
