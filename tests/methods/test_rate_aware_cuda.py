"""vvc-rate-aware on a GPU, end to end (skipped without CUDA): train 2 frames (I, P) on CUDA → code →
decode on the CPU → the decoder rebuilds the encoder's decode buffer exactly and renders match."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nerfstudio_vvc.components.frame_store import FrameStore
from nerfstudio_vvc.methods.rate_aware.codec import DecodedFrame
from nerfstudio_vvc.playback.decoder import Decoder


@pytest.mark.cuda
def test_rate_aware_trains_and_codes_on_cuda(tmp_path: Path, tiny_sample, rate_aware_trainer):
    run = rate_aware_trainer(
        tmp_path, tiny_sample, "--max-frames", "2", "--pipeline.model.contraction", "0.5", device="cuda"
    )
    decoder = Decoder(run / "sequence.vvc")
    assert decoder.frames() == [0, 1]
    store = FrameStore(run / "frames")
    for d in decoder.iter_decoded():
        enc = store.load(d.frame_idx)
        for a, b in zip(d.symbols, enc["symbols"]):
            assert torch.equal(a, b)
        for a, b in zip(d.grids, enc["grids"]):
            assert torch.equal(a, b)
    c2w = torch.tensor([[1.0, 0, 0, 0], [0, 0, -1, -3.0], [0, 1, 0, 0.2]])
    d = decoder.decode_frame(1)
    enc = DecodedFrame.from_state(store.load(1))
    a = decoder.render(d, c2w, 20.0, 20.0, 8.0, 8.0, 16, 16)
    b = decoder.render(enc, c2w, 20.0, 20.0, 8.0, 8.0, 16, 16)
    assert torch.equal(a, b) and torch.isfinite(a).all()
