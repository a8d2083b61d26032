"""Real CMU Panoptic 'basketball' capture (D3DGS layout), if present beside the repo."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import PANOPTIC_REAL, to_output_space

from nerfstudio_vvc.data.dataparser import VvcDataParserConfig

pytestmark = pytest.mark.skipif(
    not (PANOPTIC_REAL / "train_meta.json").exists(),
    reason=f"real Panoptic data not found at {PANOPTIC_REAL} (expected ../shared/data/panoptic-basketball)",
)


def test_real_panoptic_two_frames_downscaled(tmp_path):
    from PIL import Image

    cfg = VvcDataParserConfig(data=PANOPTIC_REAL, num_frames=2, downscale_factor=4, cache_dir=tmp_path / "cache")
    parser = cfg.setup()
    train = parser.get_dataparser_outputs("train")
    test = parser.get_dataparser_outputs("test")
    assert len(train.image_filenames) == 2 * 27 and len(test.image_filenames) == 2 * 4
    assert test.metadata["cam_id"][:4].tolist() == [0, 10, 15, 30]
    assert train.metadata["format"] == "panoptic" and train.metadata["num_frames"] == 2
    assert Image.open(train.image_filenames[0]).size == (160, 90)
    assert int(train.cameras.width[0]) == 160 and int(train.cameras.height[0]) == 90
    fx = train.cameras.fx[:27, 0]
    assert float(fx.min()) > 464 / 4 - 1 and float(fx.max()) < 621 / 4 + 1 and float(fx.max() - fx.min()) > 20
    # near plane ~0.5 source units (cameras in the dome wall), expressed in output units
    assert train.metadata["near_plane"] == pytest.approx(0.5 * train.dataparser_scale)
    # cameras on a dome at mean distance 3 around the origin, the scene box tight around the subject
    d = train.cameras.camera_to_worlds[:27, :, 3].norm(dim=-1)
    assert 2.5 < float(d.min()) and float(d.max()) < 3.5
    floor_below_focus = to_output_space(train, np.array([0.0, 0.0, 0.0]))  # world origin on the floor
    assert np.all(np.abs(floor_below_focus) < float(train.scene_box.aabb[1, 0]))
    # source: y down; output: z up -> cameras are above the floor
    assert float(train.cameras.camera_to_worlds[:27, 2, 3].min()) > floor_below_focus[2]
