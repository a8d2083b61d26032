"""Start-up cost of our commands that load nerfstudio's method registry (`ns-vvc eval`, `play`, `demo`, ...).

nerfstudio 1.1.5 builds one placeholder config per external method it advertises (26 of them) when
`nerfstudio.configs.method_configs` is imported, and each one calls `inspect.stack()` to learn whether the registry
is what builds it (`ExternalMethodDummyTrainerConfig.__post_init__`). `inspect.stack()` reads the source of every
frame and looks each one up among all loaded modules; with torch loaded that is thousands of modules per frame,
about 2 s per process on 2 cores. `fast_external_method_check` keeps the same test (is the caller two frames up
`get_external_methods`?) but reads the frame's code name directly.
"""

from __future__ import annotations

import sys

_PATCHED = "_nerfstudio_vvc_fast_check"


def fast_external_method_check() -> None:
    """Replace the stack walk of nerfstudio's external-method placeholders by a look at the caller's frame. Call
    before `nerfstudio.configs.method_configs` is imported (later it changes nothing: the placeholders exist).
    Idempotent. Placeholders a user picks on the command line still print their install instructions. A nerfstudio
    without this class (another version) is left as it is: the speed-up must never stop the plugin from loading."""
    try:
        from nerfstudio.configs import external_methods as em  # light: tyro, rich

        cls = em.ExternalMethodDummyTrainerConfig
        original = cls.__post_init__
    except (ImportError, AttributeError):
        return
    if getattr(original, _PATCHED, False):
        return

    def __post_init__(self) -> None:
        # frames: 0 this function, 1 the dataclass __init__, 2 whoever built the placeholder
        try:
            caller = sys._getframe(2).f_code.co_name
        except ValueError:  # a shallower stack than the dataclass __init__'s: ask the original
            caller = None
        if caller == "get_external_methods":
            return
        original(self)

    setattr(__post_init__, _PATCHED, True)
    cls.__post_init__ = __post_init__
