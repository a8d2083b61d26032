"""Join per-GOP containers into one sequence file (`ns-vvc merge`, `ns-vvc encode-parallel`).

A GOP starts with an I-frame and needs nothing before it, so a sequence can be encoded as separate
per-GOP runs and joined afterwards. The merge copies records verbatim: the prelude, header and globals
of the first part (every part must carry byte-identical ones), then every part's FRAME records in order,
then a freshly built index. Because the records are copied and the index is the one `ContainerWriter`
writes, merging the per-GOP files of a sequence gives exactly the bytes a single writer would have
produced for the same frames.

Every part must be a *closed* file (valid trailing index): a part that is torn or still being written is
refused, as are parts whose header or globals differ, whose first frame is a P-frame or whose frame ids
do not continue after the previous part's. The error is a `BitstreamError` naming the file. The output
is written to a temporary name next to it and renamed only when complete.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Union

import tyro

from nerfstudio_vvc.codec.bitstream.container import ContainerReader, ContainerWriter, _fsync_dir
from nerfstudio_vvc.codec.errors import IncompatibleStreamsError, TruncatedError


@dataclass(frozen=True)
class MergeResult:
    path: Path
    frames: List[int]
    iframes: List[int]
    parts: int
    nbytes: int


def _describe_difference(a: ContainerReader, b: ContainerReader) -> str:
    if a.header != b.header:
        da, db = vars(a.header), vars(b.header)
        keys = [k for k in da if da[k] != db.get(k)]
        return (
            "header differs from the first part's ("
            + ", ".join(
                f"{k}: {json.dumps(db.get(k), default=str)[:60]} vs {json.dumps(da[k], default=str)[:60]}" for k in keys
            )
            + ")"
        )
    if a.global_chunk_list != b.global_chunk_list:
        return "globals (method configuration) differ from the first part's"
    return "header/globals bytes differ from the first part's"


def merge_containers(
    parts: Sequence[Union[str, os.PathLike]],
    out: Union[str, os.PathLike],
    expect_frames: Optional[Sequence[int]] = None,
) -> MergeResult:
    """Merge `parts` (in order) into `out`; `expect_frames`, when given, must equal the merged frame ids."""
    paths = [Path(p) for p in parts]
    out = Path(out)
    if not paths:
        raise ValueError("nothing to merge")
    readers: List[ContainerReader] = []
    tmp = out.with_name(out.name + ".tmp")
    writer = None
    try:
        for p in paths:
            r = ContainerReader(p)  # a damaged record raises a BitstreamError naming p
            readers.append(r)
            if not r.complete:
                how = "torn tail" if r.torn_tail else "no valid index"
                raise TruncatedError(
                    f"not a finished file ({how}: still being written, or cut short); finish or re-run that part first",
                    source=str(p),
                    where="trailer",
                )
            if r.num_frames_written == 0:
                raise IncompatibleStreamsError("holds no frames", source=str(p))
        first = readers[0]
        prefix = first.prefix_bytes()
        last_id, last_src = -1, ""
        for r in readers:
            if r.prefix_bytes() != prefix:
                raise IncompatibleStreamsError(_describe_difference(first, r), source=str(r.path), where="header")
            ids = r.frame_indices()
            if not r.read_frame(ids[0]).is_iframe:
                raise IncompatibleStreamsError(
                    f"first frame {ids[0]} is a P-frame (a part must start a GOP)",
                    source=str(r.path),
                    where=f"frame {ids[0]}",
                )
            if ids[0] <= last_id:
                raise IncompatibleStreamsError(
                    f"frame ids {ids[0]}..{ids[-1]} do not follow frame {last_id} of {last_src}",
                    source=str(r.path),
                    where=f"frame {ids[0]}",
                )
            last_id, last_src = ids[-1], str(r.path)
        frames = [f for r in readers for f in r.frame_indices()]
        if expect_frames is not None and frames != list(expect_frames):
            raise IncompatibleStreamsError(
                f"parts hold frames {_ranges(frames)}, expected {_ranges(list(expect_frames))}",
                source=", ".join(str(p) for p in paths),
            )
        out.parent.mkdir(parents=True, exist_ok=True)
        writer = ContainerWriter.with_prefix(tmp, first.header, prefix)
        iframes = []
        for r in readers:
            for fid in r.frame_indices():
                rec = r.frame_record_bytes(fid)
                is_i = bool(rec[12 + 4] & 1)  # record header (12 bytes), then u32 frame id, u8 flags
                writer.append_frame_record(fid, is_i, rec)
                if is_i:
                    iframes.append(fid)
        writer.close()
        os.replace(tmp, out)
        _fsync_dir(out)
    finally:
        if writer is not None:
            writer.abort()  # (closed already when the merge succeeded)
        for r in readers:
            r.close()
        if tmp.exists():
            tmp.unlink()
    return MergeResult(out, frames, iframes, len(paths), out.stat().st_size)


def _ranges(ids: Sequence[int]) -> str:
    """[0,1,2,5,6] -> '0-2, 5-6'."""
    out, start = [], None
    for i, f in enumerate(ids):
        if start is None:
            start = f
        if i + 1 == len(ids) or ids[i + 1] != f + 1:
            out.append(f"{start}" if start == f else f"{start}-{f}")
            start = None
    return ", ".join(out) or "none"


@dataclass
class MergeBitstreams:
    """Join closed per-GOP .vvc files (in the given order) into one sequence file."""

    parts: tyro.conf.Positional[List[Path]]
    """Input files, in frame order."""
    out: Path = Path("sequence.vvc")
    """Output file (written to a temporary name, then renamed)."""

    def main(self) -> None:
        res = merge_containers(self.parts, self.out)
        print(
            f"{res.path}: {len(res.frames)} frames ({_ranges(res.frames)}), I-frames {res.iframes}, "
            f"{res.nbytes} bytes from {res.parts} parts"
        )
