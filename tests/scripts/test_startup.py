"""`fast_external_method_check`: nerfstudio's method registry builds its external-method placeholders without
walking the stack, and a placeholder picked on the command line still prints its install instructions."""

from __future__ import annotations

import pytest
from nerfstudio.configs import external_methods as em

from nerfstudio_vvc.scripts.startup import fast_external_method_check


def test_registry_placeholders_skip_the_stack_walk(monkeypatch):
    fast_external_method_check()
    patched = em.ExternalMethodDummyTrainerConfig.__post_init__
    fast_external_method_check()
    assert em.ExternalMethodDummyTrainerConfig.__post_init__ is patched  # idempotent: one wrapper, not two

    def no_walk(*args, **kwargs):
        raise AssertionError("inspect.stack() called while the registry builds its placeholders")

    monkeypatch.setattr(em.inspect, "stack", no_walk)
    configs, descriptions = em.get_external_methods()
    assert len(configs) >= 20 and set(configs) == set(descriptions)


def test_a_placeholder_picked_on_the_command_line_still_explains_itself(capsys):
    fast_external_method_check()
    method = em.ExternalMethod("install me with: pip install foo", configurations=[("foo", "a method")])
    with pytest.raises(SystemExit) as exc:
        em.ExternalMethodDummyTrainerConfig(method_name="foo", method=method)
    assert exc.value.code == 0
    assert "install me with" in capsys.readouterr().out


def test_ns_vvc_cli_loads_without_nerfstudios_method_registry():
    """`ns-vvc --help` (the cli module) does not import nerfstudio's method registry, which costs seconds: the
    subcommands that need it import it when they run. Nor nerfstudio's models and cameras (`ns-vvc play`'s model
    lives in playback/file_model.py): their import prints torch's `torch.jit.script` FutureWarning on every start."""
    import subprocess
    import sys

    code = ("import sys, nerfstudio_vvc.scripts.cli; "
            "print(sorted(m for m in sys.modules if 'method_configs' in m or m.startswith(('nerfstudio.models', "
            "'nerfstudio.cameras'))))")
    proc = subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]", proc.stdout
    assert "FutureWarning" not in proc.stderr, proc.stderr[-2000:]


def test_ns_train_start_builds_the_registry_without_a_stack_walk():
    """What every `ns-train` start does, importing nerfstudio's method registry, loads our dataparser entry point
    first, which applies the check: no `inspect.stack()` call, and the registry lists our methods and nerfstudio's
    external placeholders as before."""
    import subprocess
    import sys

    code = (
        "import inspect\n"
        "def no_walk(*a, **k):\n"
        "    raise AssertionError('inspect.stack() called')\n"
        "inspect.stack = no_walk\n"
        "import nerfstudio.configs.method_configs as mc\n"
        "print('vvc-rate-aware' in mc.all_methods, 'zipnerf' in mc.all_methods)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-2:] == ["True", "True"], proc.stdout


def test_a_nerfstudio_without_the_placeholder_class_is_left_alone(monkeypatch):
    """The speed-up must never stop the plugin from loading: without nerfstudio's class it does nothing."""
    monkeypatch.delattr(em, "ExternalMethodDummyTrainerConfig")
    fast_external_method_check()  # no exception
