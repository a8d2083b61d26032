"""nerfstudio transforms.json with time and camera ids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import W, project_nerfstudio, project_opencv, ray_distance, ring_w2c, to_output_space, write_image

from nerfstudio_vvc.data.dataparser import VvcDataParserConfig
from nerfstudio_vvc.data.formats import VvcDataError


def parse(root: Path, split: str = "train", **kw):
    kw.setdefault("cache_dir", root.parent / "cache")
    return VvcDataParserConfig(data=root, **kw).setup().get_dataparser_outputs(split)


def edit(root: Path, fn):
    p = root / "transforms.json"
    meta = json.loads(p.read_text())
    fn(meta)
    p.write_text(json.dumps(meta))


def test_parse_and_project(make_transforms):
    root = make_transforms(n_cams=3, frames=3)
    out = parse(root)  # default split: first camera is the test camera
    md = out.metadata
    assert md["format"] == "transforms" and md["num_frames"] == 3
    assert md["cam_id"].tolist() == [1, 2] * 3
    assert md["frame_idx"].tolist() == [0, 0, 1, 1, 2, 2]
    assert out.image_filenames[0] == root / "images" / "cam01" / "0000.png"
    assert float(out.cameras.fx[0]) == 9.0 and float(out.cameras.fx[1]) == 7.0  # per-frame override
    assert parse(root, "test").metadata["cam_id"].tolist() == [0, 0, 0]
    poses = ring_w2c(3)
    for X in [np.array([0.3, -0.2, 0.5]), np.array([0.5, 0.1, 0.2])]:
        Xo = to_output_space(out, X)
        for j, cam in enumerate([1, 2]):
            K = np.array([[9.0, 0, 3.9], [0, 9.0, 3.1], [0, 0, 1]]) if cam == 1 else np.array(
                [[7.0, 0, 4.2], [0, 7.5, 2.9], [0, 0, 1]]
            )
            uv = project_opencv(K, poses[cam], X)
            assert np.allclose(project_nerfstudio(out.cameras, j, Xo), uv, atol=1e-3)
            assert ray_distance(out.cameras, j, uv, Xo) < 1e-4


@pytest.mark.parametrize("time_key", ["frame_idx", "frame", "seconds"])
def test_time_keys(make_transforms, time_key):
    root = make_transforms(n_cams=2, frames=4, time_key=time_key)
    out = parse(root, frame_start=1)
    assert out.metadata["source_frame"].tolist() == [1, 2, 3]
    if time_key == "seconds":
        assert out.metadata["fps"] == pytest.approx(25.0)


def test_camera_from_path_and_split(make_transforms):
    root = make_transforms(n_cams=3, frames=2, cam_key=None, split=True)
    out = parse(root)
    assert out.metadata["cam_id"].tolist() == [0, 1, 0, 1]
    assert parse(root, "val").metadata["cam_id"].tolist() == [2, 2]
    root2 = make_transforms(n_cams=3, frames=2, root=root.parent / "t2")
    edit(root2, lambda m: m.update(test_camera_ids=[2]))
    assert parse(root2, "test").metadata["cam_id"].tolist() == [2, 2]


def expect_error(root: Path, match: str, path: Path, **kw):
    with pytest.raises(VvcDataError, match=match) as e:
        parse(root, **kw)
    assert str(e.value).startswith(str(path)), str(e.value)


def test_error_malformed_json(make_transforms):
    root = make_transforms()
    (root / "transforms.json").write_text("{frames: [")
    expect_error(root, "malformed JSON", root / "transforms.json")


def test_error_missing_keys(make_transforms):
    root = make_transforms()
    edit(root, lambda m: m["frames"][4].pop("transform_matrix"))
    expect_error(root, r"missing key.*transform_matrix.*frames\[4\]", root / "transforms.json")
    edit(root, lambda m: m.pop("frames"))
    expect_error(root, "missing key", root / "transforms.json")
    root2 = make_transforms(root=root.parent / "t2")
    edit(root2, lambda m: [f.pop("time") for f in m["frames"]])
    expect_error(root2, "no 'time', 'frame_idx' or 'frame'", root2 / "transforms.json")
    root3 = make_transforms(root=root.parent / "t3")
    edit(root3, lambda m: m.pop("fl_x"))
    expect_error(root3, "missing focal length", root3 / "transforms.json")


def test_error_missing_and_unreadable_image(make_transforms):
    root = make_transforms()
    p = root / "images" / "cam02" / "0001.png"
    p.unlink()
    expect_error(root, "image file not found", p)
    p.write_bytes(b"\x89PNG garbage")
    expect_error(root, "cannot read image", p)


def test_error_inconsistent_sizes(make_transforms):
    root = make_transforms()
    p = root / "images" / "cam02" / "0002.png"
    write_image(p, w=W + 4)
    expect_error(root, "image size 12x6 differs", p)
    root2 = make_transforms(root=root.parent / "t2")
    edit(root2, lambda m: m["frames"][5].update(w=16))
    expect_error(root2, r"frames\[5\]: size 16x6 differs", root2 / "transforms.json")


@pytest.mark.parametrize("bad", ["nan", "singular"])
def test_error_bad_pose(make_transforms, bad):
    root = make_transforms()

    def corrupt(m):
        tm = m["frames"][2]["transform_matrix"]
        if bad == "nan":
            tm[0][0] = float("nan")
        else:
            tm[0][:3] = [0.0, 0.0, 0.0]

    edit(root, corrupt)
    expect_error(root, r"frames\[2\]: pose " + ("contains non-finite" if bad == "nan" else "rotation is singular"),
                 root / "transforms.json")


def test_error_different_frame_counts(make_transforms):
    root = make_transforms()
    edit(root, lambda m: m["frames"].pop(4))
    expect_error(root, "camera 1 has 2 frames but there are 3 time steps", root / "transforms.json")


def test_error_empty_range(make_transforms):
    root = make_transforms(frames=2)
    expect_error(root, "empty frame range", root / "transforms.json", num_frames=0)
    expect_error(root, "only 2 frames exist", root / "transforms.json", num_frames=3)
