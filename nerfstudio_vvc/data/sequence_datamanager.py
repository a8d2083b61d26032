"""Whole-sequence datamanager: rays from all cameras and all times (methods that train the sequence at once).

Every training image of the (first ``max_frames``) frames is held in memory once, as uint8 in one
preallocated tensor: 27 cameras × 150 frames at 320×180 is 0.7 GB. A batch draws its rays from
``frames_per_batch`` random frames (uniform over those frames' images and pixels), so a renderer that
reads a field at one time per call makes ``frames_per_batch`` calls per step, not one per ray.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Type

import torch
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.utils.rich_utils import CONSOLE

from nerfstudio_vvc.data.datamanager import FrameDataManager, FrameDataManagerConfig, load_rgb


@dataclass
class SequenceDataManagerConfig(FrameDataManagerConfig):
    """Serves rays drawn from all cameras and all frames."""

    _target: Type = field(default_factory=lambda: SequenceDataManager)
    frames_per_batch: int = 8
    """Frames a training batch draws its rays from (0: all frames, one render call per frame and batch)."""


class SequenceDataManager(FrameDataManager):
    config: SequenceDataManagerConfig

    def load_all(self, num_frames: Optional[int] = None) -> None:
        """Load the training images of frames 0..num_frames-1 (all by default) as uint8."""
        n_f = self.num_frames if num_frames is None else min(num_frames, self.num_frames)
        indices = torch.nonzero(self.train_frame_idx < n_f).flatten()
        if len(indices) == 0:
            raise ValueError("the sequence has no training images")
        cams = self.train_dataset.cameras
        hw = torch.stack([cams.height[indices, 0], cams.width[indices, 0]], dim=-1).long()
        h, w = int(hw[:, 0].max()), int(hw[:, 1].max())
        images = torch.zeros(len(indices), h, w, 3, dtype=torch.uint8)  # padded pixels are never sampled
        files = self.train_dataparser_outputs.image_filenames
        for k, i in enumerate(indices.tolist()):
            im = (load_rgb(files[i]) * 255.0).round().to(torch.uint8)
            images[k, : im.shape[0], : im.shape[1]] = im
        self._images, self._image_indices, self._hw = images, indices, hw
        frame_of = self.train_frame_idx[indices]
        self._frames_loaded = n_f
        self._rows_of_frame: Dict[int, torch.Tensor] = {f: torch.nonzero(frame_of == f).flatten() for f in range(n_f)}
        self.frame = -1
        CONSOLE.print(
            f"{len(indices)} training images of {n_f} frames in memory ({images.numel() / 2**20:.0f} MiB uint8)"
        )

    @property
    def frames_loaded(self) -> int:
        return getattr(self, "_frames_loaded", 0)

    def sample(self, n: int, frames: Sequence[int]) -> Tuple[RayBundle, Dict]:
        """``n`` random rays from the training images of ``frames`` (uniform over images, then pixels)."""
        images = self.frame_images()
        rows = torch.cat([self._rows_of_frame[int(f)] for f in frames])
        row = rows[torch.randint(0, len(rows), (n,))]
        hw = self._hw[row]
        y = (torch.rand(n) * hw[:, 0]).long().clamp_max(hw[:, 0] - 1)
        x = (torch.rand(n) * hw[:, 1]).long().clamp_max(hw[:, 1] - 1)
        rgb = images[row, y, x].float() / 255.0
        ray_indices = torch.stack([self._image_indices[row], y, x], dim=-1)
        ray_bundle = self.train_ray_generator(ray_indices.to(self.device))
        return ray_bundle, {"image": rgb.to(self.device), "indices": ray_indices}

    def random_frames(self, pool: Optional[Sequence[int]] = None) -> List[int]:
        """``frames_per_batch`` distinct random frames of ``pool`` (default: every loaded frame)."""
        pool_t = torch.arange(self.frames_loaded) if pool is None else torch.as_tensor(list(pool))
        k = self.config.frames_per_batch
        if k <= 0 or k >= len(pool_t):
            return pool_t.tolist()
        return pool_t[torch.randperm(len(pool_t))[:k]].tolist()

    def next_train(self, step: int) -> Tuple[RayBundle, Dict]:
        """Random rays of ``frames_per_batch`` random frames of the whole sequence."""
        return self.sample(self.config.train_num_rays_per_batch, self.random_frames())
