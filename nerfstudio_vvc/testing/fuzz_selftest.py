"""A fuzz decode target that misbehaves on purpose, to test the harness (`nerfstudio_vvc/testing/fuzz.py`) sees every
outcome: it hangs, hangs inside "native" code (timer signal blocked), allocates 1 TiB, returns NaN, raises untyped
errors and kills its own process with SIGSEGV. Only the fuzz harness's own tests use it
(tests/codec/test_fuzz_payload.py)."""

from __future__ import annotations

import math
import os
import signal
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

SELFTEST_MODES = ("ok", "typed", "untyped", "hang", "oom", "nonfinite", "crash")
_selftest_calls = 0


def selftest_mode(data: bytes, modes: Sequence[str] = SELFTEST_MODES) -> str:
    """The behaviour ``selftest_decode`` shows for a mutated file (by a hash of its bytes)."""
    import zlib

    return modes[zlib.crc32(data) % len(modes)]


def selftest_decode(path: Path) -> Iterable[Any]:
    """A decode target that misbehaves on purpose (tests that the harness sees every outcome).

    The first call (the worker's warm-up on the unmutated stream) succeeds; later calls act out
    ``selftest_mode`` of the file; ``$VVC_FUZZ_SELFTEST_MODES`` (comma-separated) restricts the modes,
    ``native-hang`` blocks the timer signal and sleeps (what a loop inside native code looks like)."""
    global _selftest_calls
    _selftest_calls += 1
    if _selftest_calls == 1:
        return [1.0]
    modes = tuple(os.environ.get("VVC_FUZZ_SELFTEST_MODES", ",".join(SELFTEST_MODES)).split(","))
    mode = selftest_mode(Path(path).read_bytes(), modes)
    if mode == "typed":
        from nerfstudio_vvc.codec.errors import CorruptChunkError

        raise CorruptChunkError("self-test", source=str(path))
    if mode == "untyped":
        raise TypeError("self-test")
    if mode == "hang":
        time.sleep(3600)
    if mode == "native-hang":
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])
        time.sleep(3600)
    if mode == "oom":
        return [bytearray(1 << 40)]
    if mode == "nonfinite":
        return [1.0, math.nan]
    if mode == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    return [0.5]


