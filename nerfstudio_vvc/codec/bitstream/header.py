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
        """Parse and validate (types and ranges of every field): a crafted header gives CorruptChunkError."""

        def bad(msg: str) -> CorruptChunkError:
            return CorruptChunkError(f"invalid sequence header: {msg}", source=source, where="header", offset=offset)

        try:
            obj = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise bad(f"not UTF-8 JSON ({e})") from None
        if not isinstance(obj, dict):
            raise bad(f"expected a JSON object, got {type(obj).__name__}")
        missing = [
            k for k in ("method_id", "num_frames", "fps", "gop_size", "num_cameras", "scene_box") if k not in obj
        ]
        if missing:
            raise bad(f"missing key(s) {missing}")
        method_id = obj["method_id"]
        if not isinstance(method_id, str) or not 0 < len(method_id) <= 256:
            raise bad(f"method_id must be a non-empty string, got {method_id!r:.80}")
        ints = {}
        for name, hi in (("num_frames", MAX_FRAMES), ("gop_size", MAX_FRAMES), ("num_cameras", MAX_CAMERAS)):
            v = obj[name]
            if not _is_int(v) or not 0 <= v <= hi:
                raise bad(f"{name} must be an integer in [0, {hi}], got {v!r:.80}")
            ints[name] = int(v)
        fps = obj["fps"]
        if not _is_real(fps) or not 0 < fps <= MAX_FPS:
            raise bad(f"fps must be a number in (0, {MAX_FPS}], got {fps!r:.80}")
        box = obj["scene_box"]
        if (
            not isinstance(box, list)
            or len(box) != 2
            or any(not isinstance(c, list) or len(c) != 3 for c in box)
            or not all(_is_real(v) and math.isfinite(v) for c in box for v in c)
        ):
            raise bad(f"scene_box must be 2x3 finite numbers, got {box!r:.80}")
        extra = obj.get("extra", {})
        if not isinstance(extra, dict):
            raise bad(f"extra must be a JSON object, got {type(extra).__name__}")
        return cls(
            method_id=method_id,
            fps=float(fps),
            scene_box=(tuple(float(v) for v in box[0]), tuple(float(v) for v in box[1])),  # type: ignore[arg-type]
            extra=extra,
            **ints,
        )


MAX_FRAMES = (1 << 32) - 1  # frame ids are u32 on disk
MAX_CAMERAS = 1 << 16
MAX_FPS = 1000.0


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
