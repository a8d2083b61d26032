"""`ns-vvc`: the plugin's own commands (sample scene, evaluation, demo, bitstream tools).

Subcommands import their modules lazily so `ns-vvc --help` stays fast.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import tyro
from typing_extensions import Annotated

from nerfstudio_vvc.codec.bitstream.merge import MergeBitstreams
from nerfstudio_vvc.data.sample_scene import MakeSampleConfig
from nerfstudio_vvc.export.bitstream import ExportBitstream
from nerfstudio_vvc.playback.evaluate import DecodeBitstream, EvalBitstream, EvalRun
from nerfstudio_vvc.playback.play import PlayBitstream
from nerfstudio_vvc.scripts.demo import Demo
from nerfstudio_vvc.scripts.rd_sweep import RdSweep
from nerfstudio_vvc.user_errors import debug_enabled, install_excepthook, report

Commands = Union[
    Annotated[MakeSampleConfig, tyro.conf.subcommand(name="make-sample")],
    Annotated[EvalBitstream, tyro.conf.subcommand(name="eval")],
    Annotated[DecodeBitstream, tyro.conf.subcommand(name="decode")],
    Annotated[PlayBitstream, tyro.conf.subcommand(name="play")],
    Annotated[ExportBitstream, tyro.conf.subcommand(name="export")],
    Annotated[EvalRun, tyro.conf.subcommand(name="eval-run")],
    Annotated[Demo, tyro.conf.subcommand(name="demo")],
    Annotated[RdSweep, tyro.conf.subcommand(name="rd-sweep")],
    Annotated[MergeBitstreams, tyro.conf.subcommand(name="merge")],
]


def entrypoint() -> None:
    tyro.extras.set_accent_color("bright_yellow")
    cmd = tyro.cli(Commands)
    install_excepthook()  # VvcDataError / BitstreamError: one line, no traceback (NSVVC_DEBUG=1 shows it)
    try:
        cmd.main()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        if debug_enabled():
            raise
        report(exc)  # e.g. "ns-vvc: error: [Errno 2] No such file or directory: 'x.vvc'"
        sys.exit(1)


if __name__ == "__main__":
    entrypoint()
