"""Payload-level fuzz of the method decoders: >= 10,000 mutated files per method stream (prints JSON).

Each case mutates chunk payloads / METHOD_CONFIG / header fields of a small real stream, re-serialises it
with valid CRCs and decodes it in a worker subprocess under a memory cap (RLIMIT_AS, --mem-mb above the
worker's footprint) and a time cap (--timeout per case).  Outcomes: ok, typed (BitstreamError), untyped,
hang, oom, crash, nonfinite; ``typed_unnamed`` counts typed errors that do not name the file.
The gate (1,000 cases) is tests/codec/test_fuzz_payload.py.

    python bench/bench_fuzz_payload.py --cases 10000 --workers 2 [--out fuzz.json]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

from nerfstudio_vvc.jsonio import strict_json
from nerfstudio_vvc.methods.spec import discover_methods
from nerfstudio_vvc.testing.fuzz import run_fuzz


def targets() -> dict:
    """method id -> its spec's fuzz target module (with make_stream(path) and decode(path))."""
    return {m.method_id: m.fuzz_target for m in discover_methods().values() if m.fuzz_target}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--mem-mb", type=int, default=1024)
    ap.add_argument("--methods", nargs="*", default=list(targets()))
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    import importlib

    report = {"platform": platform.platform(), "cases_per_method": a.cases, "seed": a.seed, "workers": a.workers,
              "timeout_s": a.timeout, "mem_mb": a.mem_mb, "methods": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for method in a.methods:
            mod = targets()[method]
            stream = importlib.import_module(mod).make_stream(Path(tmp) / f"{method}.vvc")
            res = run_fuzz(stream, f"{mod}:decode", cases=a.cases, seed=a.seed, workers=a.workers, timeout_s=a.timeout,
                           mem_mb=a.mem_mb)
            out = res.to_json()
            out["stream_bytes"] = stream.stat().st_size
            report["methods"][method] = out
            print(f"{method}: {strict_json(out['counts'])} typed_unnamed={res.typed_unnamed} in {res.seconds:.0f} s",
                  flush=True)
    text = strict_json(report, indent=1)
    print(text)
    if a.out:
        a.out.write_text(text)


if __name__ == "__main__":
    main()
