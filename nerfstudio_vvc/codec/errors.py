"""Typed errors for everything that reads bytes we did not just produce ourselves.

One family (``BitstreamError``) so callers can catch a single type; every message names the file
(or ``<bytes>``), the chunk/record involved and the byte offset, because "CRC mismatch" alone is
useless when debugging a 2 GB sequence.
"""

from __future__ import annotations

from nerfstudio_vvc.user_errors import InputError, install_excepthook


class BitstreamError(InputError):
    """Base class: the bytes are not a valid nerfstudio-vvc bitstream (or payload).

    Uncaught, it is reported as one line (``nerfstudio_vvc.user_errors``)."""

    def __init__(self, msg: str, *, source: str = "<bytes>", where: str = "", offset: int | None = None) -> None:
        self.msg = msg
        self.source = source
        self.where = where
        self.offset = offset
        parts = [f"{source}"]
        if where:
            parts.append(where)
        if offset is not None:
            parts.append(f"byte offset {offset}")
        super().__init__(f"{': '.join(parts)}: {msg}")


    def in_context(self, *, source: str | None = None, where: str = "") -> "BitstreamError":
        """The same error (same class, message and offset) naming the file and the enclosing frame/chunk.

        Payload decoders see only bytes (``<bytes>``, ``where="mask"``); the method decoder that called
        them knows the file, the frame and the chunk, and re-raises ``e.in_context(...)``."""
        src = source if source is not None and self.source == "<bytes>" else self.source
        inner = self.where
        full = where if not inner else (f"{where} {inner}" if where else inner)
        if where and inner.startswith(where):
            full = inner
        return type(self)(self.msg, source=src, where=full, offset=self.offset)

    def __reduce__(self):  # picklable across processes (keyword-only constructor)
        return _rebuild, (type(self), self.msg, self.source, self.where, self.offset)


def _rebuild(cls: type, msg: str, source: str, where: str, offset: int | None) -> BitstreamError:
    return cls(msg, source=source, where=where, offset=offset)


class TruncatedError(BitstreamError):
    """Data ends before a length field says it should (or a length is larger than what remains)."""


class CorruptChunkError(BitstreamError):
    """A CRC mismatch, bad magic, impossible field value or inconsistent index."""


class UnsupportedVersionError(BitstreamError):
    """The container major version (or a payload format version) is not one we can decode."""


class IncompatibleStreamsError(BitstreamError):
    """Files that cannot be joined into one sequence (different header or globals, overlapping frame ids,
    a part that does not start with an I-frame); see ``codec/bitstream/merge.py``."""


class UnknownChunkTypeError(BitstreamError):
    """A critical chunk type this reader does not know (ancillary unknown types are skipped)."""


install_excepthook()


class ModelNotFrozenError(RuntimeError):
    """Coding was attempted with a float model: call ``freeze()``/``to_integer()`` first.

    Not a BitstreamError: it is a programming error, not bad input bytes.
    """


class UnknownMethodError(BitstreamError):
    """The header's ``method_id`` names no decoder in the registry (``nerfstudio_vvc/playback/registry.py``)."""
