"""vvc-rate-aware's method spec (`nerfstudio_vvc.methods` entry point): ids, decoder, RD points, fuzz target.

Standard library only (see `nerfstudio_vvc/methods/spec.py`)."""

from __future__ import annotations

from typing import Dict, Optional, Sequence

from nerfstudio_vvc.methods.spec import BITSTREAM_NAME, RdRun, VvcMethod

METHOD_ID = "vvc-rate-aware"
"""The container header's method_id of every vvc-rate-aware file."""

RD_LAMBDAS = (7e-4, 1e-3, 2e-3, 5e-3)
"""The paper's default rate-distortion points (`--pipeline.model.lambda-rate`)."""
ABLATION_LAMBDA = 1e-3
"""λ of the two ablation runs (the paper's ablations fix one RD point)."""
BASELINE_EXPONENTS = (4, 2, 1, 0, -1, -2)
"""Baseline curve: fixed quantization steps 2^-k; the first is the run's own, the rest extra streams."""
DEFAULT_RUNS = ("full-0.0007", "full-0.001", "full-0.002", "full-0.005", "baseline")


def extra_bitstream_name(exponent: int) -> str:
    """File name of a Baseline stream coded at the fixed step 2^-exponent."""
    return f"sequence.q{exponent}.vvc"


def rd_runs(lambdas: Optional[Sequence[float]] = None) -> Dict[str, RdRun]:
    """vvc-rate-aware's RD points (`full-<λ>` for λ in `lambdas`, default the paper's), its two ablations and the
    Baseline curve (one run, one stream per fixed step)."""
    lams = RD_LAMBDAS if not lambdas else tuple(lambdas)
    runs = {f"full-{lam:g}": RdRun(f"full-{lam:g}", "Full", ("--pipeline.model.lambda-rate", f"{lam:g}"))
            for lam in lams}
    lam = ("--pipeline.model.lambda-rate", f"{ABLATION_LAMBDA:g}")
    runs["wo-dynamic"] = RdRun("wo-dynamic", "w/o dynamic", ("--gop-size", "1", *lam))
    runs["wo-adaptive"] = RdRun("wo-adaptive", "w/o adaptive", ("--pipeline.model.adaptive-quant", "False", *lam))
    first, *rest = BASELINE_EXPONENTS
    runs["baseline"] = RdRun(
        "baseline", "Baseline",
        ("--gop-size", "1", "--pipeline.model.rate-aware", "False", "--pipeline.model.init-step", f"{2.0**-first:g}",
         "--pipeline.model.extra-step-exponents", *[str(k) for k in rest]),
        extra_streams=tuple((f"-q{k}", extra_bitstream_name(k), "Baseline") for k in rest),
    )
    return runs


METHOD = VvcMethod(
    method_id=METHOD_ID,
    presets=("vvc-rate-aware", "vvc-rate-aware-cpu"),
    trainer="frame-sequential",
    decoder="nerfstudio_vvc.methods.rate_aware.decoder:RateAwareDecoder",
    codec="nerfstudio_vvc.methods.rate_aware.codec",
    output="scene",
    bitstream=BITSTREAM_NAME,
    cpu_preset="vvc-rate-aware-cpu",
    rd_runs=rd_runs,
    rd_default_runs=DEFAULT_RUNS,
    rd_reference="Baseline",
    fuzz_target="nerfstudio_vvc.testing.fuzz_targets.rate_aware",
    description="Rate-aware DiF grids, coded frame by frame (I/P), decoded per frame.",
)
