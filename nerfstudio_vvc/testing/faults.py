"""Fault-injection hooks for the resume and worker-loss tests, set through environment variables.

* ``NSVVC_KILL_AT`` (`KILL_ENV`): ``<stage>`` raises `SimulatedKill` inside that stage after its work, before its
  outputs are saved; ``<stage>:<n>`` after n units (training steps of this process, fragments of ``dynamic``).
  Called by the resumable stages (`training/stages.py`, `methods/*/stages.py`).
* ``NSVVC_FAULT_KILL_GOP`` (`FAULT_ENV`): ``<gop>:<frames>:<marker file>`` makes the first attempt of that GOP in
  ``ns-vvc encode-parallel`` kill its ns-train and then its own Ray worker process once ``<frames>`` of the GOP's
  frames are finished (the marker file records that the fault fired, so the retry runs normally).

Standard library only; unset, every hook is a no-op.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Tuple

KILL_ENV = "NSVVC_KILL_AT"
FAULT_ENV = "NSVVC_FAULT_KILL_GOP"


class SimulatedKill(RuntimeError):
    """Raised where NSVVC_KILL_AT says (tests of resume)."""


def maybe_kill(stage: str, units: Optional[int] = None) -> None:
    """Raise `SimulatedKill` if `$NSVVC_KILL_AT` names this point of `stage` (see the module doc)."""
    spec = os.environ.get(KILL_ENV, "")
    if not spec:
        return
    name, _, n = spec.partition(":")
    if name == stage and ((n == "" and units is None) or (n != "" and units is not None and units >= int(n))):
        raise SimulatedKill(f"simulated kill in stage {stage}" + (f" after {units} units" if units is not None else ""))


def gop_fault() -> Optional[str]:
    """The GOP fault to pass to the workers (`$NSVVC_FAULT_KILL_GOP`), or None."""
    return os.environ.get(FAULT_ENV) or None


def gop_fault_for(fault: Optional[str], gop_index: int) -> Optional[Tuple[int, Path]]:
    """(frames after which to kill, marker file) when `fault` targets this GOP and has not fired yet, else None."""
    if not fault:
        return None
    g, n, m = fault.split(":", 2)
    if int(g) != gop_index or Path(m).exists():
        return None
    return int(n), Path(m)
