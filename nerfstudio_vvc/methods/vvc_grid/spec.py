"""vvc-grid's method spec (`nerfstudio_vvc.methods` entry point): a frame-sequential method without a bitstream.

Standard library only (see `nerfstudio_vvc/methods/spec.py`)."""

from __future__ import annotations

from nerfstudio_vvc.methods.spec import VvcMethod

METHOD_ID = "vvc-grid"

METHOD = VvcMethod(
    method_id=METHOD_ID,
    presets=("vvc-grid",),
    trainer="frame-sequential",
    decoder=None,
    bitstream=None,
    cpu_preset="vvc-grid",
    description="Per-frame feature grid, no compression (measured with `ns-vvc eval-run`).",
)
