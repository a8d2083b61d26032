"""Entry point ``vvc-data`` (group ``nerfstudio.dataparser_configs``).

Kept in its own module that imports only the config: nerfstudio resolves dataparser entry points
while its own dataparser registry is being built, and importing anything else here risks a
circular import.

nerfstudio loads this entry point before it builds its external-method placeholders, so it is also where the
plugin shortens every `ns-train` start by ~2 s (`scripts/startup.py::fast_external_method_check`: the same check
without an `inspect.stack()` walk per placeholder).
"""

from nerfstudio.plugins.registry_dataparser import DataParserSpecification

from nerfstudio_vvc.data.dataparser import VvcDataParserConfig
from nerfstudio_vvc.scripts.startup import fast_external_method_check

fast_external_method_check()

vvc_data = DataParserSpecification(
    config=VvcDataParserConfig(),
    description="Synchronized multi-view video: Panoptic/D3DGS, N3DV/DyNeRF or transforms.json with time",
)
