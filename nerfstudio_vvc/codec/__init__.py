"""Codec core: container format, constriction range coding, integer context models.

Depends only on numpy, torch, constriction and the stdlib -- never on nerfstudio -- so that a
player/decoder can ship without the training stack.
"""

from nerfstudio_vvc.codec.bitstream import ChunkType, ContainerReader, ContainerWriter, FrameRecord, SequenceHeader
from nerfstudio_vvc.codec.context import GridContextModel, IntegerGridContextModel
from nerfstudio_vvc.codec.errors import (
    BitstreamError,
    CorruptChunkError,
    ModelNotFrozenError,
    TruncatedError,
    UnknownChunkTypeError,
    UnsupportedVersionError,
)
from nerfstudio_vvc.codec.masks import compress_mask, decompress_mask
from nerfstudio_vvc.codec.quant import LearnableStep, quantize_noise, quantize_ste, round_ste, symbols_ste
from nerfstudio_vvc.codec.rate import gaussian_bits, laplace_bits
from nerfstudio_vvc.codec.weights import (
    compress_int_tensor,
    compress_state_dict,
    decompress_int_tensor,
    decompress_state_dict,
)

__all__ = [
    "BitstreamError", "ChunkType", "ContainerReader", "ContainerWriter", "CorruptChunkError", "FrameRecord",
    "GridContextModel", "IntegerGridContextModel", "LearnableStep", "ModelNotFrozenError", "SequenceHeader",
    "TruncatedError", "UnknownChunkTypeError", "UnsupportedVersionError", "compress_int_tensor", "compress_mask",
    "compress_state_dict", "decompress_int_tensor", "decompress_mask", "decompress_state_dict", "gaussian_bits",
    "laplace_bits", "quantize_noise", "quantize_ste", "round_ste", "symbols_ste",
]
