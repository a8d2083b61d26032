"""vvc-codebook's method spec (`nerfstudio_vvc.methods` entry point): ids, decoder, RD points, fuzz target.

Standard library only (see `nerfstudio_vvc/methods/spec.py`)."""

from __future__ import annotations

from typing import Dict, Optional, Sequence

from nerfstudio_vvc.methods.spec import BITSTREAM_NAME, RdRun, VvcMethod

METHOD_ID = "vvc-codebook"
"""The container header's method_id of every vvc-codebook file."""
NODYN_BITSTREAM_NAME = "sequence-nodyn.vvc"
"""The run's second stream: the same codebook without dynamic codes (the BD reference)."""
RD_CODEBOOK_SIZES = (256, 1024, 4096)
"""k of the CPU preset's RD curve (`bench/bench_codebook.py`)."""
DEFAULT_RUNS = ("k-256", "k-1024", "k-4096")


def rd_runs(values: Optional[Sequence[float]] = None) -> Dict[str, RdRun]:
    """vvc-codebook's RD points: k (`k-<k>`), codebook bits (`bits-<b>`), dynamic codes per fragment (`dyn-<n>`);
    every k / bits run also yields its stream without dynamic codes (curve "w/o dynamic codes", the BD reference).
    `values` is ignored (the points are fixed)."""
    nodyn = (("-nodyn", NODYN_BITSTREAM_NAME, "w/o dynamic codes"),)
    runs = {
        f"k-{k}": RdRun(f"k-{k}", "Full", ("--pipeline.model.codebook-size", str(k)), extra_streams=nodyn)
        for k in RD_CODEBOOK_SIZES
    }
    for b in (6, 10):
        runs[f"bits-{b}"] = RdRun(
            f"bits-{b}", "codebook bits", ("--pipeline.model.codebook-bits", str(b)), extra_streams=nodyn
        )
    for n in (16, 256):
        runs[f"dyn-{n}"] = RdRun(
            f"dyn-{n}",
            "dynamic codes per fragment",
            ("--pipeline.model.dynamic-density-codes", str(n),
             "--pipeline.model.dynamic-appearance-codes", str(max(n // 2, 1))),
        )
    return runs


METHOD = VvcMethod(
    method_id=METHOD_ID,
    presets=("vvc-codebook", "vvc-codebook-cpu"),
    trainer="whole-sequence",
    decoder="nerfstudio_vvc.methods.codebook.decoder:CodebookDecoder",
    codec="nerfstudio_vvc.methods.codebook.codec",
    output="scene",
    bitstream=BITSTREAM_NAME,
    cpu_preset="vvc-codebook-cpu",
    rd_runs=rd_runs,
    rd_default_runs=DEFAULT_RUNS,
    rd_reference="w/o dynamic codes",
    fuzz_target="nerfstudio_vvc.testing.fuzz_targets.codebook",
    description="Dynamic-codebook HexPlane: the whole sequence trained, then resumable compression stages.",
)
