"""Test helper: copy a `.vvc` stream chunk by chunk (valid CRCs), letting a test replace global or frame chunks —
how the crafted-file tests build streams that pass the container checks and must fail in a method's decoder."""

from __future__ import annotations

from pathlib import Path

from nerfstudio_vvc.codec.bitstream.container import ContainerReader, ContainerWriter


def rewrite_stream(src: Path, dst: Path, globals_fn=None, frame_fn=None) -> Path:
    with ContainerReader(src) as r:
        gl = list(r.global_chunk_list)
        frames = [r.read_frame(f) for f in r.frame_indices()]
        header = r.header
    if globals_fn:
        gl = globals_fn(gl)
    with ContainerWriter(dst, header, gl) as w:
        for rec in frames:
            w.write_frame(rec.frame_idx, rec.is_iframe, frame_fn(rec) if frame_fn else rec.chunks)
    return dst
