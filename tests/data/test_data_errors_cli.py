"""Data errors at the command line (one line naming the file, no traceback) and left-handed captures."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import List

import numpy as np
import pytest
import torch
from conftest import ring_w2c

from nerfstudio_vvc.data.dataparser import VvcDataParserConfig
from nerfstudio_vvc.data.formats import VvcDataError, load_raw

BIN = Path(sys.executable).parent
MIRROR_Z = np.diag([1.0, 1.0, -1.0, 1.0])
MIRROR_X = np.diag([-1.0, 1.0, 1.0, 1.0])


def edit_meta(root: Path, fn, name: str = "train_meta.json") -> None:
    p = root / name
    m = json.loads(p.read_text())
    fn(m)
    p.write_text(json.dumps(m))


def reflect(root: Path, mirror: np.ndarray, cams=None) -> None:
    """Write the capture in a mirrored world: w2c' = w2c @ mirror (for ``cams``, default all)."""
    for name in ("train_meta.json", "test_meta.json"):
        def fn(m):
            for t, row in enumerate(m["w2c"]):
                for j, w2c in enumerate(row):
                    if cams is None or m["cam_id"][t][j] in cams:
                        row[j] = (np.asarray(w2c) @ mirror).tolist()

        edit_meta(root, fn, name)


def run_cli(args: List[str], cwd: Path, **env_extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "NSVVC_DEBUG"}
    env.update(PYTHONWARNINGS="ignore", COLUMNS="160", TERM="dumb", **env_extra)
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def assert_one_line_error(proc: subprocess.CompletedProcess, file: Path, problem: str) -> str:
    """Non-zero exit, no traceback anywhere, and stderr is exactly one line naming the file and the problem."""
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert str(file) in lines[0] and problem in lines[0], lines[0]
    return lines[0]


def ns_train(data: Path, out: Path) -> List[str]:
    from ns_train import ns_train_cmd

    return ns_train_cmd("vvc-grid", out, data=data, data_args=("--cache-dir", str(out / "cache")))


def _bad_camera(root: Path) -> Path:
    edit_meta(root, lambda m: m["w2c"][0][1][0].__setitem__(3, float("nan")))
    return root / "train_meta.json"


def _missing_image(root: Path) -> Path:
    (root / "ims" / "2" / "000001.jpg").unlink()
    return root / "ims" / "2" / "000001.jpg"


def _mixed_reflections(root: Path) -> Path:
    reflect(root, MIRROR_Z, cams={1})
    return root / "train_meta.json"


BROKEN = {
    "bad-camera": (_bad_camera, "pose contains non-finite values"),
    "missing-image": (_missing_image, "image file not found"),
    "mixed-reflections": (_mixed_reflections, "mixes left- and right-handed"),
}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("case", list(BROKEN))
def test_ns_train_reports_data_errors_in_one_line(make_panoptic, tmp_path, case):
    """The real `ns-train` on a broken tiny dataset: one line naming the file, no traceback, exit status 1."""
    breaker, problem = BROKEN[case]
    root = make_panoptic(root=tmp_path / case)
    file = breaker(root)
    proc = run_cli(ns_train(root, tmp_path / "out"), tmp_path)
    line = assert_one_line_error(proc, file, problem)
    assert line.startswith("ns-train: error: ") and proc.returncode == 1
    # missing-image: ns-vvc on the run folder ns-train left (config.yml is written before the data is read)
    if case == "missing-image":
        config = tmp_path / "out" / "e" / "vvc-grid" / "t" / "config.yml"
        proc = run_cli([str(BIN / "ns-vvc"), "eval-run", "--load-config", str(config), "--no-lpips"], tmp_path)
        assert assert_one_line_error(proc, file, problem).startswith("ns-vvc: error: ")


@pytest.mark.timeout(600)
def test_ns_vvc_bitstream_and_missing_file_errors(tmp_path):
    bad = tmp_path / "bad.vvc"
    bad.write_bytes(b"NSVVC\r\n\x1a" + b"\x00" * 40)
    decode = [str(BIN / "ns-vvc"), "decode", str(bad), "--out", str(tmp_path / "d")]
    proc = run_cli(decode, tmp_path)
    assert assert_one_line_error(proc, bad, "container version 0.0").startswith("ns-vvc: error: ")
    proc = run_cli([str(BIN / "ns-vvc"), "decode", str(tmp_path / "nope.vvc"), "--out", str(tmp_path / "d")], tmp_path)
    assert_one_line_error(proc, tmp_path / "nope.vvc", "no such file")


def test_one_line_hook_and_debug_switch(tmp_path):
    """Uncaught VvcDataError / BitstreamError: one line; NSVVC_DEBUG=1: the traceback; other errors: untouched."""
    code = (
        "import sys; from nerfstudio_vvc.data.formats import VvcDataError; from nerfstudio_vvc.codec.errors import "
        "CorruptChunkError; kind = sys.argv[1]\n"
        "if kind == 'data': raise VvcDataError('/x/meta.json', 'camera 3: bad\\nthing')\n"
        "if kind == 'bits': raise CorruptChunkError('bad', source='/x/a.vvc', where='frame 2 GRID #1')\n"
        "raise KeyError('bug')\n"
    )
    py = [sys.executable, "-c", code]
    proc = run_cli(py + ["data"], tmp_path)
    assert proc.returncode == 1 and proc.stderr == "-c: error: /x/meta.json: camera 3: bad thing\n"
    proc = run_cli(py + ["bits"], tmp_path)
    assert proc.returncode == 1 and proc.stderr == "-c: error: /x/a.vvc: frame 2 GRID #1: bad\n"
    proc = run_cli(py + ["data"], tmp_path, NSVVC_DEBUG="1")
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "VvcDataError" in proc.stderr
    proc = run_cli(py + ["bug"], tmp_path)
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "KeyError: 'bug'" in proc.stderr


