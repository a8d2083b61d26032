"""Codec core: container format, constriction range coding, integer context models.

Depends only on numpy, torch, constriction and the stdlib -- never on nerfstudio -- so that a
player/decoder can ship without the training stack.

Importing the package imports nothing heavy: the names below are loaded from their modules on first use
(PEP 562), so `nerfstudio_vvc.codec.bitstream` or `nerfstudio_vvc.codec.errors` can be used without torch or
constriction being loaded (the method entry points and the method specs must stay light).
"""

from __future__ import annotations

import importlib
from typing import Any, Dict

_EXPORTS: Dict[str, str] = {
    "ChunkType": "nerfstudio_vvc.codec.bitstream",
    "ContainerReader": "nerfstudio_vvc.codec.bitstream",
    "ContainerWriter": "nerfstudio_vvc.codec.bitstream",
    "FrameRecord": "nerfstudio_vvc.codec.bitstream",
    "SequenceHeader": "nerfstudio_vvc.codec.bitstream",
    "StreamContents": "nerfstudio_vvc.codec.bitstream",
    "GridContextModel": "nerfstudio_vvc.codec.context",
    "IntegerGridContextModel": "nerfstudio_vvc.codec.context",
    "BitstreamError": "nerfstudio_vvc.codec.errors",
    "CorruptChunkError": "nerfstudio_vvc.codec.errors",
    "ModelNotFrozenError": "nerfstudio_vvc.codec.errors",
    "TruncatedError": "nerfstudio_vvc.codec.errors",
    "UnknownChunkTypeError": "nerfstudio_vvc.codec.errors",
    "UnsupportedVersionError": "nerfstudio_vvc.codec.errors",
    "compress_mask": "nerfstudio_vvc.codec.masks",
    "decompress_mask": "nerfstudio_vvc.codec.masks",
    "LearnableStep": "nerfstudio_vvc.codec.quant",
    "quantize_noise": "nerfstudio_vvc.codec.quant",
    "quantize_ste": "nerfstudio_vvc.codec.quant",
    "round_ste": "nerfstudio_vvc.codec.quant",
    "symbols_ste": "nerfstudio_vvc.codec.quant",
    "gaussian_bits": "nerfstudio_vvc.codec.rate",
    "laplace_bits": "nerfstudio_vvc.codec.rate",
    "compress_int_tensor": "nerfstudio_vvc.codec.weights",
    "compress_state_dict": "nerfstudio_vvc.codec.weights",
    "decompress_int_tensor": "nerfstudio_vvc.codec.weights",
    "decompress_state_dict": "nerfstudio_vvc.codec.weights",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'nerfstudio_vvc.codec' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(_EXPORTS))
