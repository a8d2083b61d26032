"""`ns-vvc`: the plugin's own commands (sample scene, evaluation, demo, bitstream tools).

Subcommands import their modules lazily so `ns-vvc --help` stays fast.
"""

from __future__ import annotations

import sys
from typing import List, Optional, Tuple, Union

import tyro
from typing_extensions import Annotated

from nerfstudio_vvc.codec.bitstream.merge import MergeBitstreams
from nerfstudio_vvc.data.sample_scene import MakeSampleConfig
from nerfstudio_vvc.export.bitstream import ExportBitstream
from nerfstudio_vvc.playback.evaluate import DecodeBitstream, EvalBitstream, EvalRun
from nerfstudio_vvc.playback.play import PlayBitstream
from nerfstudio_vvc.scripts.demo import Demo
from nerfstudio_vvc.scripts.encode_parallel import EncodeParallel
from nerfstudio_vvc.scripts.rd_sweep import RdSweep
from nerfstudio_vvc.scripts.startup import fast_external_method_check
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
    Annotated[EncodeParallel, tyro.conf.subcommand(name="encode-parallel")],
]


def split_passthrough(argv: List[str]) -> Tuple[List[str], Optional[Tuple[List[str], List[str]]]]:
    """`ns-vvc encode-parallel ... -- --iframe-iterations 600 vvc-data --downscale-factor 2`: the arguments after
    `--` go to every ns-train run, method options before `vvc-data`, dataparser options after it (tyro cannot
    take values that start with `--`)."""
    if "--" not in argv:
        return argv, None
    i = argv.index("--")
    rest = argv[i + 1 :]
    if "vvc-data" in rest:
        j = rest.index("vvc-data")
        return argv[:i], (rest[:j], rest[j + 1 :])
    return argv[:i], (rest, [])


def entrypoint() -> None:
    fast_external_method_check()  # ~2 s less start-up for every subcommand that loads nerfstudio's method registry
    tyro.extras.set_accent_color("bright_yellow")
    argv, passthrough = split_passthrough(sys.argv[1:])
    cmd = tyro.cli(Commands, args=argv)
    if passthrough is not None:
        if not hasattr(cmd, "train_args"):
            raise SystemExit(
                "ns-vvc: error: `-- ARGS` (ns-train arguments) works with encode-parallel and rd-sweep only"
            )
        method, data = passthrough
        cmd.train_args = (*cmd.train_args, *method)  # type: ignore[attr-defined]
        cmd.data_args = (*cmd.data_args, *data)  # type: ignore[attr-defined]
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
