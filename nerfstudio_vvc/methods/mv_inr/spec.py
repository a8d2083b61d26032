"""vvc-mv-inr's method spec (`nerfstudio_vvc.methods` entry point): ids, decoder, RD points, fuzz target.

Standard library only (see `nerfstudio_vvc/methods/spec.py`)."""

from __future__ import annotations

from typing import Dict, Optional, Sequence

from nerfstudio_vvc.methods.spec import BITSTREAM_NAME, RdRun, VvcMethod

METHOD_ID = "vvc-mv-inr"
"""The container header's method_id of every vvc-mv-inr file."""
RD_POINTS = ((20, 43), (30, 38), (40, 33), (60, 28), (80, 23))
"""(grid channels c, HEVC QP) of the paper's RD curve."""
DEFAULT_RUNS = ("c20-qp43", "c40-qp33", "c80-qp23")


def rd_runs(values: Optional[Sequence[float]] = None) -> Dict[str, RdRun]:
    """vvc-mv-inr's RD points `c<c>-qp<qp>` (the paper's (grid channels, HEVC QP) pairs) and its two ablations at the
    first point (paper Table III: without grid embedding, without inter-view compensation). `values` is ignored."""
    def point(c: int, qp: int):
        return ("--pipeline.model.grid-channels", str(c), "--pipeline.model.qp", str(qp))

    runs = {f"c{c}-qp{qp}": RdRun(f"c{c}-qp{qp}", "MV-INR", point(c, qp)) for c, qp in RD_POINTS}
    first = point(*RD_POINTS[0])
    runs["wo-embedding"] = RdRun(
        "wo-embedding", "w/o grid embedding", (*first, "--pipeline.model.grid-embedding", "False")
    )
    runs["wo-compensation"] = RdRun(
        "wo-compensation", "w/o compensation", (*first, "--pipeline.model.compensation", "False")
    )
    return runs


METHOD = VvcMethod(
    method_id=METHOD_ID,
    presets=("vvc-mv-inr", "vvc-mv-inr-cpu"),
    trainer="whole-sequence",
    decoder="nerfstudio_vvc.methods.mv_inr.decoder:MVInrDecoder",
    codec="nerfstudio_vvc.methods.mv_inr.codec",
    output="views",
    bitstream=BITSTREAM_NAME,
    cpu_preset="vvc-mv-inr-cpu",
    rd_runs=rd_runs,
    rd_default_runs=DEFAULT_RUNS,
    rd_reference="x265",
    fuzz_target="nerfstudio_vvc.testing.fuzz_targets.mv_inr",
    description="Multi-view video codec: one view in HEVC, the others by a grid + conv INR; resumable stages.",
)
