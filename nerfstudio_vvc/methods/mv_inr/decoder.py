"""vvc-mv-inr decoder (for method_id "vvc-mv-inr"; the method spec, methods/mv_inr/spec.py, names it).

Opening a file decodes its GLOBALS once: the network (all parameters but the per-frame grid rows) and the basic
view's HEVC stream. A frame then costs its g1 row and one network pass per coded view. No nerfstudio import.

This method codes camera views, not a 3D scene, so ``render_rays`` shows the decoded image of the coded camera whose
centre is nearest to the rays' origin, reprojected by direction (exact when the viewer sits at that camera, a
rotation-only approximation elsewhere); rays outside that camera's image get the background colour.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F

from nerfstudio_vvc.codec.bitstream.container import FrameRecord
from nerfstudio_vvc.codec.errors import BitstreamError
from nerfstudio_vvc.jsonio import strict_json
from nerfstudio_vvc.methods.mv_inr.codec import DecodedViews, SharedState, parse_method_config
from nerfstudio_vvc.playback.decoder import MethodDecoder


class MVInrDecoder(MethodDecoder):
    method_id = "vvc-mv-inr"

    def configure(self, method_config: Optional[bytes]) -> None:
        self.config = parse_method_config(method_config, source=str(self.path))
        self.shared = SharedState(self.config, self.reader.global_chunk_list, source=str(self.path))
        cams = self.config.cameras
        self.c2w = torch.tensor([c.c2w for c in cams], dtype=torch.float32)  # N x 3 x 4
        self.intrinsics = torch.tensor([[c.fx, c.fy, c.cx, c.cy] for c in cams], dtype=torch.float32)
        bg = self.config.render.get("background", [0.0, 0.0, 0.0])
        self.background = torch.tensor([float(v) for v in bg][:3], dtype=torch.float32)
        self.last_camera: Optional[int] = None
        """Index (into the stream's cameras) of the view the last ``render_rays`` showed."""

    @property
    def cam_ids(self):
        return [c.cam_id for c in self.config.cameras]

    def decode_record(self, record: FrameRecord, prev: Optional[DecodedViews]) -> DecodedViews:
        try:
            return self.shared.decode_frame(record.frame_idx, record.chunks)
        except BitstreamError as exc:
            raise exc.in_context(source=str(self.path), where=f"frame {record.frame_idx}") from None

    def to_state(self, decoded: DecodedViews) -> Dict[str, Any]:
        return decoded.to_state()

    def nearest_camera(self, origin: torch.Tensor) -> int:
        d = (self.c2w[:, :, 3] - origin.detach().float().cpu().reshape(1, 3)).norm(dim=-1)
        return int(torch.argmin(d))

    @torch.no_grad()
    def render_rays(self, decoded: DecodedViews, origins: torch.Tensor, dirs: torch.Tensor) -> Dict[str, torch.Tensor]:
        device = origins.device
        n = origins.shape[0]
        if n == 0:
            z = origins.new_zeros(0, 1)
            return {"rgb": origins.new_zeros(0, 3), "accumulation": z, "depth": z}
        k = self.nearest_camera(origins.mean(0))
        self.last_camera = k
        rot = self.c2w[k, :, :3].to(device)
        fx, fy, cx, cy = self.intrinsics[k].tolist()
        d = dirs.float() @ rot  # camera frame (OpenGL: x right, y up, looking down -z)
        depth = -d[:, 2]
        front = depth > 1e-6
        u = cx + fx * d[:, 0] / depth.clamp_min(1e-6)
        v = cy - fy * d[:, 1] / depth.clamp_min(1e-6)
        img = decoded.images[k].to(device).permute(2, 0, 1).float()[None] / 255.0  # 1 x 3 x H x W
        h, w = img.shape[-2:]
        inside = front & (u >= 0) & (u <= w) & (v >= 0) & (v <= h)
        grid = torch.stack([u / w * 2 - 1, v / h * 2 - 1], -1).reshape(1, 1, n, 2)
        rgb = F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=False)[0, :, 0].T
        acc = inside.float()[:, None]
        rgb = rgb * acc + self.background.to(device) * (1 - acc)
        return {"rgb": rgb, "accumulation": acc, "depth": depth.clamp_min(0)[:, None]}

    def write_dataset(self, out: Path, test_frames: Optional[list] = None) -> Path:
        """Every decoded view and frame as a vvc-data `transforms` dataset (PNG images + transforms.json, cameras from
        the stream); any nerfstudio method, ours or nerfacto, trains on it. `test_frames` (transforms.json frame
        entries with ``"split": "test"``, in the stream's scene coordinates) are added as held-out cameras.
        Returns the json's path."""

        from PIL import Image

        out = Path(out)
        frames = []
        for dec in self.iter_decoded():
            for i, cam in enumerate(self.config.cameras):
                rel = Path("images") / f"cam{cam.cam_id:03d}" / f"{dec.frame_idx:05d}.png"
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(dec.images[i].numpy()).save(out / rel)
                c2w = np.asarray(cam.c2w + [[0.0, 0.0, 0.0, 1.0]])
                frames.append({"file_path": str(rel), "transform_matrix": c2w.tolist(), "frame_idx": dec.frame_idx,
                               "camera_id": cam.cam_id, "fl_x": cam.fx, "fl_y": cam.fy, "cx": cam.cx, "cy": cam.cy,
                               "w": self.config.width, "h": self.config.height})
        frames += list(test_frames or [])
        meta = {"fps": self.fps, "frames": frames,
                "source": f"decoded from {self.path.name} (vvc-mv-inr): basic view camera "
                          f"{self.config.cameras[self.config.basic].cam_id} via HEVC, the others via the INR"}
        path = out / "transforms.json"
        path.write_text(strict_json(meta, indent=1))
        return path
