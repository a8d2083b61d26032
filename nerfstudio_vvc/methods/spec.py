"""One `VvcMethod` spec per method, found through the `nerfstudio_vvc.methods` entry-point group.

Like nerfstudio's method plugins (`nerfstudio.method_configs`, `nerfstudio/plugins/registry.py`), every method
declares itself once, in `methods/<name>/spec.py`, and registers that object in `pyproject.toml`::

    [project.entry-points."nerfstudio_vvc.methods"]
    vvc-codebook = "nerfstudio_vvc.methods.codebook.spec:METHOD"

The playback registry (method_id -> decoder), `ns-vvc eval` / `decode`, `ns-export vvc-bitstream`, rd-sweep, the
demo and the benches ask this table what a method is (its decoder, trainer kind, bitstream names, RD points, fuzz
target) instead of branching on preset-name prefixes or importing one method's constants.

This module and every `spec.py` import only the standard library: listing the methods must stay cheap (the
method entry points are resolved at every `ns-train` start) and must not pull in torch, constriction or nerfstudio.
`NERFSTUDIO_VVC_METHODS="id=module:attr,..."` adds or overrides specs without reinstalling (as nerfstudio's
`NERFSTUDIO_METHOD_CONFIGS`).
"""

from __future__ import annotations

import importlib
import json
import os
import re
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Callable, Dict, Literal, Mapping, Optional, Sequence, Tuple

ENTRY_POINT_GROUP = "nerfstudio_vvc.methods"
ENV_VAR = "NERFSTUDIO_VVC_METHODS"
BITSTREAM_NAME = "sequence.vvc"
"""The bitstream every codec method writes into its run folder (`<run>/sequence.vvc`)."""

TrainerKind = Literal["frame-sequential", "whole-sequence"]
OutputKind = Literal["scene", "views"]


@dataclass(frozen=True)
class RdRun:
    """One ns-train run of an RD sweep; it yields one RD point per bitstream it writes."""

    name: str
    curve: str
    args: Tuple[str, ...]
    extra_streams: Tuple[Tuple[str, str, str], ...] = ()
    """More streams of the run: (point suffix, file name, curve), e.g. vvc-codebook's stream without dynamic codes."""
    bitstream: str = BITSTREAM_NAME
    """The run's main stream (point `name`)."""

    def bitstreams(self) -> Dict[str, str]:
        """Point name → bitstream file name inside the run folder."""
        out = {self.name: self.bitstream}
        out.update({f"{self.name}{suffix}": fname for suffix, fname, _ in self.extra_streams})
        return out

    def curve_of(self, point: str) -> str:
        for suffix, _, curve in self.extra_streams:
            if point == f"{self.name}{suffix}":
                return curve
        return self.curve


@dataclass(frozen=True)
class VvcMethod:
    """What the tools need to know about a method, in one place."""

    method_id: str
    """The container header's `method_id` (and the method's name)."""
    presets: Tuple[str, ...]
    """Its `ns-train` method names (the `nerfstudio.method_configs` entry points)."""
    trainer: TrainerKind
    """`frame-sequential` (FrameSequentialTrainer: GOPs, `--gop-size`, progress.json) or `whole-sequence`
    (SequenceTrainer: resumable stages, stages.json)."""
    decoder: Optional[str] = None
    """"module:Class" of its `MethodDecoder` (None: the method writes no bitstream)."""
    codec: Optional[str] = None
    """Module of its stream codec (`methods/<name>/codec.py`)."""
    output: OutputKind = "scene"
    """What a decoded frame is: a 3D `scene` rendered from any camera, or the coded camera `views` (a view codec:
    measured view by view against the originals, `ns-vvc decode --as-dataset`)."""
    bitstream: Optional[str] = BITSTREAM_NAME
    """File name of the run's bitstream (None without one)."""
    cpu_preset: Optional[str] = None
    """The preset that runs on a CPU (the demo's and the sweeps' default)."""
    rd_runs: Optional[Callable[[Sequence[float]], Dict[str, RdRun]]] = None
    """The method's RD sweep runs by name. The argument: values of its continuous RD knob, where it has one
    (vvc-rate-aware: the λs of `full-<λ>`; empty = the paper's four); methods with fixed points ignore it."""
    rd_default_runs: Tuple[str, ...] = ()
    """Runs `ns-vvc rd-sweep` trains when none are named."""
    rd_reference: str = ""
    """Curve the BD-rates are measured against."""
    fuzz_target: Optional[str] = None
    """Module with `make_stream(path) -> path` (a small valid stream) and `decode(path) -> values` (a strict decode),
    fuzzed by `nerfstudio_vvc/testing/fuzz.py` (bench/bench_fuzz_payload.py, tests/codec/test_fuzz_payload.py)."""
    description: str = ""

    @property
    def has_bitstream(self) -> bool:
        return self.decoder is not None and self.bitstream is not None


