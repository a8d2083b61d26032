"""Files the project writes are strict JSON: non-finite floats become null, never NaN/Infinity."""

from __future__ import annotations

import json

import pytest

from nerfstudio_vvc.jsonio import strict_json


def _reject(name: str):
    raise ValueError(name)


def test_non_finite_floats_become_null():
    text = strict_json({"psnr": float("nan"), "kb": [1.5, float("inf"), -float("inf")], "t": (2, "x")}, indent=1)
    assert json.loads(text, parse_constant=_reject) == {"psnr": None, "kb": [1.5, None, None], "t": [2, "x"]}


def test_what_is_not_json_is_refused():
    with pytest.raises(TypeError):
        strict_json({"path": object()})
