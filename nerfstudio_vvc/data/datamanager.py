"""Frame-sequential datamanager: rays come only from the frame being trained.

nerfstudio's VanillaDataManager caches random images from the whole dataset; a sequence codec
trains one frame at a time, so this manager keeps exactly one frame's training images in memory
(peak memory does not grow with the sequence length) and switches frames on request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Literal, Optional, Tuple, Type, Union

import numpy as np
import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.configs.dataparser_configs import AnnotatedDataParserUnion
from nerfstudio.data.datamanagers.base_datamanager import DataManager, DataManagerConfig
from nerfstudio.data.dataparsers.base_dataparser import DataparserOutputs
from nerfstudio.data.datasets.base_dataset import InputDataset
from nerfstudio.model_components.ray_generators import RayGenerator
from PIL import Image

from nerfstudio_vvc.data.dataparser import VvcDataParserConfig


def load_rgb(path: Path) -> torch.Tensor:
    """Load an image as float RGB in [0, 1], shape [H, W, 3]; alpha is composited on white."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGBA", "LA"):
                bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, im.convert("RGBA"))
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read image ({exc})") from None
    return torch.from_numpy(arr.copy()).float() / 255.0


@dataclass
class FrameDataManagerConfig(DataManagerConfig):
    """Datamanager that serves rays of one frame at a time."""

    _target: Type = field(default_factory=lambda: FrameDataManager)
    dataparser: AnnotatedDataParserUnion = field(default_factory=VvcDataParserConfig)
    """Multi-view video dataparser (`vvc-data`)."""
    train_num_rays_per_batch: int = 1024
    """Rays per training step, drawn uniformly over the current frame's training images."""
    eval_num_rays_per_batch: int = 1024
    """Rays per evaluation batch."""


