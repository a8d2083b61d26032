"""Units the project reports in: one KB is 1000 bytes everywhere (viewer, training log, eval, RD tables, docs).

Import-light: no torch, no nerfstudio.
"""

from __future__ import annotations

BYTES_PER_KB = 1000
"""KB = 1000 bytes (SI kilo), as in docs/evaluation.md and the RD tables."""

KB_LABEL = "KB (1000 B)"
"""Column header naming the unit, for tables that print KB."""


def kb(nbytes: float) -> float:
    """Bytes → KB (1000 bytes)."""
    return nbytes / BYTES_PER_KB


def format_kb(nbytes: float, digits: int = 2) -> str:
    """"12.31 KB" for 12,310 bytes."""
    return f"{kb(nbytes):.{digits}f} KB"
