"""vvc-codebook fuzz target (see nerfstudio_vvc/testing/fuzz.py): a tiny real stream and a strict decode.

``make_stream`` codes random codebooks / index planes / dynamic codes through the method-codec contract (no
training: a second), ``decode`` parses the config and GLOBALS and decodes every frame with ``decode_frame``
(not through ``Decoder.decode_step``, whose safety net would turn a raw exception into a typed one and hide
a missing check), rendering a 4x4 view of each.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Optional

import torch

from nerfstudio_vvc.codec.bitstream.container import ChunkType, ContainerReader, ContainerWriter, SequenceHeader
from nerfstudio_vvc.codec.weights import compress_state_dict
from nerfstudio_vvc.methods.codebook.codec import (
    CODEC,
    METHOD_ID,
    CodedFragment,
    CodedGlobals,
    DecodedFrame,
    FragmentCodes,
    SharedState,
    StreamConfig,
    decode_frame,
    decode_globals,
    parse_method_config,
)
from nerfstudio_vvc.methods.codebook.field import GROUPS, HexHead, HexSpec

TINY_SPEC = HexSpec(density_resolution=6, appearance_resolutions=(4, 6), time_resolution=4, density_dim=3,
                    appearance_dim=4, hidden_dim=8)
TINY_RENDER = dict(aabb=[[-1.5, -1.5, -1.5], [1.5, 1.5, 1.5]], near_plane=0.05, background=[1.0, 1.0, 1.0],
                   num_samples=8, occupancy_resolution=8, contraction=0.0, num_outer_samples=0)


def make_stream(path: Path, num_frames: int = 5, fragment_size: int = 2, seed: int = 0) -> Path:
    """A small valid vvc-codebook file: 3 fragments (I P I P I), escapes in the codebook symbols."""
    gen = torch.Generator().manual_seed(seed)
    spec = TINY_SPEC
    entries = {"density": 20, "appearance": 30}
    symbols = {g: torch.randint(-127, 128, (entries[g], spec.group_dim(g)), generator=gen) for g in GROUPS}
    for g in GROUPS:
        symbols[g][0] = 0
    symbols["appearance"][3, 1] = 100000  # outlier: escape path
    steps = {g: torch.full((spec.group_dim(g),), 0.01) for g in GROUPS}
    indices = [torch.randint(0, entries[g], (h, w), generator=gen) for g, (_, h, w) in spec.plane_shapes()]
    torch.manual_seed(seed)
    mlp_payload, mlp_state = compress_state_dict(HexHead(spec).state_dict(), bits=8)
    shared = SharedState(symbols, steps, indices, dict(mlp_state))
    cfg = StreamConfig(spec, num_frames, fragment_size, entries, TINY_RENDER)
    box = TINY_RENDER["aabb"]
    header = SequenceHeader(method_id=METHOD_ID, num_frames=num_frames, fps=30.0, gop_size=fragment_size,
                            num_cameras=0, scene_box=(tuple(box[0]), tuple(box[1])), extra={})
    r = TINY_RENDER["occupancy_resolution"]
    with ContainerWriter(path, header, CODEC.encode_globals(cfg, CodedGlobals(shared, mlp_payload))) as w:
        for f in range(num_frames):
            if f % fragment_size:
                w.write_frame(f, False, CODEC.encode_frame(cfg, None, None))
                continue
            ids = {g: torch.sort(torch.randperm(entries[g] - 1, generator=gen)[:4] + 1).values for g in GROUPS}
            dyn = FragmentCodes(
                ids, {g: torch.randint(-127, 128, (4, spec.group_dim(g)), generator=gen) for g in GROUPS}
            )
            if f == 2:
                dyn = FragmentCodes.empty(spec)
            occ = torch.rand(r, r, r, generator=gen) < 0.4
            w.write_frame(f, True, CODEC.encode_frame(cfg, CodedFragment(dyn, occ), None))
    return path


def decode(path: Path) -> Iterator[torch.Tensor]:
    """Decode every frame of ``path`` strictly and render a 4x4 view of each: yields every decoded value."""
    from nerfstudio_vvc.methods.codebook.decoder import CodebookDecoder

    with ContainerReader(path) as reader:
        cfg = parse_method_config(reader.global_chunks.get(ChunkType.METHOD_CONFIG), source=str(path))
        shared = decode_globals(reader.global_chunk_list, cfg, source=str(path))
        yield from [*shared.symbols.values(), *shared.steps.values(), *shared.mlp_state.values()]
        dec = CodebookDecoder(path, ContainerReader(path))
        c2w = torch.tensor([[1.0, 0, 0, 0], [0, 0, -1, -3.0], [0, 1, 0, 0.2]])
        prev: Optional[DecodedFrame] = None
        for idx in reader.frame_indices():
            rec = reader.read_frame(idx)
            prev = decode_frame(rec, None if rec.is_iframe else prev, cfg, shared, source=str(path))
            yield from prev.codebooks.values()
            yield dec.render(prev, c2w, 3.0, 3.0, 2.0, 2.0, 4, 4)
        dec.close()
