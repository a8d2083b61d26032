"""Entry point ``vvc-data`` (group ``nerfstudio.dataparser_configs``).

Kept in its own module that imports only the config: nerfstudio resolves dataparser entry points
while its own dataparser registry is being built, and importing anything else here risks a
circular import.
"""

from nerfstudio.plugins.registry_dataparser import DataParserSpecification

from nerfstudio_vvc.data.dataparser import VvcDataParserConfig

vvc_data = DataParserSpecification(
    config=VvcDataParserConfig(),
    description="Synchronized multi-view video: Panoptic/D3DGS, N3DV/DyNeRF or transforms.json with time",
)
