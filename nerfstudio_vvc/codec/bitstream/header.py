"""Chunk type registry and the sequence header (the container's JSON header record)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from nerfstudio_vvc.codec.errors import CorruptChunkError

ANCILLARY_BIT = 0x8000
"""Chunk type codes with bit 15 set are ancillary: readers skip unknown ones.  Unknown codes
without it are critical and rejected (``UnknownChunkTypeError``) -- PNG's rule."""


class ChunkType(IntEnum):
    """Known chunk type codes (u16 on disk). Values are frozen: never renumber."""

    METHOD_CONFIG = 0x0001  # global: JSON method configuration
    GRID = 0x0010  # entropy-coded feature grid (context-model payload)
    OCCUPANCY = 0x0011  # occupancy / bit mask payload (masks.py)
    MLP_WEIGHTS = 0x0012  # rendering MLP state dict (weights.py)
    ENTROPY_MODEL = 0x0013  # integer context/entropy model weights (context.py)
    CODEBOOK = 0x0014  # vector-quantization codebook
    INDEX_PLANE = 0x0015  # index planes (e.g. codebook indices as 2D planes)
    VIDEO_STREAM = 0x0016  # external video elementary stream (e.g. HEVC)
    INR_WEIGHTS = 0x0017  # implicit neural representation weights
    QUANT_STEPS = 0x0018  # quantization step sizes
    GENERIC = 0x0020  # method-defined critical payload
    USER_ANCILLARY = 0x8000  # method-defined ancillary payload (skippable)

    @staticmethod
    def is_ancillary(code: int) -> bool:
        return bool(code & ANCILLARY_BIT)


def _finite_float(x: Any, name: str) -> float:
    v = float(x)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {x!r}")
    return v


@dataclass
class SequenceHeader:
    """Sequence metadata; serialized as UTF-8 JSON with sorted keys (see docs/bitstream.md)."""

    method_id: str
    num_frames: int
    fps: float
    gop_size: int
    num_cameras: int
    scene_box: tuple[tuple[float, float, float], tuple[float, float, float]]
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json_bytes(self) -> bytes:
        box = [[_finite_float(v, "scene_box") for v in corner] for corner in self.scene_box]
        obj = {
            "method_id": str(self.method_id),
            "num_frames": int(self.num_frames),
            "fps": _finite_float(self.fps, "fps"),
            "gop_size": int(self.gop_size),
            "num_cameras": int(self.num_cameras),
            "scene_box": box,
            "extra": self.extra,
        }
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")

    @classmethod
    def from_json_bytes(cls, data: bytes, *, source: str = "<bytes>", offset: int | None = None) -> "SequenceHeader":
        try:
            obj = json.loads(data.decode("utf-8"))
            box = obj["scene_box"]
            if len(box) != 2 or any(len(c) != 3 for c in box):
                raise ValueError("scene_box must be 2x3")
            hdr = cls(
                method_id=str(obj["method_id"]),
                num_frames=int(obj["num_frames"]),
                fps=float(obj["fps"]),
                gop_size=int(obj["gop_size"]),
                num_cameras=int(obj["num_cameras"]),
                scene_box=(tuple(float(v) for v in box[0]), tuple(float(v) for v in box[1])),  # type: ignore[arg-type]
                extra=dict(obj.get("extra", {})),
            )
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, AttributeError) as e:
            raise CorruptChunkError(f"invalid sequence header JSON ({e})", source=source, where="header", offset=offset) from None
        if not isinstance(obj.get("method_id"), str) or hdr.num_frames < 0 or hdr.gop_size < 0 or hdr.num_cameras < 0:
            raise CorruptChunkError("implausible sequence header values", source=source, where="header", offset=offset)
        return hdr
