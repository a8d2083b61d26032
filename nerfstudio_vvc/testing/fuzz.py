"""Payload-level fuzzing of a method's decoder: mutate what is *inside* the chunks, keep the CRCs valid.

Byte-level fuzzing of a container mostly exercises the CRC checks; here every mutated file is
re-serialised with valid record and chunk CRCs (and a valid index), so the payload decoders and the
method-config parser see the crafted bytes.  Method-agnostic: it takes a stream file and a decode
function ``decode(path) -> iterable of tensors/arrays`` (given as ``"module:function"``), e.g.
``nerfstudio_vvc.testing.fuzz_targets.rate_aware:decode`` (a method's spec names its target module,
``VvcMethod.fuzz_target``). Files are edited and re-serialised through the public ``StreamContents``
(``codec/bitstream/contents.py``).

Every case runs in a worker subprocess under a memory cap (``RLIMIT_AS``: what the worker holds after
importing and one clean decode, plus ``mem_mb``) and a per-case time cap (an interval timer, and a
watchdog in the parent for hangs inside native code).  A worker handles a batch of cases and reports one
JSON line per case; when it dies (out of memory, a crash) the parent counts the case it was on and starts a
new worker on the remaining cases.

Outcomes: ``ok`` (decoded, every value finite), ``typed`` (a ``BitstreamError``), ``untyped`` (any other
exception), ``hang``, ``oom``, ``crash`` (the worker died), ``nonfinite`` (decoded, but a value is NaN/inf).
``typed_unnamed`` counts typed errors whose message does not name the file.

CLI: ``python -m nerfstudio_vvc.testing.fuzz run STREAM DECODE [--cases N] [--seed S]`` prints the counts.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import random
import resource
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from nerfstudio_vvc.codec.bitstream.contents import StreamContents
from nerfstudio_vvc.codec.bitstream.header import ChunkType

OUTCOMES = ("ok", "typed", "untyped", "hang", "oom", "crash", "nonfinite")
Chunks = List[Tuple[int, bytes]]


Stream = StreamContents
"""A container's content, editable: header JSON, global chunks and frames (id, I-flag, chunks)."""


# ----------------------------------------------------------------------------------- mutations
_INT_SPECIALS = (
    0,
    1,
    -1,
    2,
    0x7F,
    0x80,
    0xFF,
    0x7FFF,
    0x8000,
    0xFFFF,
    0x7FFFFFFF,
    0x80000000,
    0xFFFFFFFF,
    1 << 62,
    (1 << 63) - 1,
    1 << 63,
    (1 << 64) - 1,
)
_FLOATS = (math.nan, math.inf, -math.inf, 0.0, -0.0, -1.0, 1e-45, 1e-300, 3.4e38, 1e300, -1e30)
_JSON_VALUES: Tuple[Any, ...] = (
    "x",
    "",
    None,
    True,
    False,
    {},
    [],
    [1, 2],
    [[]],
    1.5,
    0,
    -1,
    1 << 62,
    -(1 << 62),
    10**40,
    1e308,
    -1e308,
    1e-320,
    math.nan,
    math.inf,
    -math.inf,
    65536,
    100000,
    4097,
)


def _pick_chunk(rng: random.Random, s: Stream) -> Tuple[Chunks, int]:
    """A random (chunk list, position): globals or a frame's chunks."""
    lists = [s.global_chunks] + [c for _, _, c in s.frames]
    lists = [c for c in lists if c]
    chunks = rng.choice(lists)
    return chunks, rng.randrange(len(chunks))


