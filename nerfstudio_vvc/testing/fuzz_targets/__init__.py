"""Per-method fuzz targets: `make_stream(path) -> path` and `decode(path) -> iterable of values` (see
`nerfstudio_vvc/testing/fuzz.py`); each method's spec names its module (`VvcMethod.fuzz_target`)."""
