"""FrameDataManager: rays come only from the current frame; memory holds one frame of images."""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

import pytest
import torch

from nerfstudio_vvc.data.datamanager import FrameDataManager, FrameDataManagerConfig, load_rgb
from nerfstudio_vvc.data.dataparser import VvcDataParserConfig

RAYS = 512


def make_dm(data: Path, cache: Path, rays: int = RAYS) -> FrameDataManager:
    cfg = FrameDataManagerConfig(
        dataparser=VvcDataParserConfig(data=data, cache_dir=cache),
        train_num_rays_per_batch=rays,
        eval_num_rays_per_batch=rays,
    )
    dm = cfg.setup(device="cpu")
    assert isinstance(dm, FrameDataManager)
    return dm


@pytest.fixture(scope="module")
def dm(tiny_sample, tmp_path_factory) -> FrameDataManager:
    return make_dm(tiny_sample, tmp_path_factory.mktemp("dm_cache"))


def image_bytes(dm: FrameDataManager) -> int:
    """Bytes of every image-like tensor ([n, H, W, C] or [H, W, C]) the datamanager holds directly."""
    total = 0
    seen = set()
    for value in vars(dm).values():
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if isinstance(v, torch.Tensor) and v.ndim >= 3 and id(v) not in seen:
                seen.add(id(v))
                total += v.numel() * v.element_size()
    return total


def test_rays_come_from_current_frame_only(dm):
    meta = dm.train_dataparser_outputs.metadata
    frame_idx = meta["frame_idx"].long()
    num_frames = dm.num_frames
    n_train_cams = int((frame_idx == 0).sum())
    assert num_frames == 3 and n_train_cams == 4
    files = dm.train_dataparser_outputs.image_filenames
    previous = None
    for f in [0, 2, 1, 0]:  # includes going backwards
        dm.set_frame(f)
        assert dm.frame == f
        images = dm.frame_images()
        assert images.dtype == torch.uint8
        assert images.shape[0] == n_train_cams, "must hold exactly one frame's training images"
        if previous is not None:
            assert images.data_ptr() != previous.data_ptr(), "switching frames must replace the images"
            assert not torch.equal(images, previous), "a different frame must have different pixels"
        previous = images
        for step in range(3):
            ray_bundle, batch = dm.next_train(step)
            idx = batch["indices"]
            assert idx.shape == (RAYS, 3)
            assert (frame_idx[idx[:, 0]] == f).all(), f"rays from another frame than {f}"
            assert ray_bundle.times is not None
            torch.testing.assert_close(
                ray_bundle.times.reshape(-1), torch.full((RAYS,), f / (num_frames - 1)), atol=1e-6, rtol=0
            )
            assert (batch["image"] >= 0).all() and (batch["image"] <= 1).all()
        # colours match the image files at the sampled pixels (last batch)
        for cam in idx[:, 0].unique().tolist():
            sel = idx[:, 0] == cam
            ref = load_rgb(files[cam])
            expect = ref[idx[sel, 1], idx[sel, 2]]
            torch.testing.assert_close(batch["image"][sel], expect, atol=0.5 / 255, rtol=0)
        # all of the frame's cameras are used
        assert set(idx[:, 0].tolist()) == set(torch.nonzero(frame_idx == f).flatten().tolist())


def test_set_frame_errors_and_noop(tiny_sample, tmp_path):
    dm = make_dm(tiny_sample, tmp_path / "cache", rays=8)
    with pytest.raises(RuntimeError):
        dm.next_train(0)  # no frame loaded yet
    with pytest.raises(ValueError):
        dm.set_frame(dm.num_frames)
    dm.set_frame(1)
    images = dm.frame_images()
    dm.set_frame(1)  # same frame: nothing reloaded
    assert dm.frame_images() is images


def test_set_frame_minus_one_raises(tiny_sample, tmp_path):
    dm = make_dm(tiny_sample, tmp_path / "cache", rays=8)
    with pytest.raises(ValueError):
        dm.set_frame(-1)


def test_eval_image_follows_current_frame(dm):
    meta = dm.eval_dataparser_outputs.metadata
    for f in range(dm.num_frames):
        dm.set_frame(f)
        camera, batch = dm.next_eval_image(0)
        assert int(meta["frame_idx"][batch["image_idx"]]) == f
        assert camera.times is not None
        assert abs(float(camera.times.reshape(-1)[0]) - f / (dm.num_frames - 1)) < 1e-6


def _walk_frames(dm: FrameDataManager) -> int:
    """Peak of Python-traced allocations (numpy/PIL decode buffers included) while `set_frame`
    walks the whole sequence. A first walk warms up lazy imports and caches."""
    for f in range(dm.num_frames):
        dm.set_frame(f)
    dm.set_frame(0)
    gc.collect()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        for f in range(1, dm.num_frames):
            dm.set_frame(f)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - base


def test_held_memory_does_not_grow_with_sequence_length(tmp_path):
    from nerfstudio_vvc.data.sample_scene import make_sample

    kw = dict(num_cameras=4, num_test_cameras=1, resolution=(64, 64))
    short = make_dm(make_sample(tmp_path / "f2", num_frames=2, **kw), tmp_path / "c2")
    long = make_dm(make_sample(tmp_path / "f6", num_frames=6, **kw), tmp_path / "c6")
    assert (short.num_frames, long.num_frames) == (2, 6)
    # nothing is loaded until a frame is requested
    assert image_bytes(short) == image_bytes(long) == 0

    peak_short = _walk_frames(short)
    peak_long = _walk_frames(long)
    one_frame = 4 * 64 * 64 * 3  # uint8 images of one frame
    assert image_bytes(short) == image_bytes(long) == one_frame
    assert short.frame_images().nbytes == long.frame_images().nbytes == one_frame
    # Python-visible allocations while walking the sequence do not scale with its length
    # (3x the frames must not cost anywhere near 3x the peak).
    print(f"tracemalloc peak over the sequence: 2 frames {peak_short} B, 6 frames {peak_long} B")
    assert peak_long <= 1.5 * peak_short + 256 * 1024, (peak_short, peak_long)
