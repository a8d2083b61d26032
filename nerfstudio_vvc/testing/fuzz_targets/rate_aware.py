"""vvc-rate-aware fuzz target (see nerfstudio_vvc/testing/fuzz.py): a tiny real stream and a strict decode.

``make_stream`` codes random symbols through the method-codec contract (``CODEC.encode_globals`` / ``encode_frame``;
no training: a second),
``decode`` decodes every frame with ``decode_frame`` (not through ``Decoder.iter_decoded``, whose safety
net would turn a raw exception into a typed one and hide a missing check) and renders a 4x4 view.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, List, Optional

import torch

from nerfstudio_vvc.codec.bitstream.container import ContainerWriter, SequenceHeader
from nerfstudio_vvc.codec.context import GridContextModel
from nerfstudio_vvc.codec.weights import compress_state_dict
from nerfstudio_vvc.methods.rate_aware.codec import (
    CODEC,
    METHOD_ID,
    CodedFrame,
    DecodedFrame,
    StreamConfig,
    decode_frame,
)
from nerfstudio_vvc.methods.rate_aware.field import DiFFrameField, DiFSpec

TINY_SPEC = DiFSpec(basis_resolutions=(6, 8, 8, 10, 10, 12), coeff_resolution=8, hidden_dim=16)
TINY_RENDER = dict(aabb=[[-1.5, -1.5, -1.5], [1.5, 1.5, 1.5]], near_plane=0.05, background=[1.0, 1.0, 1.0],
                   num_samples=16, occupancy_resolution=16, lambda_rate=0.01, rate_aware=True, adaptive_quant=True)


def make_stream(path: Path, num_frames: int = 3, gop_size: int = 2, seed: int = 0) -> Path:
    """A small valid vvc-rate-aware file (I P I ...), with escapes in the symbol ranges."""
    gen = torch.Generator().manual_seed(seed)
    spec = TINY_SPEC
    torch.manual_seed(seed)
    entropy = GridContextModel(hidden=8, num_channels=spec.feature_dim)
    with torch.no_grad():
        for p in entropy.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    int_model = entropy.freeze()
    field = DiFFrameField(spec)
    box = TINY_RENDER["aabb"]
    header = SequenceHeader(method_id=METHOD_ID, num_frames=num_frames, fps=30.0, gop_size=gop_size,
                            num_cameras=0, scene_box=(tuple(box[0]), tuple(box[1])), extra={})
    r = TINY_RENDER["occupancy_resolution"]
    prev: Optional[DecodedFrame] = None
    cfg = StreamConfig(spec, dict(TINY_RENDER))
    with ContainerWriter(path, header, CODEC.encode_globals(cfg)) as w:
        for f in range(num_frames):
            is_i = f % gop_size == 0
            scale = 6.0 if is_i else 1.5
            syms = [torch.round(torch.distributions.Laplace(0.0, scale).sample(s)).long() for s in spec.grid_shapes()]
            syms[1].view(-1)[:3] = torch.tensor([5000, -7000, 123456])  # outliers: escape path
            occ = torch.rand(r, r, r, generator=gen) < 0.3
            payload, mlp_state = None, prev.mlp_state if prev is not None else {}
            if is_i:
                payload, deq = compress_state_dict(field.mlp.state_dict(), bits=8)
                mlp_state = dict(deq)
            steps = [0.05 + 0.01 * i for i in range(len(syms))]
            chunks, decoded = CODEC.encode_frame_and_reference(
                cfg, CodedFrame(f, syms, steps, int_model, occ, payload, mlp_state), None if is_i else prev)
            w.write_frame(f, is_i, chunks)
            prev = decoded
    return path


def decode(path: Path) -> Iterator[torch.Tensor]:
    """Decode every frame of ``path`` and render a 4x4 view of each: yields every decoded value."""
    from nerfstudio_vvc.playback.decoder import Decoder

    dec = Decoder(Path(path))
    c2w = torch.tensor([[1.0, 0, 0, 0], [0, 0, -1, -3.0], [0, 1, 0, 0.2]])
    prev: Optional[DecodedFrame] = None
    for idx in dec.frames():
        rec = dec.reader.read_frame(idx)
        prev = decode_frame(rec, None if rec.is_iframe else prev, dec.spec, occupancy_shape=dec.config.occupancy_shape)
        out: List[torch.Tensor] = [*prev.grids, *prev.mlp_state.values(), torch.tensor(prev.steps)]
        yield from out
        yield dec.render(prev, c2w, 3.0, 3.0, 2.0, 2.0, 4, 4)
