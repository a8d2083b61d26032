"""Panoptic / Dynamic-3D-Gaussians layout: parsing, conventions, caching, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import (
    H,
    W,
    intrinsics,
    project_nerfstudio,
    project_opencv,
    ray_distance,
    ring_w2c,
    to_output_space,
    write_image,
)

from nerfstudio_vvc.data.dataparser import VvcDataParserConfig
from nerfstudio_vvc.data.formats import VvcDataError


def parse(root: Path, split: str = "train", **kw):
    kw.setdefault("cache_dir", root.parent / "cache")
    return VvcDataParserConfig(data=root, **kw).setup().get_dataparser_outputs(split)


def test_parse_structure(make_panoptic):
    root = make_panoptic(n_train=3, n_test=1, frames=3)
    out = parse(root)
    assert len(out.image_filenames) == 9
    assert out.image_filenames[0] == root / "ims" / "0" / "000000.jpg"
    assert out.image_filenames[3] == root / "ims" / "0" / "000001.jpg"  # frame-major
    md = out.metadata
    assert md["frame_idx"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert md["cam_id"].tolist() == [0, 1, 2] * 3
    assert md["source_frame"].tolist() == md["frame_idx"].tolist()
    assert md["num_frames"] == 3 and md["format"] == "panoptic" and md["fps"] == 30.0
    assert 0 < md["near_plane"] < md["far_plane"]
    assert torch.allclose(out.cameras.times[:, 0], md["frame_idx"].float() / 2)
    assert out.cameras.camera_to_worlds.shape == (9, 3, 4)
    assert out.cameras.width[:, 0].tolist() == [W] * 9
    assert out.cameras.fx[:3, 0].tolist() == [6.0, 7.0, 8.0]  # per-camera intrinsics kept
    test = parse(root, "test")
    assert test.metadata["cam_id"].tolist() == [3, 3, 3]
    # test cameras share the same normalisation
    assert torch.allclose(test.dataparser_transform, out.dataparser_transform)
    # cameras end up at mean distance 3 from the origin (focus point)
    d = out.cameras.camera_to_worlds[:3, :, 3].norm(dim=-1)
    assert abs(float(torch.cat([d, test.cameras.camera_to_worlds[:1, :, 3].norm(dim=-1)]).mean()) - 3.0) < 1e-4


def test_projection_matches_opencv(make_panoptic):
    root = make_panoptic(n_train=3, n_test=1, frames=2)
    out = parse(root)
    poses = ring_w2c(4)
    rng = np.random.default_rng(0)
    for X in rng.normal(scale=0.3, size=(5, 3)) + np.array([0.3, -0.2, 0.5]):
        Xo = to_output_space(out, X)
        for i in range(3):
            uv_src = project_opencv(intrinsics(i), poses[i], X)
            uv_ns = project_nerfstudio(out.cameras, i, Xo)
            assert np.allclose(uv_src, uv_ns, atol=1e-3), (uv_src, uv_ns)
            assert ray_distance(out.cameras, i, uv_src, Xo) < 1e-4
    # the focus point (where all cameras look) is the origin of the output space
    assert np.allclose(to_output_space(out, np.array([0.3, -0.2, 0.5])), 0, atol=1e-6)


def test_frame_selection_and_split_overrides(make_panoptic):
    root = make_panoptic(n_train=4, n_test=1, frames=5)
    out = parse(root, frame_start=1, num_frames=2, frame_step=2, train_cameras=(0, 4), test_cameras=(1,))
    assert out.metadata["source_frame"].tolist() == [1, 1, 3, 3]
    assert out.metadata["frame_idx"].tolist() == [0, 0, 1, 1]
    assert out.metadata["cam_id"].tolist() == [0, 4, 0, 4]
    assert out.metadata["fps"] == 15.0
    assert out.cameras.times[:, 0].tolist() == [0.0, 0.0, 1.0, 1.0]
    out = parse(root, max_train_cameras=2)
    assert out.metadata["cam_id"].tolist()[:2] == [0, 3]
    single = parse(root, num_frames=1)
    assert single.cameras.times.abs().sum() == 0


def test_downscale_cache(make_panoptic, tmp_path):
    root = make_panoptic(n_train=2, n_test=1, frames=2)
    full = parse(root)
    out = parse(root, downscale_factor=2, cache_dir=tmp_path / "c")
    from PIL import Image

    p = out.image_filenames[0]
    assert p == tmp_path / "c" / "ds2" / "ims" / "0" / "000000.png"
    assert Image.open(p).size == (W // 2, H // 2)
    assert torch.allclose(out.cameras.fx, full.cameras.fx / 2)
    assert torch.allclose(out.cameras.cy, full.cameras.cy / 2)
    assert out.cameras.height[0, 0] == H // 2
    mtime = p.stat().st_mtime_ns
    parse(root, downscale_factor=2, cache_dir=tmp_path / "c")
    assert p.stat().st_mtime_ns == mtime  # reused


def test_default_cache_location(make_panoptic, tmp_path, monkeypatch):
    from nerfstudio_vvc.data.formats.common import cache_root

    root = make_panoptic(n_train=2, n_test=1, frames=1)
    monkeypatch.delenv("NERFSTUDIO_VVC_CACHE", raising=False)
    assert cache_root(root) == root / ".vvc_cache"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    root.chmod(0o555)
    try:
        c = cache_root(root)
        assert c.parent == tmp_path / "home" / ".cache" / "nerfstudio_vvc"
    finally:
        root.chmod(0o755)


def test_spec_entry_point():
    from nerfstudio_vvc.data.dataparser_spec import vvc_data

    assert isinstance(vvc_data.config, VvcDataParserConfig)
    assert vvc_data.config.setup().includes_time


# ---------------------------------------------------------------------------------------- errors


def expect_error(root: Path, match: str, path_prefix: Path, **kw):
    with pytest.raises(VvcDataError, match=match) as e:
        parse(root, **kw)
    assert str(e.value).startswith(str(path_prefix)), str(e.value)


def edit_meta(root: Path, fn, name: str = "train_meta.json"):
    p = root / name
    meta = json.loads(p.read_text())
    fn(meta)
    p.write_text(json.dumps(meta))


def test_error_missing_image(make_panoptic):
    root = make_panoptic()
    (root / "ims" / "1" / "000002.jpg").unlink()
    expect_error(root, "image file not found", root / "ims" / "1" / "000002.jpg")


def test_error_unreadable_image(make_panoptic):
    root = make_panoptic()
    (root / "ims" / "2" / "000000.jpg").write_bytes(b"not a jpeg")
    expect_error(root, "cannot (decode|read) image", root / "ims" / "2" / "000000.jpg")


def test_error_truncated_image(make_panoptic):
    root = make_panoptic()
    p = root / "ims" / "0" / "000000.jpg"
    p.write_bytes(p.read_bytes()[:-60])
    expect_error(root, "cannot decode image", p)


def test_error_malformed_json(make_panoptic):
    root = make_panoptic()
    (root / "train_meta.json").write_text('{"w": 8, "h": ')
    expect_error(root, "malformed JSON", root / "train_meta.json")


def test_error_missing_key(make_panoptic):
    root = make_panoptic()
    edit_meta(root, lambda m: m.pop("w2c"))
    expect_error(root, r"missing key\(s\) \['w2c'\]", root / "train_meta.json")


def test_error_image_size_vs_declared(make_panoptic):
    root = make_panoptic()
    edit_meta(root, lambda m: m.update(w=10))
    expect_error(root, "declared size 8x6 differs from train_meta.json 10x6", root / "test_meta.json")
    edit_meta(root, lambda m: m.update(w=10), "test_meta.json")
    expect_error(root, "differs from the declared 10x6", root / "ims" / "0" / "000000.jpg")


def test_error_image_size_changes_across_frames(make_panoptic):
    root = make_panoptic()
    write_image(root / "ims" / "1" / "000002.jpg", w=W + 2)
    expect_error(root, "image size 10x6 differs", root / "ims" / "1" / "000002.jpg")


@pytest.mark.parametrize("bad", ["nan", "singular"])
def test_error_bad_pose(make_panoptic, bad):
    root = make_panoptic()

    def corrupt(m):
        for t in range(len(m["w2c"])):
            if bad == "nan":
                m["w2c"][t][1][0][3] = float("nan")
            else:
                m["w2c"][t][1][2] = [0.0, 0.0, 0.0, 1.0]
                m["w2c"][t][1][1] = [0.0, 0.0, 0.0, 2.0]

    edit_meta(root, corrupt)
    # json.dumps writes NaN, which Python's json reads back
    expect_error(root, "non-finite" if bad == "nan" else "singular", root / "train_meta.json")


def test_error_different_frame_counts(make_panoptic):
    root = make_panoptic()
    edit_meta(root, lambda m: [m[k].pop() for k in ("k", "w2c", "fn", "cam_id")], "test_meta.json")
    expect_error(root, "different frame counts", root / "test_meta.json")
    root2 = make_panoptic(root=root.parent / "p2")
    edit_meta(root2, lambda m: [m[k][1].pop() for k in ("k", "w2c", "fn", "cam_id")])
    expect_error(root2, "different frame counts", root2 / "train_meta.json")


def test_error_frame_range(make_panoptic):
    root = make_panoptic(frames=3)
    expect_error(root, "empty frame range", root / "train_meta.json", num_frames=0)
    expect_error(root, "only 3 frames exist", root / "train_meta.json", frame_start=1, num_frames=3)
    expect_error(root, "outside the 3 available frames", root / "train_meta.json", frame_start=3)


def test_error_unknown_camera_and_format(make_panoptic, tmp_path):
    root = make_panoptic()
    expect_error(root, "unknown camera id", root, train_cameras=(0, 42))
    empty = tmp_path / "empty"
    empty.mkdir()
    expect_error(empty, "cannot detect the data format", empty)
    expect_error(tmp_path / "nope", "data folder not found", tmp_path / "nope")


def test_nerfstudio_input_dataset_loads(make_panoptic):
    from nerfstudio.data.datasets.base_dataset import InputDataset

    root = make_panoptic(n_train=2, n_test=1, frames=2, ext="png")
    out = parse(root, downscale_factor=2)
    ds = InputDataset(out)
    item = ds[3]
    assert item["image"].shape == (H // 2, W // 2, 3)
    assert len(ds) == 4
