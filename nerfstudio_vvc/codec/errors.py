"""Typed errors for everything that reads bytes we did not just produce ourselves.

One family (``BitstreamError``) so callers can catch a single type; every message names the file
(or ``<bytes>``), the chunk/record involved and the byte offset, because "CRC mismatch" alone is
useless when debugging a 2 GB sequence.
"""

from __future__ import annotations


class BitstreamError(Exception):
    """Base class: the bytes are not a valid nerfstudio-vvc bitstream (or payload)."""

    def __init__(self, msg: str, *, source: str = "<bytes>", where: str = "", offset: int | None = None) -> None:
        self.source = source
        self.where = where
        self.offset = offset
        parts = [f"{source}"]
        if where:
            parts.append(where)
        if offset is not None:
            parts.append(f"byte offset {offset}")
        super().__init__(f"{': '.join(parts)}: {msg}")


class TruncatedError(BitstreamError):
    """Data ends before a length field says it should (or a length is larger than what remains)."""


class CorruptChunkError(BitstreamError):
    """A CRC mismatch, bad magic, impossible field value or inconsistent index."""


class UnsupportedVersionError(BitstreamError):
    """The container major version (or a payload format version) is not one we can decode."""


class UnknownChunkTypeError(BitstreamError):
    """A critical chunk type this reader does not know (ancillary unknown types are skipped)."""


class ModelNotFrozenError(RuntimeError):
    """Coding was attempted with a float model: call ``freeze()``/``to_integer()`` first.

    Not a BitstreamError: it is a programming error, not bad input bytes.
    """


class UnknownMethodError(BitstreamError):
    """The header's ``method_id`` names no decoder in the registry (``nerfstudio_vvc/playback/registry.py``)."""
