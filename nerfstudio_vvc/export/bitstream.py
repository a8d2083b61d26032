"""`ns-export vvc-bitstream`: copy a run's finished frames into a closed container in an output folder.

nerfstudio's `ns-export` is a fixed tyro union with no plugin hook. This package installs its own
`ns-export` console script (it replaces nerfstudio's file in the venv's bin/): `vvc-bitstream` is
handled here and every other subcommand is passed unchanged to nerfstudio's exporter. Trade-off:
uninstalling this package removes the `ns-export` script too (reinstall nerfstudio to restore it);
`ns-vvc export` always works as an alternative name.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from nerfstudio.utils.rich_utils import CONSOLE


def copy_finished_frames(src: Path, dst: Path) -> int:
    """Copy the complete frames of `src` (a closed file, or one a trainer is still appending to) into a new,
    closed container `dst`; returns the number of frames. `src` is only read.

    The finished frames are a byte prefix of `src` (header, globals, complete frame records; a writer only
    ever appends after them), so the copy is that prefix plus a fresh index. For a closed file the copy is
    byte-identical to it. The copy is written to a temporary name and renamed when complete.
    """
    from nerfstudio_vvc.codec.bitstream.container import ContainerReader, ContainerWriter

    if dst.exists() and dst.resolve() == src.resolve():
        raise SystemExit(f"{dst}: the output would replace the run's own bitstream; choose another --output-dir")
    with ContainerReader(src) as r:
        end = r.frames_end
    tmp = dst.with_name(dst.name + ".part")
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        left = end
        while left > 0:
            block = fin.read(min(left, 1 << 20))
            if not block:
                raise SystemExit(f"{src}: shrank while being copied")
            fout.write(block)
            left -= len(block)
    writer = ContainerWriter.open_append(tmp)  # verifies the copy, then writes its index and trailer
    n = writer.num_frames_written
    writer.close()
    os.replace(tmp, dst)
    return n


@dataclass
class ExportBitstream:
    """Write the finished frames of a run's .vvc container into a new, closed file (the run's own file is
    never modified: a run still training keeps appending to it)."""

    load_config: Path
    """config.yml of the run."""
    output_dir: Path
    """Folder to write sequence.vvc into."""

    def main(self) -> Path:
        from nerfstudio_vvc.codec.errors import BitstreamError
        from nerfstudio_vvc.methods.spec import BITSTREAM_NAME, method_of_run
        from nerfstudio_vvc.playback.registry import open_decoder

        if not self.load_config.exists():
            raise SystemExit(f"{self.load_config}: no such file")
        method = method_of_run(self.load_config)  # the run's method spec names its bitstream
        if method is not None and not method.has_bitstream:
            raise SystemExit(f"{self.load_config.parent}: {method.method_id} writes no bitstream (it has no codec)")
        name = method.bitstream if method is not None and method.bitstream else BITSTREAM_NAME
        src = self.load_config.parent / name
        if not src.exists():
            raise SystemExit(f"{src}: no bitstream in this run (only methods with a codec write one)")
        try:
            open_decoder(src).close()  # a method this build can decode (registry), with a valid header
            self.output_dir.mkdir(parents=True, exist_ok=True)
            dst = self.output_dir / name
            n = copy_finished_frames(src, dst)
        except BitstreamError as exc:
            raise SystemExit(str(exc)) from None
        CONSOLE.print(f"wrote {dst}: {dst.stat().st_size} bytes, {n} frames")
        return dst


def entrypoint() -> None:
    """`ns-export`: our subcommand, else nerfstudio's exporter."""
    if len(sys.argv) > 1 and sys.argv[1] == "vvc-bitstream":
        import tyro

        sys.argv = [sys.argv[0] + " vvc-bitstream", *sys.argv[2:]]
        tyro.cli(ExportBitstream).main()
        return
    from nerfstudio.scripts.exporter import entrypoint as ns_entrypoint

    if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
        CONSOLE.print("nerfstudio-vvc adds: ns-export vvc-bitstream --load-config CONFIG --output-dir DIR")
    ns_entrypoint()