class FrameDataManager(DataManager):
    """Holds the current frame's images; `set_frame` swaps them."""

    config: FrameDataManagerConfig
    train_dataset: InputDataset
    eval_dataset: InputDataset
    train_dataparser_outputs: DataparserOutputs

    def __init__(
        self,
        config: FrameDataManagerConfig,
        device: Union[torch.device, str] = "cpu",
        test_mode: Literal["test", "val", "inference"] = "val",
        world_size: int = 1,
        local_rank: int = 0,
        **kwargs,
    ):
        self.config = config
        self.device = device
        self.test_mode = test_mode
        if config.data is not None:
            config.dataparser.data = Path(config.data)
        else:
            config.data = config.dataparser.data
        self.dataparser = config.dataparser.setup()
        self.includes_time = True
        self.train_dataparser_outputs = self.dataparser.get_dataparser_outputs(split="train")
        self.eval_dataparser_outputs = self.dataparser.get_dataparser_outputs(split="test")
        self.train_dataset = InputDataset(self.train_dataparser_outputs)
        self.eval_dataset = InputDataset(self.eval_dataparser_outputs)
        meta = self.train_dataparser_outputs.metadata
        self.num_frames: int = int(meta["num_frames"])
        self.train_frame_idx: torch.Tensor = meta["frame_idx"].long()
        self.eval_frame_idx: torch.Tensor = self.eval_dataparser_outputs.metadata["frame_idx"].long()
        self.frame: int = -1
        self._images: Optional[torch.Tensor] = None  # [n_cam, H, W, 3] uint8 of the current frame
        self._image_indices: Optional[torch.Tensor] = None  # dataset indices of those images
        super().__init__()
        self.train_ray_generator = RayGenerator(self.train_dataset.cameras.to(self.device)).to(self.device)
        self.eval_ray_generator = RayGenerator(self.eval_dataset.cameras.to(self.device)).to(self.device)
        self._eval_cursor = 0

    # ----------------------------------------------------------------- frames
    def frame_image_indices(self, frame: int, split: Literal["train", "test"] = "train") -> torch.Tensor:
        """Dataset indices of the images that belong to `frame`."""
        frame_idx = self.train_frame_idx if split == "train" else self.eval_frame_idx
        return torch.nonzero(frame_idx == frame).flatten()

    def set_frame(self, frame: int) -> None:
        """Load the training images of `frame`, dropping the previous frame's."""
        if not 0 <= frame < self.num_frames:
            raise ValueError(f"frame {frame} outside the sequence (0..{self.num_frames - 1})")
        if frame == self.frame:
            return
        indices = self.frame_image_indices(frame, "train")
        if len(indices) == 0:
            raise ValueError(f"frame {frame} has no training images")
        files = self.train_dataparser_outputs.image_filenames
        imgs = [(load_rgb(files[i]) * 255.0).round().to(torch.uint8) for i in indices.tolist()]
        shapes = {tuple(im.shape) for im in imgs}
        if len(shapes) != 1:
            # Differing resolutions: pad to the largest; padded pixels are never sampled.
            h = max(s[0] for s in shapes)
            w = max(s[1] for s in shapes)
            imgs = [torch.nn.functional.pad(im, (0, 0, 0, w - im.shape[1], 0, h - im.shape[0])) for im in imgs]
        self._images = torch.stack(imgs)
        self._image_indices = indices
        cams = self.train_dataset.cameras
        self._hw = torch.stack([cams.height[indices, 0], cams.width[indices, 0]], dim=-1).long()
        self.frame = frame

    def frame_images(self) -> torch.Tensor:
        """Current frame's training images, uint8 [n_cam, H, W, 3]."""
        if self._images is None:
            raise RuntimeError("set_frame() must be called before sampling rays")
        return self._images

    # ------------------------------------------------------------------ rays
    def next_train(self, step: int) -> Tuple[RayBundle, Dict]:
        """Random rays from the current frame's training images."""
        images = self.frame_images()
        n = self.config.train_num_rays_per_batch
        n_cam = images.shape[0]
        cam = torch.randint(0, n_cam, (n,))
        hw = self._hw[cam]
        y = (torch.rand(n) * hw[:, 0]).long().clamp_max(hw[:, 0] - 1)
        x = (torch.rand(n) * hw[:, 1]).long().clamp_max(hw[:, 1] - 1)
        rgb = images[cam, y, x].float() / 255.0
        assert self._image_indices is not None
        ray_indices = torch.stack([self._image_indices[cam], y, x], dim=-1)
        ray_bundle = self.train_ray_generator(ray_indices.to(self.device))
        return ray_bundle, {"image": rgb.to(self.device), "indices": ray_indices}

    def next_eval(self, step: int) -> Tuple[RayBundle, Dict]:
        """A ray batch from a test camera at the current frame."""
        camera, batch = self.next_eval_image(step)
        h, w = batch["image"].shape[:2]
        n = self.config.eval_num_rays_per_batch
        flat = torch.randint(0, h * w, (n,))
        y, x = flat // w, flat % w
        idx = batch["image_idx"]
        ray_indices = torch.stack([torch.full_like(y, idx), y, x], dim=-1)
        return self.eval_ray_generator(ray_indices.to(self.device)), {"image": batch["image"][y, x]}

    def next_eval_image(self, step: int) -> Tuple[Cameras, Dict]:
        """The next test camera (cycling) at the current frame."""
        frame = max(self.frame, 0)
        indices = self.frame_image_indices(frame, "test")
        if len(indices) == 0:
            raise ValueError("No test images for the current frame")
        idx = int(indices[self._eval_cursor % len(indices)])
        self._eval_cursor += 1
        return self.eval_camera(idx)

    def eval_camera(self, idx: int) -> Tuple[Cameras, Dict]:
        """Test camera `idx` and its ground-truth image."""
        return self.camera(idx, "test")

    def camera(self, idx: int, split: Literal["train", "test"]) -> Tuple[Cameras, Dict]:
        """Image `idx` of a split: its camera and ground-truth image (loaded from disk)."""
        outputs = self.eval_dataparser_outputs if split == "test" else self.train_dataparser_outputs
        dataset = self.eval_dataset if split == "test" else self.train_dataset
        image = load_rgb(outputs.image_filenames[idx])
        camera = dataset.cameras[idx : idx + 1].to(self.device)
        return camera, {"image": image.to(self.device), "image_idx": idx}

    def get_train_rays_per_batch(self) -> int:
        return self.config.train_num_rays_per_batch

    def get_eval_rays_per_batch(self) -> int:
        return self.config.eval_num_rays_per_batch

    def get_datapath(self) -> Path:
        return self.config.dataparser.data

    def get_param_groups(self) -> Dict[str, List[torch.nn.Parameter]]:
        return {}

    def setup_train(self):
        """Nothing to set up: images load per frame in `set_frame`."""

    def setup_eval(self):
        """Nothing to set up: test images load on demand."""
