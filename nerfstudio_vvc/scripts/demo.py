"""`make demo`: sample scene → train a few frames → render test cameras → metric table + PNGs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Literal

from nerfstudio.utils.rich_utils import CONSOLE

from nerfstudio_vvc.methods.spec import VvcMethod, get_method


@dataclass
class Demo:
    """Run the main job on the embedded sample scene (about 6 minutes on 2 CPU cores)."""

    out: Path = Path("demo_out")
    """Working folder: sample scene, run, images."""
    method: Literal["vvc-rate-aware", "vvc-grid"] = "vvc-rate-aware"
    """Method to train."""
    num_frames: int = 3
    """Frames of the sample sequence to train and code."""
    gop_size: int = 3
    """GOP size: one I-frame and two P-frames (I P P). GOP 2 (I P I) gave 26.35 / 25.99 / 24.56 dB at 90.6 / 30.4 /
    86.1 KB (mean 25.63 dB, 69.0 KB/frame, 460 s); GOP 3 gives 26.35 / 25.99 / 26.06 dB at 90.6 / 30.4 / 17.0 KB
    (mean 26.13 dB, 46.0 KB/frame, 354 s): frame 2 refined from frame 1 beats a fresh I-frame (docs/rate_aware.md)."""
    iframe_iterations: int = 1200
    """I-frame iterations (vvc-rate-aware). The CPU preset's 600 / 150 gave a mean test PSNR of 24.88 dB at
    135.8 KB/frame on the sample (301 s); 1200 / 300 give 25.02 dB at 90.4 KB/frame (479 s): the same quality
    within I-frame seed noise, a third fewer bytes (docs/rate_aware.md)."""
    pframe_iterations: int = 300
    """P-frame iterations (vvc-rate-aware)."""
    extra_args: List[str] = field(default_factory=list)
    """More ns-train arguments (method options, before the dataparser)."""

    def run(self, cmd: List[str]) -> None:
        CONSOLE.print("[bold]$ " + " ".join(cmd))
        env = dict(os.environ, PYTHONWARNINGS="ignore")
        proc = subprocess.run(cmd, env=env)
        if proc.returncode != 0:
            raise SystemExit(f"demo step failed (exit {proc.returncode}): {' '.join(cmd)}")

    @property
    def spec(self) -> VvcMethod:
        """The method's spec (`nerfstudio_vvc.methods` entry point)."""
        return get_method(self.method)

    def iteration_args(self) -> List[str]:
        """The I/P iteration options, for the codec methods of the frame-sequential trainer (vvc-grid keeps its
        preset's)."""
        if not (self.spec.trainer == "frame-sequential" and self.spec.has_bitstream):
            return []
        return ["--iframe-iterations", str(self.iframe_iterations), "--pframe-iterations", str(self.pframe_iterations)]

    def main(self) -> None:
        t0 = time.perf_counter()
        bindir = Path(sys.executable).parent
        sample = self.out / "sample"
        if not (sample / "train_meta.json").exists():
            self.run(
                [str(bindir / "ns-vvc"), "make-sample", "--out", str(sample), "--num-frames", str(self.num_frames)]
            )
        spec = self.spec
        preset = spec.cpu_preset or self.method
        run_dir = self.out / "runs" / "sample" / preset / "demo"
        self.run(
            [
                str(bindir / "ns-train"),
                preset,
                "--output-dir",
                str(self.out / "runs"),
                "--experiment-name",
                "sample",
                "--timestamp",
                "demo",
                "--vis",
                "tensorboard",
                "--machine.device-type",
                "cpu",
                "--gop-size",
                str(self.gop_size),
                "--max-frames",
                str(self.num_frames),
                *self.iteration_args(),
                *self.extra_args,
                "vvc-data",
                "--data",
                str(sample),
            ]
        )
        if spec.has_bitstream:
            bitstream = run_dir / str(spec.bitstream)
            self.run(
                [
                    str(bindir / "ns-vvc"),
                    "eval",
                    str(bitstream),
                    "--load-config",
                    str(run_dir / "config.yml"),
                    "--output-dir",
                    str(self.out / "eval"),
                ]
            )
        else:
            self.run(
                [
                    str(bindir / "ns-vvc"),
                    "eval-run",
                    "--load-config",
                    str(run_dir / "config.yml"),
                    "--output-dir",
                    str(self.out / "eval"),
                ]
            )
        CONSOLE.print(f"demo finished in {time.perf_counter() - t0:.0f} s; images in {self.out / 'eval'}")
