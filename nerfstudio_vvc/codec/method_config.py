"""Parsing a METHOD_CONFIG chunk (JSON) with a method's own validator, every failure a typed error, and the one rule
table type (`Rule`, `check_object`) the methods' validators are written with."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, TypeVar, Union

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


@dataclass(frozen=True)
class Rule:
    """Type and range of one METHOD_CONFIG field: the one rule type of every method's rule tables.

    ``kind``: int, float, bool or str (a bool is never accepted as a number); ``lo`` / ``hi``: the range of a number;
    ``choices``: the allowed strings (str); ``seq``: a list of such values, ``min_len``..``max_len`` long;
    ``optional``: a file without the field gets ``default`` (fields added after files were written)."""

    kind: type
    lo: Optional[float] = None
    hi: Optional[float] = None
    seq: bool = False
    max_len: int = 16
    min_len: int = 1
    optional: bool = False
    default: object = None
    choices: Tuple[str, ...] = ()


RuleLike = Union[Rule, Tuple]
"""A `Rule`, or the short tuple form ``(bool,)`` / ``(str, choices)`` / ``(int | float, lo, hi)``."""


def as_rule(rule: RuleLike) -> Rule:
    if isinstance(rule, Rule):
        return rule
    kind = rule[0]
    if kind is bool:
        return Rule(bool)
    if kind is str:
        return Rule(str, choices=tuple(rule[1]) if len(rule) > 1 else ())
    return Rule(kind, rule[1], rule[2])


def check_value(v: object, name: str, rule: RuleLike) -> object:
    """One METHOD_CONFIG value against its rule (a `Rule` or its tuple form; not a list: see `check_field`).

    Returns the value as ``int`` / ``float`` / ``bool`` / ``str``; raises TypeError / ValueError naming the field."""
    r = as_rule(rule)
    kind = r.kind
    if kind is bool:
        if not isinstance(v, bool):
            raise TypeError(f"{name} must be true/false, got {type(v).__name__}")
        return v
    if kind is str:
        if not isinstance(v, str):
            raise TypeError(f"{name} must be a string, got {type(v).__name__}")
        if r.choices and v not in r.choices:
            raise ValueError(f"{name} = {v[:40]!r} is not one of {list(r.choices)}")
        return v
    lo, hi = r.lo, r.hi
    if isinstance(v, bool) or not isinstance(v, (int,) if kind is int else (int, float)):
        raise TypeError(f"{name} must be {'an integer' if kind is int else 'a number'}, got {type(v).__name__}")
    if not math.isfinite(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ValueError(f"{name} = {v!r} outside [{lo}, {hi}]")
    return kind(v)


def check_field(value: object, rule: RuleLike, name: str) -> object:
    """One METHOD_CONFIG field: a value, or for a ``seq`` rule a list of them (returned as a tuple)."""
    r = as_rule(rule)
    if not r.seq:
        return check_value(value, name, r)
    if not isinstance(value, list) or not r.min_len <= len(value) <= r.max_len:
        raise TypeError(f"{name} must be a list of {r.min_len}..{r.max_len} values, got {str(value)[:60]}")
    return tuple(check_value(v, f"{name}[{i}]", r) for i, v in enumerate(value))


def check_object(obj: object, name: str, rules: Mapping[str, RuleLike]) -> Dict[str, object]:
    """A METHOD_CONFIG object against its rule table: every field checked, unknown fields and missing required ones
    refused (a setting a decoder silently dropped could change the picture); optional ones get their default."""
    if not isinstance(obj, dict):
        raise TypeError(f"{name} must be an object")
    unknown = sorted(set(obj) - set(rules))
    if unknown:
        raise ValueError(f"unknown {name} field(s) {unknown[:4]}")
    out: Dict[str, object] = {}
    for key, rule in rules.items():
        r = as_rule(rule)
        if key in obj:
            out[key] = check_field(obj[key], r, f"{name}.{key}")
        elif r.optional:
            out[key] = r.default
        else:
            raise KeyError(f"{name}.{key} missing")
    return out
