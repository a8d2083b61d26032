"""Parsing a METHOD_CONFIG chunk (JSON) with a method's own validator, every failure a typed error."""

from __future__ import annotations

import json
from typing import Any, Callable, Optional, TypeVar

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
