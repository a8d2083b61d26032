"""Bad input reported as one line, not a traceback.

``InputError`` is the base of the errors that describe a problem with the user's files
(``VvcDataError`` for datasets, ``BitstreamError`` for .vvc files); their messages start with the
offending file.  When one escapes to the top of a command -- ``ns-train`` (nerfstudio's own script, which
lets exceptions from our dataparser propagate), ``ns-vvc`` -- the hook installed here prints

    <command>: error: <file>: <problem>

on stderr and the command exits with status 1.  ``NSVVC_DEBUG=1`` in the environment shows the usual
traceback instead.  Other exceptions (bugs) keep their traceback.

The hook is installed when ``VvcDataError`` / ``BitstreamError`` are defined (importing the module that
can raise them), so it is in place in every process that can raise one; it chains to the previous hook.
Import-light: no torch, no nerfstudio.
"""

from __future__ import annotations

import os
import sys
from types import TracebackType
from typing import Optional, Type

DEBUG_ENV = "NSVVC_DEBUG"


class InputError(Exception):
    """Mixin base: the exception describes bad user input (one-line report at the top level)."""


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def one_line(exc: BaseException) -> str:
    """The exception's message on one line."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def program_name() -> str:
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "nerfstudio-vvc"


def report(exc: BaseException) -> None:
    print(f"{program_name()}: error: {one_line(exc)}", file=sys.stderr, flush=True)


def _hook(etype: Type[BaseException], value: BaseException, tb: Optional[TracebackType]) -> None:
    if isinstance(value, InputError) and not debug_enabled():
        report(value)
        return
    _previous(etype, value, tb)


_previous = sys.excepthook


def install_excepthook() -> None:
    """Report uncaught ``InputError``s as one line (idempotent)."""
    global _previous
    if getattr(sys.excepthook, "_nsvvc_one_line", False):
        return
    _previous = sys.excepthook
    setattr(_hook, "_nsvvc_one_line", True)
    sys.excepthook = _hook