# ------------------------------------------------------------------------------------------ handedness
def parse(root: Path, split: str = "train"):
    return VvcDataParserConfig(data=root, cache_dir=root.parent / "cache").setup().get_dataparser_outputs(split)


def _rays(out):
    cams = out.cameras
    coords = torch.tensor([[0.5, 0.5], [2.5, 6.5], [5.5, 7.5]])
    o, d = [], []
    for i in range(len(cams)):
        rb = cams.generate_rays(camera_indices=i, coords=coords)
        o.append(rb.origins.reshape(-1, 3))
        d.append(rb.directions.reshape(-1, 3))
    return torch.cat(o), torch.cat(d)


def test_all_reflected_capture_loads_mirrored_with_a_warning(make_panoptic, tmp_path, caplog):
    proper = make_panoptic(root=tmp_path / "proper")
    left = make_panoptic(root=tmp_path / "left")
    reflect(left, MIRROR_Z)
    assert all(
        np.linalg.det(np.asarray(w)[:3, :3]) < 0 for w in json.loads((left / "train_meta.json").read_text())["w2c"][0]
    )
    with caplog.at_level(logging.WARNING):
        raw = load_raw(left)
    assert (
        raw.extra["mirrored_world_z"] and "left-handed" in caplog.text and str(left / "train_meta.json") in caplog.text
    )
    assert np.allclose(raw.c2w, load_raw(proper).c2w)  # mirroring z back gives the proper capture exactly
    a, b = parse(proper), parse(left)
    assert torch.allclose(a.cameras.camera_to_worlds, b.cameras.camera_to_worlds, atol=1e-5)
    for x, y in zip(_rays(a), _rays(b)):
        assert torch.allclose(x, y, atol=1e-5)


def test_capture_reflected_in_another_axis_gives_the_same_rays_up_to_a_rigid_motion(make_panoptic, tmp_path):
    """World x mirrored: after the z mirror the capture differs from the proper one by a rotation, which the
    normalisation may keep; every relative camera pose and the rays in each camera's frame are unchanged."""
    proper = make_panoptic(root=tmp_path / "proper")
    left = make_panoptic(root=tmp_path / "left")
    reflect(left, MIRROR_X)
    a, b = parse(proper), parse(left)
    ca, cb = a.cameras.camera_to_worlds.double(), b.cameras.camera_to_worlds.double()
    assert torch.linalg.det(cb[:, :, :3]).min() > 0.99

    def rel(c, i, j):
        hi = torch.eye(4, dtype=torch.float64)
        hj = torch.eye(4, dtype=torch.float64)
        hi[:3], hj[:3] = c[i], c[j]
        return torch.linalg.inv(hi) @ hj

    for i in range(len(ca)):
        for j in range(len(ca)):
            assert torch.allclose(rel(ca, i, j), rel(cb, i, j), atol=1e-4)
    # a ray's direction in its own camera frame is the same
    (_, da), (_, db) = _rays(a), _rays(b)
    n = da.shape[0] // len(ca)
    for i in range(len(ca)):
        la = da[i * n : (i + 1) * n].double() @ ca[i, :, :3]
        lb = db[i * n : (i + 1) * n].double() @ cb[i, :, :3]
        assert torch.allclose(la, lb, atol=1e-5)


def test_mixed_handedness_names_the_file_and_camera(make_panoptic, tmp_path):
    root = make_panoptic(root=tmp_path / "mixed", n_train=3, n_test=1)
    reflect(root, MIRROR_Z, cams={3})  # the test camera alone
    with pytest.raises(
        VvcDataError, match=r"test_meta.json: camera 3 has a reflected rotation .*mixes left- and right-handed"
    ):
        load_raw(root)


def test_mixed_handedness_transforms_json(make_transforms, tmp_path):
    root = make_transforms(n_cams=3, frames=2)
    p = root / "transforms.json"
    meta = json.loads(p.read_text())
    for fr in meta["frames"]:
        if fr["camera_id"] == 2:
            fr["transform_matrix"] = (MIRROR_X @ np.asarray(fr["transform_matrix"])).tolist()
    p.write_text(json.dumps(meta))
    with pytest.raises(VvcDataError, match=r"transforms.json: camera 2 has a reflected rotation"):
        load_raw(root)
    for fr in meta["frames"]:
        fr["transform_matrix"] = (MIRROR_X @ np.asarray(fr["transform_matrix"])).tolist()
    p.write_text(json.dumps(meta))
    with pytest.raises(VvcDataError, match=r"camera 2 has a proper rotation"):  # now camera 2 is the odd one
        load_raw(root)


def test_sheared_pose_is_still_an_error(make_panoptic, tmp_path):
    root = make_panoptic(root=tmp_path / "shear")
    w2c = ring_w2c(4)[0]
    w2c[:3, :3] = w2c[:3, :3] @ np.array([[1.0, 0.3, 0], [0, 1, 0], [0, 0, 1]])
    edit_meta(root, lambda m: [row.__setitem__(0, w2c.tolist()) for row in m["w2c"]])
    with pytest.raises(VvcDataError, match="not a proper rotation"):
        load_raw(root)