def _offset(rng: random.Random, n: int, width: int) -> int:
    if n <= width:
        return 0
    if rng.random() < 0.5:  # headers live at the start of payloads
        return rng.randrange(min(n - width, 48) + 1)
    if rng.random() < 0.5:
        return 4 * rng.randrange((n - width) // 4 + 1)
    return rng.randrange(n - width + 1)


def mutate_bytes(rng: random.Random, data: bytes, pool: Sequence[bytes] = ()) -> Tuple[bytes, str]:
    """One payload mutation; returns (new payload, description)."""
    d = bytearray(data)
    op = rng.randrange(8)
    if op == 0 and d:
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(d))
            d[i] ^= 1 << rng.randrange(8)
        return bytes(d), "bitflip"
    if op == 1:
        return bytes(d[: rng.randrange(len(d) + 1)]), "truncate"
    if op == 2:
        return bytes(d) + rng.randbytes(rng.randint(1, 64)), "extend"
    if op == 3 and d:
        i = rng.randrange(len(d))
        n = rng.randint(1, 16)
        d[i : i + n] = rng.randbytes(n)
        return bytes(d[: len(data)] if len(d) > len(data) else d), "overwrite"
    if op == 4:
        width = rng.choice((1, 2, 4, 8))
        o = _offset(rng, len(d), width)
        v = rng.choice(_INT_SPECIALS) if rng.random() < 0.8 else rng.getrandbits(8 * width)
        raw = (v % (1 << (8 * width))).to_bytes(width, "little")
        d[o : o + width] = raw
        return bytes(d), f"int{8 * width}@{o}={v}"
    if op == 5:
        fmt = rng.choice(("<f", "<d"))
        width = struct.calcsize(fmt)
        o = _offset(rng, len(d), width)
        v = rng.choice(_FLOATS)
        if fmt == "<f" and math.isfinite(v) and abs(v) > 3.4e38:
            v = math.copysign(3.4e38, v)
        d[o : o + width] = struct.pack(fmt, v)
        return bytes(d), f"float{8 * width}@{o}={v}"
    if op == 6 and pool:
        return rng.choice(pool), "splice"
    return b"", "empty"


