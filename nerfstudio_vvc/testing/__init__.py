"""Test harnesses: what the test suite, the benches and CI use to attack and break the codec, kept out of the
packages a player ships (`codec/`, `playback/`, `methods/`).

* `fuzz.py`: payload-level fuzzing of a method decoder (mutated files with valid CRCs, decoded in capped workers);
  `fuzz_selftest.py`: a decode target that misbehaves on purpose (hang, crash, 1 TiB allocation) to test the fuzzer.
* `fuzz_targets/<method>.py`: per method, `make_stream(path)` (a small valid stream) and `decode(path)` (a strict
  decode); a method's `VvcMethod.fuzz_target` names its module.
* `faults.py`: the fault-injection hooks (a simulated kill inside a stage, a lost GOP worker) that resume tests set
  through environment variables.

Files are edited through the public container API (`codec/bitstream/contents.py`: `StreamContents`), never through
the container's internals. Importing this package imports nothing.
"""
