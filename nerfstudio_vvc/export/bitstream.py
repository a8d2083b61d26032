"""`ns-export vvc-bitstream`: finalize a run's container and copy it to an output folder.

nerfstudio's `ns-export` is a fixed tyro union with no plugin hook. This package installs its own
`ns-export` console script (it replaces nerfstudio's file in the venv's bin/): `vvc-bitstream` is
handled here and every other subcommand is passed unchanged to nerfstudio's exporter. Trade-off:
uninstalling this package removes the `ns-export` script too (reinstall nerfstudio to restore it);
`ns-vvc export` always works as an alternative name.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path


from nerfstudio.utils.rich_utils import CONSOLE


@dataclass
class ExportBitstream:
    """Write the finished .vvc container of a vvc-rate-aware run."""

    load_config: Path
    """config.yml of the run."""
    output_dir: Path
    """Folder to write sequence.vvc into."""

    def main(self) -> Path:
        from nerfstudio_vvc.codec.bitstream.container import ContainerReader, ContainerWriter
        from nerfstudio_vvc.methods.rate_aware.model import BITSTREAM_NAME

        if not self.load_config.exists():
            raise SystemExit(f"{self.load_config}: no such file")
        src = self.load_config.parent / BITSTREAM_NAME
        if not src.exists():
            raise SystemExit(f"{src}: no bitstream in this run (only vvc-rate-aware runs write one)")
        with ContainerReader(src) as r:
            complete = r.complete
        if not complete:  # a run still training, or killed: write the index of the finished frames
            ContainerWriter.open_append(src).close()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        dst = self.output_dir / BITSTREAM_NAME
        shutil.copyfile(src, dst)
        with ContainerReader(dst) as r:
            n = r.num_frames_written
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