def run_finished(rd: Path, num_frames: int) -> bool:
    """A run folder whose training and coding are done (frame-sequential: progress.json counts the frames;
    whole-sequence: stages.json lists `code`)."""
    progress, stages = Path(rd) / "progress.json", Path(rd) / "stages.json"
    if progress.exists() and json.loads(progress.read_text()).get("frames_done", 0) >= num_frames:
        return True
    return stages.exists() and "code" in json.loads(stages.read_text()).get("done", [])


class UnknownMethodSpecError(LookupError):
    """No spec for a method id or preset; the message lists the known ones."""


def _load_target(target: str, name: str) -> VvcMethod:
    mod, _, attr = target.partition(":")
    obj = getattr(importlib.import_module(mod), attr or "METHOD")
    if not isinstance(obj, VvcMethod):
        raise TypeError(f"method spec {name!r} -> {target} is not a VvcMethod")
    if obj.method_id != name:
        raise ValueError(f"method spec {name!r} -> {target} declares method_id {obj.method_id!r}")
    return obj


_CACHE: Optional[Dict[str, VvcMethod]] = None


def discover_methods(refresh: bool = False) -> Dict[str, VvcMethod]:
    """method_id → spec, from the entry-point group (and `$NERFSTUDIO_VVC_METHODS`), sorted by id."""
    global _CACHE
    if _CACHE is not None and not refresh:
        return dict(_CACHE)
    targets: Dict[str, str] = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    for item in filter(None, (s.strip() for s in os.environ.get(ENV_VAR, "").split(","))):
        name, _, target = item.partition("=")
        targets[name.strip()] = target.strip()
    _CACHE = {name: _load_target(t, name) for name, t in sorted(targets.items())}
    return dict(_CACHE)


def get_method(method_id: str) -> VvcMethod:
    """The spec of `method_id`; `UnknownMethodSpecError` naming the known ones if none."""
    methods = discover_methods()
    if method_id not in methods:
        raise UnknownMethodSpecError(f"no method {method_id!r} (known: {', '.join(methods) or 'none'})")
    return methods[method_id]


def find_method(method_id: str) -> Optional[VvcMethod]:
    return discover_methods().get(method_id)


def method_for_preset(preset: str) -> VvcMethod:
    """The spec whose `presets` list `preset` (an `ns-train` method name)."""
    methods = discover_methods()
    for m in methods.values():
        if preset in m.presets:
            return m
    known = sorted(p for m in methods.values() for p in m.presets)
    raise UnknownMethodSpecError(f"no method has the preset {preset!r} (known: {', '.join(known)})")


def decoders() -> Mapping[str, str]:
    """method_id → "module:Class" of every method that writes a bitstream (the playback registry's table)."""
    return {m.method_id: m.decoder for m in discover_methods().values() if m.decoder is not None}


_METHOD_NAME = re.compile(r"^method_name:\s*(\S+)\s*$", re.MULTILINE)


def method_of_run(config_yml: Path) -> Optional[VvcMethod]:
    """The spec of the run whose `config.yml` (written by ns-train) this is, read without loading the config
    (its top-level `method_name`); None when the run's method has no spec."""
    try:
        m = _METHOD_NAME.search(Path(config_yml).read_text(errors="replace"))
    except OSError:
        return None
    if m is None:
        return None
    try:
        return method_for_preset(m.group(1).strip("'\""))
    except UnknownMethodSpecError:
        return None


__all__ = [
    "BITSTREAM_NAME", "ENTRY_POINT_GROUP", "RdRun", "UnknownMethodSpecError", "VvcMethod", "decoders",
    "discover_methods", "find_method", "get_method", "method_for_preset", "method_of_run", "run_finished",
]
