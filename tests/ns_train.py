"""Test helper: the `ns-train` command line of a test run, built in one place.

    ns_train_cmd(preset, out, *args, data=D, data_args=(...))
    -> ns-train PRESET --output-dir OUT --experiment-name e --timestamp t --vis tensorboard
       [--machine.device-type cpu] ARGS vvc-data --data D DATA_ARGS

`args` come after the fixed ones, so a repeated option in them wins (tyro keeps the last). `device=None` leaves the
device flag out (what a user types for a -cpu preset). `run_dir` is where that run's files go.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional, Sequence

NS_TRAIN = str(Path(sys.executable).parent / "ns-train")


def ns_train_cmd(preset: str, out: Path, *args: str, data: Path, data_args: Sequence[str] = (), name: str = "e",
                 stamp: str = "t", device: Optional[str] = "cpu") -> List[str]:
    device_args = ["--machine.device-type", device] if device is not None else []
    return [NS_TRAIN, preset, "--output-dir", str(out), "--experiment-name", name, "--timestamp", stamp,
            "--vis", "tensorboard", *device_args, *args, "vvc-data", "--data", str(data), *data_args]


def run_dir(out: Path, preset: str, name: str = "e", stamp: str = "t") -> Path:
    return Path(out) / name / preset / stamp
