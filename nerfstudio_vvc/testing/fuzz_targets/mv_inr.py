"""vvc-mv-inr fuzz target (see nerfstudio_vvc/testing/fuzz.py): a tiny real stream and a strict decode.

``make_stream`` codes a random network (the method's own quantiser) through the method-codec contract and random
basic-view frames with x265 (no training: a second); ``decode`` runs the method-codec contract (``CODEC.parse_config`` /
``decode_globals`` / ``decode_frame``, not through ``MethodDecoder.decode_step``, whose safety net would turn a raw
exception into a typed one and hide a missing check), yielding the network's parameters and every decoded view.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from nerfstudio_vvc.codec.bitstream.container import ChunkType, ContainerReader, ContainerWriter, SequenceHeader
from nerfstudio_vvc.methods.mv_inr.codec import CODEC, METHOD_ID, Camera, CodedGlobals, StreamConfig, split_units
from nerfstudio_vvc.methods.mv_inr.compress import quantize_params


def tiny_config(n_frames: int = 2, size: int = 16) -> StreamConfig:
    cams = [Camera(10 + i, 20.0, 20.0, size / 2, size / 2, [[1.0, 0.0, 0.0, 0.3 * i], [0.0, 1.0, 0.0, 0.0],
                                                            [0.0, 0.0, 1.0, 2.0]]) for i in range(3)]
    return StreamConfig(n_frames=n_frames, height=size, width=size, grid_channels=3, conv_channels=(4, 4, 3, 3, 3),
                        compensation=True, grid_embedding=True, bits=8, cameras=cams, basic=1,
                        hevc={"qp": 37, "preset": "ultrafast"}, render={"background": [1.0, 1.0, 1.0]})


def make_stream(path: Path, seed: int = 0) -> Path:
    """A small valid vvc-mv-inr file: 3 cameras of 16×16, 2 frames."""
    from nerfstudio_vvc.methods.mv_inr.basic_view import code_basic_view

    torch.manual_seed(seed)
    cfg = tiny_config()
    units = quantize_params(cfg.network(), cfg.bits)
    glob, per_frame = split_units(units)
    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 256, (cfg.height, cfg.width, 3), dtype=np.uint8) for _ in range(cfg.n_frames)]
    with tempfile.TemporaryDirectory() as tmp:
        hevc = Path(tmp) / "basic.hevc"
        code_basic_view(frames, hevc, qp=int(cfg.hevc["qp"]), preset=str(cfg.hevc["preset"]))
        video = hevc.read_bytes()
    header = SequenceHeader(method_id=METHOD_ID, num_frames=cfg.n_frames, fps=30.0, gop_size=1,
                            num_cameras=len(cfg.cameras), scene_box=((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0)), extra={})
    with ContainerWriter(path, header, CODEC.encode_globals(cfg, CodedGlobals(video, glob))) as w:
        for t, rows in enumerate(per_frame):
            w.write_frame(t, True, CODEC.encode_frame(cfg, rows, None))
    return path


def decode(path: Path) -> Iterator[torch.Tensor]:
    """Decode every frame of ``path`` strictly through the method-codec contract: yields every decoded value."""
    source = str(path)
    with ContainerReader(Path(path)) as reader:
        cfg = CODEC.parse_config(reader.global_chunks.get(ChunkType.METHOD_CONFIG), source)
        shared = CODEC.decode_globals(cfg, reader.global_chunk_list, source)
        yield torch.tensor(cfg.render["background"], dtype=torch.float64)  # what the viewer shows around a view
        yield from (p.detach() for p in shared.net.parameters())
        for idx in reader.frame_indices():
            frame = CODEC.decode_frame(cfg, shared, reader.read_frame(idx), None)
            yield frame.images.float()
            yield shared.net.g1[idx].detach()
