"""Parsing a METHOD_CONFIG chunk (JSON) with a method's own validator, every failure a typed error."""

from __future__ import annotations

import json
import math
from typing import Any, Callable, Optional, Tuple, TypeVar

from nerfstudio_vvc.codec.errors import CorruptChunkError

T = TypeVar("T")


def parse_method_config_json(data: Optional[bytes], validate: Callable[[Any], T], max_bytes: int,
                             source: str = "<bytes>") -> T:
    """METHOD_CONFIG bytes → ``validate(parsed JSON)``; a missing chunk, oversize or non-UTF-8 bytes, bad JSON, or a
    validator's ValueError / TypeError / KeyError become one ``CorruptChunkError`` naming the file and the field."""
    if data is None:
        raise CorruptChunkError("no METHOD_CONFIG chunk", source=source, where="METHOD_CONFIG")
    try:
        if len(data) > max_bytes:
            raise ValueError(f"{len(data)} bytes (at most {max_bytes})")
        return validate(json.loads(data.decode("utf-8")))
    except (ValueError, TypeError, KeyError, UnicodeDecodeError, RecursionError) as exc:
        raise CorruptChunkError(f"bad method config ({type(exc).__name__}: {exc})", source=source,
                                where="METHOD_CONFIG") from None


def check_value(v: object, name: str, rule: Tuple) -> object:
    """One METHOD_CONFIG value against its rule: ``(bool,)`` or ``(int | float, lo, hi)`` (a bool is never a number).

    Returns the value as ``int`` / ``float`` / ``bool``; raises TypeError / ValueError naming the field ``name``."""
    kind = rule[0]
    if kind is bool:
        if not isinstance(v, bool):
            raise TypeError(f"{name} must be true/false, got {type(v).__name__}")
        return v
    lo, hi = rule[1], rule[2]
    if isinstance(v, bool) or not isinstance(v, (int,) if kind is int else (int, float)):
        raise TypeError(f"{name} must be {'an integer' if kind is int else 'a number'}, got {type(v).__name__}")
    if not math.isfinite(v) or not lo <= v <= hi:
        raise ValueError(f"{name} = {v!r} outside [{lo}, {hi}]")
    return kind(v)
