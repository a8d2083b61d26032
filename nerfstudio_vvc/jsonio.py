"""Strict JSON for every file and report the project writes (stages.json, progress.json, metrics, RD tables, benches).

Python's `json` writes `NaN` / `Infinity` by default, which is not JSON and which other tools (jq, browsers, pandas with
a strict parser) reject. `strict_json` writes a non-finite float as `null` and refuses anything else that is not JSON.
Import-light: the standard library only.
"""

from __future__ import annotations

import json
import math
from typing import Any


def finite_or_none(obj: Any) -> Any:
    """`obj` with every non-finite float (NaN, ±inf) replaced by None, through dicts, lists and tuples."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    return obj


def strict_json(obj: Any, **kwargs: Any) -> str:
    """`json.dumps` that writes non-finite floats as null and never emits NaN/Infinity."""
    return json.dumps(finite_or_none(obj), allow_nan=False, **kwargs)
