"""Container format (see docs/bitstream.md)."""

from nerfstudio_vvc.codec.bitstream.container import ContainerReader, ContainerWriter, FrameRecord, serialize_container
from nerfstudio_vvc.codec.bitstream.contents import StreamContents
from nerfstudio_vvc.codec.bitstream.header import ChunkType, SequenceHeader

__all__ = [
    "ChunkType", "ContainerReader", "ContainerWriter", "FrameRecord", "SequenceHeader", "StreamContents",
    "serialize_container",
]
