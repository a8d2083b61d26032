"""N3DV / DyNeRF layout: LLFF poses + camNN.mp4 videos decoded to a PNG cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import N3DV_H, N3DV_W, project_nerfstudio, project_opencv, ray_distance, ring_w2c, to_output_space

from nerfstudio_vvc.data.dataparser import VvcDataParserConfig
from nerfstudio_vvc.data.formats import VvcDataError

pytest.importorskip("av")


def parse(root: Path, split: str = "train", **kw):
    kw.setdefault("cache_dir", root.parent / "cache")
    return VvcDataParserConfig(data=root, **kw).setup().get_dataparser_outputs(split)


def test_parse_decode_and_project(make_n3dv, tmp_path):
    from PIL import Image

    root = make_n3dv(n_cams=3, frames=4)
    out = parse(root, frame_start=1, num_frames=2)
    md = out.metadata
    assert md["format"] == "n3dv" and md["num_frames"] == 2
    assert md["cam_id"].tolist() == [1, 2, 1, 2]  # cam00 is the DyNeRF test camera
    assert md["source_frame"].tolist() == [1, 1, 2, 2]
    assert md["fps"] == pytest.approx(30.0)
    p = out.image_filenames[0]
    assert p == tmp_path / "cache" / "n3dv" / "ds1" / "cam01" / "000001.png"
    assert Image.open(p).size == (N3DV_W, N3DV_H)
    assert not (tmp_path / "cache" / "n3dv" / "ds1" / "cam01" / "000003.png").exists()  # only the range
    # frame content: the generator brightens each frame by 20
    m1 = np.asarray(Image.open(out.image_filenames[0])).mean()
    m2 = np.asarray(Image.open(out.image_filenames[2])).mean()
    assert 12 < m2 - m1 < 28
    test = parse(root, "test", frame_start=1, num_frames=2)
    assert test.metadata["cam_id"].tolist() == [0, 0]
    # focal 40 at the 2x calibration resolution -> 20 px in the video
    assert float(out.cameras.fx[0]) == pytest.approx(20.0)
    poses = ring_w2c(3, radius=3.0)
    K = np.array([[20.0, 0, N3DV_W / 2], [0, 20.0, N3DV_H / 2], [0, 0, 1]])
    X = np.array([0.4, -0.1, 0.6])
    Xo = to_output_space(out, X)
    for j, cam in enumerate([1, 2]):
        uv = project_opencv(K, poses[cam], X)
        assert np.allclose(project_nerfstudio(out.cameras, j, Xo), uv, atol=1e-3)
        assert ray_distance(out.cameras, j, uv, Xo) < 1e-4
    # near/far from the LLFF bounds (1, 10) in output units
    assert md["near_plane"] == pytest.approx(0.9 * out.dataparser_scale)
    assert md["far_plane"] == pytest.approx(10.0 * out.dataparser_scale)


def test_downscale(make_n3dv):
    from PIL import Image

    root = make_n3dv(n_cams=2, frames=2)
    out = parse(root, downscale_factor=2, test_cameras=())
    assert "ds2" in str(out.image_filenames[0])
    assert Image.open(out.image_filenames[0]).size == (N3DV_W // 2, N3DV_H // 2)
    assert float(out.cameras.fx[0]) == pytest.approx(10.0)
    assert out.metadata["cam_id"].tolist() == [0, 1, 0, 1]


def expect_error(root: Path, match: str, path: Path, **kw):
    with pytest.raises(VvcDataError, match=match) as e:
        parse(root, **kw)
    assert str(e.value).startswith(str(path)), str(e.value)


def test_error_different_frame_counts(make_n3dv):
    root = make_n3dv(n_cams=2, frame_counts=[3, 2])
    expect_error(root, "has 2 frames but other cameras have 3", root / "cam01.mp4")


@pytest.mark.parametrize("bad", ["nan", "singular", "shape", "count"])
def test_error_poses(make_n3dv, bad):
    root = make_n3dv(n_cams=2, frames=2)
    pb = np.load(root / "poses_bounds.npy")
    if bad == "nan":
        pb[1, 3] = np.nan
        match = "non-finite"
    elif bad == "singular":
        pb[1, :3] = 0
        match = "singular"
    elif bad == "shape":
        pb = pb[:, :15]
        match = "expected an array of shape"
    else:
        pb = pb[:1]
        match = "has 1 cameras but 2 camNN.mp4"
    np.save(root / "poses_bounds.npy", pb)
    expect_error(root, match, root / "poses_bounds.npy")


def test_error_corrupt_video_and_range(make_n3dv):
    root = make_n3dv(n_cams=2, frames=2)
    expect_error(root, "only 2 frames exist", root, num_frames=5)
    (root / "cam01.mp4").write_bytes(b"garbage" * 10)
    expect_error(root, "cannot (open|read) video", root / "cam01.mp4")
