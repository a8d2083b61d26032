"""Embedded pybullet sample scene: determinism and exact calibration (marker reprojection)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import project_nerfstudio, to_output_space

pytest.importorskip("pybullet")

from nerfstudio_vvc.data.dataparser import VvcDataParserConfig  # noqa: E402
from nerfstudio_vvc.data.sample_scene import make_sample, pixel_offset, project_with_pybullet  # noqa: E402

ARGS = dict(num_frames=2, num_cameras=4, num_test_cameras=1, resolution=(97, 71), seed=3)


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    return make_sample(tmp_path_factory.mktemp("sample") / "s", **ARGS)


def test_layout_and_determinism(sample, tmp_path):
    assert (sample / "train_meta.json").exists() and (sample / "test_meta.json").exists()
    assert (sample / "README.md").exists()
    meta = json.loads((sample / "train_meta.json").read_text())
    assert meta["w"] == 97 and meta["h"] == 71 and len(meta["fn"]) == 2 and len(meta["fn"][0]) == 4
    test_meta = json.loads((sample / "test_meta.json").read_text())
    assert len(test_meta["cam_id"][0]) == 1
    again = make_sample(tmp_path / "again", **ARGS)
    files = sorted(p.relative_to(sample) for p in (sample / "ims").rglob("*.png"))
    assert len(files) == 2 * 5
    for rel in files:
        assert (sample / rel).read_bytes() == (again / rel).read_bytes(), rel
    other = make_sample(tmp_path / "other", **{**ARGS, "seed": 4, "num_frames": 1})
    assert (other / files[0]).read_bytes() != (sample / files[0]).read_bytes()


def test_marker_reprojection(sample, tmp_path):
    """The red marker's centre projects (via the parsed nerfstudio Cameras) onto its rendered blob."""
    from PIL import Image

    scene = json.loads((sample / "scene.json").read_text())
    cfg = VvcDataParserConfig(data=sample, cache_dir=tmp_path / "cache")
    parser = cfg.setup()
    outs = [parser.get_dataparser_outputs(s) for s in ("train", "test")]
    P = scene["projection_matrix"]
    checked = 0
    for out in outs:
        for i, path in enumerate(out.image_filenames):
            t = int(out.metadata["frame_idx"][i])
            cam = int(out.metadata["cam_id"][i])
            X = np.array(scene["marker_positions"][t])
            uv_ns = project_nerfstudio(out.cameras, i, to_output_space(out, X))
            uv_pb = project_with_pybullet(X, scene["view_matrices"][str(cam)], P, 97, 71)
            uv_pb = uv_pb + np.array(pixel_offset(scene["supersample"]))
            assert np.allclose(uv_ns, uv_pb, atol=1e-3), (uv_ns, uv_pb)
            rgb = np.asarray(Image.open(path)).astype(int)
            # the marker is pure red (g = b = 0); look near the prediction only
            red = (rgb[..., 0] > 100) & (rgb[..., 1] == 0) & (rgb[..., 2] == 0)
            ys, xs = np.nonzero(red)
            near = (np.abs(xs + 0.5 - uv_ns[0]) < 10) & (np.abs(ys + 0.5 - uv_ns[1]) < 10)
            xs, ys = xs[near], ys[near]
            # skip views where the humanoid hides part of the ball (blob not round/complete)
            if len(xs) < 8 or abs(int(np.ptp(xs)) - int(np.ptp(ys))) > 1:
                continue
            centroid = np.array([xs.mean() + 0.5, ys.mean() + 0.5])
            assert np.linalg.norm(centroid - uv_ns) < 0.35, (path, centroid, uv_ns)
            checked += 1
    assert checked >= 4


def test_sample_parses_with_subject_in_box(sample, tmp_path):
    out = VvcDataParserConfig(data=sample, cache_dir=tmp_path / "c").setup().get_dataparser_outputs("train")
    assert out.metadata["format"] == "panoptic"
    assert out.metadata["fps"] == pytest.approx(15.0, rel=1e-3)
    scene = json.loads((sample / "scene.json").read_text())
    # subject (look-at point, floor under it, head height) inside the scene box; y-up turned z-up
    half = float(out.scene_box.aabb[1, 0])
    for X in (scene["target"], [0.0, 0.0, 0.0], [0.0, 1.7, 0.0]):
        assert np.all(np.abs(to_output_space(out, np.array(X))) < half), X
    up = to_output_space(out, np.array([0.0, 1.0, 0.0])) - to_output_space(out, np.zeros(3))
    assert up[2] > 0.99 * np.linalg.norm(up)


def test_anti_aliased_and_far_floor(tmp_path):
    """Supersampled renders carry partial-coverage pixels at edges (anti-aliasing); far_floor fills the
    view below the horizon far outside the scene box."""
    from PIL import Image

    args = dict(num_frames=1, num_cameras=2, num_test_cameras=0, resolution=(48, 48), seed=1, marker=False)
    aa = make_sample(tmp_path / "aa", **args)
    hard = make_sample(tmp_path / "hard", **args, supersample=1)
    far = make_sample(tmp_path / "far", **args, far_floor=True)

    def img(root):
        return np.asarray(Image.open(root / "ims" / "0" / "000000.png")).astype(int)

    def n_colours(a):
        return len(np.unique(a.reshape(-1, 3), axis=0))

    assert n_colours(img(aa)) > n_colours(img(hard))  # blended edge colours
    white = lambda a: (a == 255).all(-1)  # noqa: E731
    assert white(img(far)).sum() < white(img(aa)).sum()  # the far floor replaces background below the horizon
    assert json.loads((far / "scene.json").read_text())["far_floor"] is True
