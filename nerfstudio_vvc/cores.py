"""CPU cores this process may use: one answer for the parallel encoder (Ray workers) and the playback renderer.

Import-light: no torch, no nerfstudio.
"""

from __future__ import annotations

import os


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover  (not on Linux)
        return max(1, os.cpu_count() or 1)
