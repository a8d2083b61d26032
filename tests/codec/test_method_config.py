"""The one METHOD_CONFIG rule-table type (`codec/method_config.py`: `Rule`, `check_object`) and the three methods'
validators written with it; crafted configs get one typed `CorruptChunkError` line naming the file and the field."""

from __future__ import annotations

import json

import pytest

from nerfstudio_vvc.codec.errors import CorruptChunkError
from nerfstudio_vvc.codec.method_config import Rule, check_field, check_object, check_value


def test_rule_table_checks_types_ranges_choices_and_keys():
    rules = {"n": Rule(int, 1, 8), "x": Rule(float, 0.0, 1.0, seq=True, min_len=3, max_len=3), "on": Rule(bool),
             "mode": Rule(str, choices=("a", "b")), "late": Rule(int, 0, 9, optional=True, default=4)}
    ok = check_object({"n": 2, "x": [0, 0.5, 1], "on": False, "mode": "b"}, "obj", rules)
    assert ok == {"n": 2, "x": (0.0, 0.5, 1.0), "on": False, "mode": "b", "late": 4}
    bad = [
        ({"n": True}, TypeError, "obj.n must be an integer"),  # a bool is never a number
        ({"n": 9}, ValueError, r"obj.n = 9 outside \[1, 8\]"),
        ({"x": [0, 1]}, TypeError, "obj.x must be a list of 3..3 values"),
        ({"x": [0, 1, float("nan")]}, ValueError, r"obj.x\[2\]"),
        ({"mode": "c"}, ValueError, r"obj.mode = 'c' is not one of \['a', 'b'\]"),
        ({"mode": 3}, TypeError, "obj.mode must be a string"),
        ({"other": 1}, ValueError, r"unknown obj field\(s\) \['other'\]"),
    ]
    base = {"n": 2, "x": [0, 0.5, 1], "on": False, "mode": "b"}
    for change, exc, msg in bad:
        with pytest.raises(exc, match=msg):
            check_object({**base, **change}, "obj", rules)
    with pytest.raises(KeyError, match="obj.on missing"):
        check_object({k: v for k, v in base.items() if k != "on"}, "obj", rules)
    with pytest.raises(TypeError, match="obj must be an object"):
        check_object([], "obj", rules)
    assert check_value(3, "v", (int, 0, 5)) == 3 and check_value(True, "v", (bool,)) is True  # the tuple form
    assert check_field([1, 2], Rule(int, 0, 5, seq=True), "v") == (1, 2)


def _mv_inr_config() -> dict:
    from nerfstudio_vvc.methods.mv_inr.codec import Camera, StreamConfig

    cams = [Camera(i, 40.0, 40.0, 16.0, 16.0, [[1.0, 0, 0, i], [0, 1.0, 0, 0], [0, 0, 1.0, 0]]) for i in range(3)]
    cfg = StreamConfig(n_frames=2, height=32, width=32, grid_channels=4, conv_channels=(6, 6, 4, 4, 4),
                       compensation=True, grid_embedding=True, bits=8, cameras=cams, basic=1,
                       hevc={"qp": 43, "preset": "veryfast"}, render={"background": [1.0, 1.0, 1.0]})
    return json.loads(cfg.to_bytes())


def test_mv_inr_validates_its_hevc_and_render_objects():
    """vvc-mv-inr's `hevc` and `render` objects were taken as they came; a crafted file now gets one line."""
    from nerfstudio_vvc.methods.mv_inr.codec import parse_method_config

    good = _mv_inr_config()
    cfg = parse_method_config(json.dumps(good).encode(), source="crafted.vvc")
    assert cfg.hevc == {"qp": 43, "preset": "veryfast"} and cfg.render == {"background": [1.0, 1.0, 1.0]}
    crafted = {
        "render is a list": ("render", [1, 2, 3], "render must be an object"),
        "background too short": ("render", {"background": [1.0]}, "render.background must be a list of 3..3"),
        "background NaN": ("render", {"background": [1.0, float("nan"), 0.0]}, r"render.background\[1\]"),
        "background > 1": ("render", {"background": [1.0, 7.0, 0.0]}, r"render.background\[1\] = 7.0 outside"),
        "render unknown key": ("render", {"background": [0, 0, 0], "gain": 2}, r"unknown render field\(s\)"),
        "render empty": ("render", {}, "render.background missing"),
        "hevc string": ("hevc", "x265", "hevc must be an object"),
        "qp huge": ("hevc", {"qp": 10**9, "preset": "veryfast"}, "hevc.qp = 1000000000 outside"),
        "qp float": ("hevc", {"qp": 4.5, "preset": "veryfast"}, "hevc.qp must be an integer"),
        "preset unknown": ("hevc", {"qp": 43, "preset": "rm -rf"}, "hevc.preset = 'rm -rf' is not one of"),
        "hevc missing qp": ("hevc", {"preset": "fast"}, "hevc.qp missing"),
    }
    for name, (key, value, msg) in crafted.items():
        meta = dict(good, **{key: value})
        with pytest.raises(CorruptChunkError, match=msg) as err:
            parse_method_config(json.dumps(meta).encode(), source="crafted.vvc")
        line = str(err.value)
        assert "\n" not in line and "crafted.vvc" in line and "METHOD_CONFIG" in line, (name, line)


def test_codebook_hex_object_through_the_rule_table():
    import dataclasses

    from nerfstudio_vvc.methods.codebook.codec import HEX_RULES, parse_method_config
    from nerfstudio_vvc.methods.codebook.field import HexSpec
    from nerfstudio_vvc.testing.fuzz_targets.codebook import TINY_RENDER, TINY_SPEC

    assert set(HEX_RULES) == {f.name for f in dataclasses.fields(HexSpec)}  # a new HexSpec field needs a rule
    from nerfstudio_vvc.methods.codebook.codec import StreamConfig

    good = json.loads(StreamConfig(TINY_SPEC, 4, 2, {"density": 20, "appearance": 30}, TINY_RENDER).to_bytes())
    assert parse_method_config(json.dumps(good).encode()).spec == TINY_SPEC
    for change, msg in [
        ({"appearance_resolutions": [4] * 9}, "hex.appearance_resolutions must be a list of 1..8"),
        ({"appearance_resolutions": [4, True]}, r"hex.appearance_resolutions\[1\] must be an integer"),
        ({"hidden_dim": 0}, "hex.hidden_dim = 0 outside"),
        ({"extra": 1}, r"unknown hex field\(s\) \['extra'\]"),
    ]:
        meta = dict(good, hex=dict(good["hex"], **change))
        with pytest.raises(CorruptChunkError, match=msg):
            parse_method_config(json.dumps(meta).encode(), source="c.vvc")