def _json_paths(obj: Any, path: Tuple = ()) -> List[Tuple]:
    out = [path]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _json_paths(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _json_paths(v, path + (i,))
    return out


def mutate_json(rng: random.Random, data: bytes) -> Tuple[bytes, str]:
    """One structural JSON mutation: wrong type, missing key, huge/negative/NaN value, extra key, ..."""
    obj = json.loads(data)
    paths = [p for p in _json_paths(obj) if p]
    if not paths:
        return json.dumps(rng.choice(_JSON_VALUES)).encode(), "json-root"
    path = rng.choice(paths)
    parent = obj
    for k in path[:-1]:
        parent = parent[k]
    key, cur = path[-1], parent[path[-1]]
    op = rng.randrange(7)
    desc = "/".join(map(str, path))
    if op == 0 and isinstance(parent, dict):
        del parent[key]
        desc = f"del {desc}"
    elif op == 1 and isinstance(parent, dict):
        parent[f"unknown_{rng.randrange(100)}"] = rng.choice(_JSON_VALUES)
        desc = f"add key near {desc}"
    elif op == 2 and isinstance(cur, (int, float)) and not isinstance(cur, bool):
        new = rng.choice((0, -1, -cur, cur * 1000, cur + 1, cur - 1, int(cur) if isinstance(cur, float) else cur + 0.5))
        parent[key] = new
        desc = f"{desc}={new}"
    elif op == 3 and isinstance(cur, list):
        if cur and rng.random() < 0.5:
            cur.pop(rng.randrange(len(cur)))
            desc = f"shorten {desc}"
        else:
            cur.append(rng.choice(cur) if cur else 1)
            desc = f"lengthen {desc}"
    else:
        new = rng.choice(_JSON_VALUES)
        parent[key] = new
        desc = f"{desc}={new!r}"
    return json.dumps(obj, allow_nan=True).encode(), f"json {desc}"[:120]


def _is_json(data: bytes) -> bool:
    try:
        json.loads(data)
        return True
    except (ValueError, UnicodeDecodeError):
        return False


def mutate_stream(rng: random.Random, base: Stream) -> Tuple[Stream, str]:
    """One mutated copy of ``base`` (1 to 2 mutations)."""
    s = base.copy()
    descs = []
    pool = [d for _, d in s.global_chunks] + [d for _, _, c in s.frames for _, d in c]
    for _ in range(1 if rng.random() < 0.8 else 2):
        r = rng.random()
        if r < 0.10:  # the sequence header (JSON)
            use_json = rng.random() < 0.8 and _is_json(s.header_json)
            s.header_json, d = mutate_json(rng, s.header_json) if use_json else mutate_bytes(rng, s.header_json)
            descs.append(f"header {d}")
        elif r < 0.35:  # JSON global chunks (METHOD_CONFIG): structural mutations
            js = [i for i, (_, d) in enumerate(s.global_chunks) if _is_json(d)]
            if not js:
                continue
            i = rng.choice(js)
            t, d = s.global_chunks[i]
            new, desc = mutate_json(rng, d) if rng.random() < 0.85 else mutate_bytes(rng, d)
            s.global_chunks[i] = (t, new)
            descs.append(f"{_name(t)} {desc}")
        elif r < 0.85:  # one chunk payload
            chunks, i = _pick_chunk(rng, s)
            t, d = chunks[i]
            new, desc = mutate_bytes(rng, d, pool)
            chunks[i] = (t, new)
            descs.append(f"{_name(t)} {desc}")
        else:  # structure: chunk and frame lists
            op = rng.randrange(6)
            chunks, i = _pick_chunk(rng, s)
            if op == 0:
                t = chunks.pop(i)[0]
                descs.append(f"drop {_name(t)}")
            elif op == 1:
                chunks.insert(i, chunks[i])
                descs.append(f"duplicate {_name(chunks[i][0])}")
            elif op == 2:
                t, d = chunks[i]
                nt = int(rng.choice(list(ChunkType)))
                chunks[i] = (nt, d)
                descs.append(f"retype {_name(t)}->{_name(nt)}")
            elif op == 3 and len(chunks) > 1:
                j = rng.randrange(len(chunks))
                chunks[i], chunks[j] = chunks[j], chunks[i]
                descs.append("swap chunks")
            elif op == 4 and s.frames:
                k = rng.randrange(len(s.frames))
                idx, is_i, c = s.frames[k]
                s.frames[k] = (idx, not is_i, c)
                descs.append(f"flip I-flag of frame {idx}")
            elif s.frames:
                k = rng.randrange(len(s.frames))
                idx = s.frames.pop(k)[0]
                descs.append(f"drop frame {idx}")
    return s, "; ".join(descs) or "none"


def _name(t: int) -> str:
    try:
        return ChunkType(t).name
    except ValueError:
        return f"0x{t:04x}"


def case_bytes(base: Stream, seed: int, case: int) -> Tuple[bytes, str]:
    """Deterministic mutated file ``case`` of a run with ``seed``."""
    rng = random.Random(seed * 1_000_003 + case)
    s, desc = mutate_stream(rng, base)
    return s.to_bytes(), desc


# ----------------------------------------------------------------------------------- worker
class CaseTimeout(BaseException):
    """Raised by the interval timer; a BaseException so that decoders' ``except Exception`` cannot eat it."""


def _on_alarm(signum, frame):  # pragma: no cover - signal handler
    raise CaseTimeout()


def _load(spec: str) -> Callable[[Path], Iterable[Any]]:
    mod, _, attr = spec.partition(":")
    return getattr(importlib.import_module(mod), attr)


def _nonfinite(values: Iterable[Any]) -> Optional[str]:
    import numpy as np
    import torch

    for i, v in enumerate(values):
        if isinstance(v, torch.Tensor):
            if (v.is_floating_point() or v.is_complex()) and not bool(torch.isfinite(v).all()):
                return f"value #{i} {tuple(v.shape)}"
        elif isinstance(v, np.ndarray):
            if v.dtype.kind in "fc" and not np.isfinite(v).all():
                return f"value #{i} {v.shape}"
        elif isinstance(v, float) and not math.isfinite(v):
            return f"value #{i} = {v}"
    return None


_OOM_MARKERS = ("can't allocate memory", "out of memory", "bad_alloc", "cannot allocate memory", "Unable to allocate")


def classify(decode: Callable[[Path], Iterable[Any]], path: Path, timeout_s: float) -> Tuple[str, str]:
    """Run ``decode(path)`` once: (outcome, detail)."""
    from nerfstudio_vvc.codec.errors import BitstreamError

    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        values = list(decode(path))
        bad = _nonfinite(values)
        return ("nonfinite", bad) if bad else ("ok", "")
    except CaseTimeout:
        return "hang", f"> {timeout_s} s"
    except BitstreamError as e:
        return "typed", str(e)
    except MemoryError as e:
        return "oom", f"MemoryError {e}"
    except BaseException as e:  # noqa: BLE001 - anything else is a finding
        msg = f"{type(e).__module__}.{type(e).__name__}: {e}"
        if any(m in str(e) for m in _OOM_MARKERS):
            return "oom", msg
        if isinstance(e, KeyboardInterrupt):
            raise
        return "untyped", msg
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _vm_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def worker_main(argv: Sequence[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stream", type=Path, required=True)
    ap.add_argument("--decode", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--mem-mb", type=int, default=1024)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--cases-file", type=Path, required=True)
    a = ap.parse_args(argv)
    decode = _load(a.decode)
    base = Stream.load(a.stream)
    path = a.workdir / f"case-{os.getpid()}.vvc"
    path.write_bytes(base.to_bytes())
    signal.signal(signal.SIGALRM, _on_alarm)
    outcome, detail = classify(decode, path, max(a.timeout, 60.0))  # warm-up: imports, caches
    if outcome != "ok":
        raise SystemExit(f"fuzz worker: the unmutated stream does not decode ({outcome}: {detail})")
    if a.mem_mb > 0:
        cap = _vm_bytes() + a.mem_mb * (1 << 20)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    print(json.dumps({"ready": True}), flush=True)
    for line in a.cases_file.read_text().split():
        case = int(line)
        data, desc = case_bytes(base, a.seed, case)
        path.write_bytes(data)
        outcome, detail = classify(decode, path, a.timeout)
        named = outcome != "typed" or str(path) in detail
        print(
            json.dumps({"case": case, "outcome": outcome, "mutation": desc, "detail": detail[:300], "named": named}),
            flush=True,
        )
    path.unlink(missing_ok=True)


# ----------------------------------------------------------------------------------- parent
@dataclass
class FuzzResult:
    counts: Dict[str, int]
    typed_unnamed: int
    findings: List[Dict[str, Any]]  # every non-ok, non-typed case (and typed cases that do not name the file)
    seconds: float
    restarts: int

    @property
    def cases(self) -> int:
        return sum(self.counts.values())

    def to_json(self) -> Dict[str, Any]:
        return {
            "cases": self.cases,
            "counts": self.counts,
            "typed_unnamed": self.typed_unnamed,
            "seconds": round(self.seconds, 1),
            "worker_restarts": self.restarts,
            "findings": self.findings[:50],
        }


class _Worker:
    _n = 0

    def __init__(self, cmd: List[str], cases: List[int], env: Dict[str, str], workdir: Path) -> None:
        _Worker._n += 1
        self.cases_file = workdir / f"cases-{_Worker._n}.txt"
        self.cases_file.write_text("".join(f"{c}\n" for c in cases))
        self.err_file = workdir / f"stderr-{_Worker._n}.txt"
        with open(self.err_file, "w") as err:
            self.proc = subprocess.Popen(
                cmd + ["--cases-file", str(self.cases_file)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                env=env,
            )
        self.pending = list(cases)  # cases given, not yet reported (in order)
        self.buf = ""
        self.ready = False
        self.last = time.monotonic()

    def stderr_tail(self) -> str:
        try:
            return self.err_file.read_text(errors="replace")[-1500:]
        except OSError:
            return ""


def run_fuzz(
    stream: Path,
    decode: str,
    cases: int = 1000,
    seed: int = 0,
    workers: int = 1,
    timeout_s: float = 10.0,
    mem_mb: int = 1024,
    startup_s: float = 180.0,
) -> FuzzResult:
    """Fuzz ``decode`` with ``cases`` mutations of ``stream`` in ``workers`` subprocesses."""
    t0 = time.monotonic()
    counts: Counter = Counter({k: 0 for k in OUTCOMES})
    findings: List[Dict[str, Any]] = []
    unnamed = restarts = 0
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    tmp = tempfile.TemporaryDirectory(prefix="vvc-fuzz-")
    cmd = [
        sys.executable,
        "-m",
        "nerfstudio_vvc.testing.fuzz",
        "worker",
        "--stream",
        str(stream),
        "--decode",
        decode,
        "--seed",
        str(seed),
        "--timeout",
        str(timeout_s),
        "--mem-mb",
        str(mem_mb),
        "--workdir",
        tmp.name,
    ]
    todo = list(range(cases))
    n = max(1, min(workers, len(todo)))
    live = [_Worker(cmd, todo[i::n], env, Path(tmp.name)) for i in range(n)]
    try:
        while live:
            fds = {w.proc.stdout.fileno(): w for w in live}  # type: ignore[union-attr]
            ready, _, _ = select.select(list(fds), [], [], 1.0)
            now = time.monotonic()
            for fd in ready:
                w = fds[fd]
                chunk = os.read(fd, 1 << 16).decode()
                if chunk:
                    w.buf += chunk
                    w.last = now
                    *lines, w.buf = w.buf.split("\n")
                    for line in lines:
                        rec = json.loads(line)
                        if rec.get("ready"):
                            w.ready = True
                            continue
                        assert rec["case"] == w.pending[0], (rec, w.pending[:3])
                        w.pending.pop(0)
                        counts[rec["outcome"]] += 1
                        if rec["outcome"] not in ("ok", "typed") or not rec["named"]:
                            findings.append(rec)
                        unnamed += not rec["named"]
                    continue
                # EOF: the worker exited
                rc = w.proc.wait()
                live.remove(w)
                if not w.ready:
                    raise RuntimeError(f"fuzz worker failed to start (rc {rc}): {w.stderr_tail()}")
                if w.pending:  # died on a case: count it, restart on the rest
                    case = w.pending.pop(0)
                    kind = "oom" if rc in (-signal.SIGKILL, -signal.SIGABRT) else "crash"
                    counts[kind] += 1
                    findings.append(
                        {"case": case, "outcome": kind, "detail": f"worker exit {rc}: {w.stderr_tail()[-300:]}"}
                    )
                    restarts += 1
                    if w.pending:
                        live.append(_Worker(cmd, w.pending, env, Path(tmp.name)))
            for w in list(live):  # watchdog: a hang inside native code never returns to the timer
                limit = startup_s if not w.ready else 3 * timeout_s + 5
                if w.proc.poll() is None and now - w.last > limit and w.pending:
                    w.proc.kill()
                    w.proc.wait()
                    live.remove(w)
                    if not w.ready:
                        raise RuntimeError("fuzz worker did not start in time")
                    case = w.pending.pop(0)
                    counts["hang"] += 1
                    findings.append({"case": case, "outcome": "hang", "detail": "killed by the watchdog"})
                    restarts += 1
                    if w.pending:
                        live.append(_Worker(cmd, w.pending, env, Path(tmp.name)))
    finally:
        for w in live:
            w.proc.kill()
        tmp.cleanup()
    return FuzzResult(dict(counts), unnamed, findings, time.monotonic() - t0, restarts)


def main(argv: Optional[Sequence[str]] = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "worker":
        worker_main(argv[1:])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cmd", choices=["run"])
    ap.add_argument("stream", type=Path)
    ap.add_argument("decode", help="module:function taking a path, returning the decoded tensors")
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--mem-mb", type=int, default=1024)
    a = ap.parse_args(argv)
    res = run_fuzz(a.stream, a.decode, a.cases, a.seed, a.workers, a.timeout, a.mem_mb)
    print(json.dumps(res.to_json(), indent=1))


if __name__ == "__main__":
    main()
