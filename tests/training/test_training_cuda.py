"""GPU checks (skipped without CUDA): the same torch code renders the same on CPU and GPU."""

from __future__ import annotations

import pytest
import torch

from nerfstudio_vvc.components.occupancy import OccupancyGrid
from nerfstudio_vvc.components.rendering import render_rays
from nerfstudio_vvc.methods.vvc_grid.field import GridField


@pytest.mark.cuda
def test_render_rays_cpu_matches_cuda():
    torch.manual_seed(0)
    field = GridField(channels=8, resolution=16, hidden=32)
    occ = OccupancyGrid(16)
    occ.update(field.density, step_size=0.05)
    n = 2048
    origins = torch.randn(n, 3) * 0.1 + torch.tensor([0.0, 0.0, 3.0])
    dirs = torch.nn.functional.normalize(torch.randn(n, 3) * 0.2 + torch.tensor([0.0, 0.0, -1.0]), dim=-1)
    aabb = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])
    bg = torch.ones(3)

    def go(device: str):
        f = field.to(device)
        o = occ.to(device)
        with torch.no_grad():
            return render_rays(f, origins.to(device), dirs.to(device), aabb.to(device), o, 32, 0.0,
                               bg.to(device), jitter=False)

    cpu = go("cpu")
    gpu = go("cuda")
    for key in ("rgb", "accumulation", "depth", "num_samples"):
        torch.testing.assert_close(gpu[key].cpu(), cpu[key], atol=1e-4, rtol=1e-4, msg=key)


@pytest.mark.cuda
def test_datamanager_on_cuda(tiny_sample, tmp_path):
    from nerfstudio_vvc.data.datamanager import FrameDataManagerConfig
    from nerfstudio_vvc.data.dataparser import VvcDataParserConfig

    cfg = FrameDataManagerConfig(dataparser=VvcDataParserConfig(data=tiny_sample, cache_dir=tmp_path / "c"),
                                 train_num_rays_per_batch=128)
    dm = cfg.setup(device="cuda")
    dm.set_frame(1)
    ray_bundle, batch = dm.next_train(0)
    assert ray_bundle.origins.is_cuda and batch["image"].is_cuda
    frame_idx = dm.train_dataparser_outputs.metadata["frame_idx"]
    assert (frame_idx[batch["indices"][:, 0].cpu()] == 1).all()
