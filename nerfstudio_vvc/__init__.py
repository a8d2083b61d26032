"""nerfstudio-vvc: compressed, streamable volumetric video as nerfstudio method plugins.

Importing this package is deliberately light: nerfstudio imports our method and dataparser
entry points at start-up, and a slow or failing import here would break every ``ns-*`` command.
"""

__version__ = "0.1.0"
