"""Test helper: copy a `.vvc` stream chunk by chunk (valid CRCs), letting a test replace global or frame chunks —
how the crafted-file tests build streams that pass the container checks and must fail in a method's decoder.

Built on the public serialise API (`StreamContents`, `codec/bitstream/contents.py`), the one the payload fuzzer
uses too (`nerfstudio_vvc/testing/fuzz.py`)."""

from __future__ import annotations

from pathlib import Path

from nerfstudio_vvc.codec.bitstream.contents import StreamContents


def rewrite_stream(src: Path, dst: Path, globals_fn=None, frame_fn=None) -> Path:
    """`globals_fn(list of (type, bytes)) -> list` edits the globals, `frame_fn(FrameRecord) -> chunks` each frame."""
    s = StreamContents.read(src, strict=False)
    if globals_fn:
        s.global_chunks = list(globals_fn(list(s.global_chunks)))
    if frame_fn:
        s.frames = [(rec.frame_idx, rec.is_iframe, list(frame_fn(rec))) for rec in s.frame_records(str(src))]
    return s.write(dst)
