"""The table from a bitstream's `method_id` to its decoder, built from the method specs.

Every method declares its decoder in its `VvcMethod` spec (`methods/<name>/spec.py`, found through the
`nerfstudio_vvc.methods` entry-point group; docs/adding_a_method.md): nothing to add here for a new method.
Entries are "module:Class" strings, imported on first use, so listing methods stays cheap and a
broken method module does not stop the others from loading.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Dict, List, Type, Union

from nerfstudio_vvc.codec.bitstream.container import ContainerReader
from nerfstudio_vvc.codec.errors import UnknownMethodError
from nerfstudio_vvc.methods.spec import decoders
from nerfstudio_vvc.playback.decoder import MethodDecoder

DECODERS: Dict[str, str] = dict(decoders())
"""method_id (container header) -> "module:MethodDecoder subclass", from every spec that has a decoder."""


def registered_methods() -> List[str]:
    return sorted(DECODERS)


def decoder_class(method_id: str, source: str = "<bytes>") -> Type[MethodDecoder]:
    """The decoder class registered for `method_id`; `UnknownMethodError` (a BitstreamError) if none."""
    target = DECODERS.get(method_id)
    if target is None:
        known = ", ".join(registered_methods()) or "none"
        raise UnknownMethodError(f"no decoder for method_id {method_id!r} (this build decodes: {known})",
                                 source=source, where="header")
    module_name, _, cls_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    if not (isinstance(cls, type) and issubclass(cls, MethodDecoder)):
        raise TypeError(f"registry entry {method_id!r} -> {target} is not a MethodDecoder subclass")
    return cls


def open_decoder(path: Union[str, Path]) -> MethodDecoder:
    """Open a `.vvc` file with the decoder its header's `method_id` selects."""
    path = Path(path)
    reader = ContainerReader(path)
    try:
        cls = decoder_class(reader.header.method_id, source=str(path))
        return cls(path, reader)
    except BaseException:
        reader.close()
        raise
