"""Per-frame decoded state on disk: what playback and the next frame's prediction read.

Each frame is one file written atomically (temp file + rename), so a run killed at any moment
leaves every finished frame intact and no half-written one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional

import torch


class FrameStore:
    """A folder of `frame-NNNNN.pt` files holding tensors of decoded frame states."""

    def __init__(self, root: Path, cache_size: int = 4) -> None:
        self.root = Path(root)
        self.cache_size = cache_size
        self._cache: Dict[int, Dict[str, torch.Tensor]] = {}

    def path(self, frame: int) -> Path:
        return self.root / f"frame-{frame:05d}.pt"

    def save(self, frame: int, state: Dict[str, torch.Tensor]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        cpu_state = {k: (v.detach().cpu() if isinstance(v, torch.Tensor) else v) for k, v in state.items()}
        tmp = self.path(frame).with_suffix(".tmp")
        with open(tmp, "wb") as f:
            torch.save(cpu_state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path(frame))
        self._cache.pop(frame, None)

    def has(self, frame: int) -> bool:
        return self.path(frame).exists()

    def frames(self) -> List[int]:
        if not self.root.exists():
            return []
        return sorted(int(p.stem.split("-")[1]) for p in self.root.glob("frame-*.pt"))

    def load(self, frame: int) -> Optional[Dict[str, torch.Tensor]]:
        if frame in self._cache:
            return self._cache[frame]
        if not self.has(frame):
            return None
        state = torch.load(self.path(frame), map_location="cpu", weights_only=False)
        if len(self._cache) >= self.cache_size:
            self._cache.pop(next(iter(self._cache)))
        self._cache[frame] = state
        return state

    def discard_after(self, last_kept: int) -> None:
        """Remove states of frames after `last_kept` (a resumed run redoes them)."""
        for f in self.frames():
            if f > last_kept:
                self.path(f).unlink()
                self._cache.pop(f, None)
