"""The method-codec contract: every method's `codec.py` exposes `CODEC`, an object with the same calls.

Encode (what a writer puts in the container; `payload` is the method's own "what to code" object):

    chunks = CODEC.encode_globals(config, payload)       # -> [(ChunkType, bytes)]: METHOD_CONFIG first, then GLOBALS
    chunks = CODEC.encode_frame(config, payload, prev)   # -> [(ChunkType, bytes)] of one frame record

Decode (what a reader gets back):

    config = CODEC.parse_config(method_config_bytes_or_None, source)        # METHOD_CONFIG -> validated config
    shared = CODEC.decode_globals(config, reader.global_chunk_list, source)  # GLOBALS payloads -> sequence state
    frame  = CODEC.decode_frame(config, shared, record, prev)               # FrameRecord (+ previous frame) -> frame

`prev` is the previous decoded frame of the GOP on both sides (None for an I-frame): an encoder codes a P-frame
against exactly what the decoder will hold. `config` is the same object on both sides (`parse_config` of the
METHOD_CONFIG that `encode_globals` wrote equals the config it was given).

| method | globals payload | frame payload |
|---|---|---|
| vvc-rate-aware | None (METHOD_CONFIG only) | `CodedFrame` (symbols, steps, integer context model, occupancy, MLP) |
| vvc-codebook | `CodedGlobals` (shared codebooks, index planes, MLP payload) | `FragmentCodes`+occupancy, or None |
| vvc-mv-inr | `CodedGlobals` (basic view's HEVC stream, network units) | the frame's time-grid row units |

Every failure is a `BitstreamError` naming the file (`record.source` / `source`), the frame and the chunk. A
method's decoder (`playback/decoder.py::MethodDecoder`) is this contract plus rendering; the fuzz targets, the
tests and `decode_file` below drive the codec alone. The spec names the module (`VvcMethod.codec`).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Iterator, List, Optional, Protocol, Sequence, Tuple, Union, runtime_checkable


@runtime_checkable
class MethodCodec(Protocol):
    method_id: str

    def encode_globals(self, config: Any, payload: Any) -> List[Tuple[Any, bytes]]: ...

    def encode_frame(self, config: Any, payload: Any, prev: Optional[Any]) -> List[Tuple[Any, bytes]]: ...

    def parse_config(self, data: Optional[bytes], source: str = "<bytes>") -> Any: ...

    def decode_globals(self, config: Any, global_chunks: Sequence[Tuple[int, bytes]], source: str = "<bytes>") -> Any:
        ...

    def decode_frame(self, config: Any, shared: Any, record: Any, prev: Optional[Any]) -> Any: ...


def load_codec(module: str) -> MethodCodec:
    """The `CODEC` of a method's codec module (e.g. the spec's `codec`)."""
    codec = getattr(importlib.import_module(module), "CODEC")
    if not isinstance(codec, MethodCodec):
        raise TypeError(f"{module}.CODEC does not implement the method-codec contract")
    return codec


def decode_file(path: Union[str, Path], codec: MethodCodec) -> Iterator[Any]:
    """Decode every frame of `path` in order through the contract (strict: no safety net turns a raw exception into a
    typed one); yields the decoded frames. The header's method_id must be the codec's."""
    from nerfstudio_vvc.codec.bitstream.container import ContainerReader
    from nerfstudio_vvc.codec.bitstream.header import ChunkType
    from nerfstudio_vvc.codec.errors import UnknownMethodError

    source = str(path)
    with ContainerReader(Path(path)) as reader:
        if reader.header.method_id != codec.method_id:
            raise UnknownMethodError(f"method_id {reader.header.method_id!r}, not {codec.method_id!r}", source=source,
                                     where="header")
        config = codec.parse_config(reader.global_chunks.get(ChunkType.METHOD_CONFIG), source)
        shared = codec.decode_globals(config, reader.global_chunk_list, source)
        prev = None
        for idx in reader.frame_indices():
            record = reader.read_frame(idx)
            prev = codec.decode_frame(config, shared, record, None if record.is_iframe else prev)
            yield prev
