"""One `VvcMethod` spec per method, found through the `nerfstudio_vvc.methods` entry points: the registry, rd-sweep,
export, eval and the demo ask it (docs/adding_a_method.md)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml

from nerfstudio_vvc.methods import spec as specs
from nerfstudio_vvc.methods.spec import ENTRY_POINT_GROUP, RdRun, VvcMethod

METHODS = ("vvc-codebook", "vvc-grid", "vvc-mv-inr", "vvc-rate-aware")


@pytest.fixture
def fake_method(monkeypatch):
    """A fourth codec method, registered the way a plugin would be (through `$NERFSTUDIO_VVC_METHODS`)."""
    fake = VvcMethod(
        method_id="vvc-fake",
        presets=("vvc-fake-cpu",),
        trainer="whole-sequence",
        decoder="nerfstudio_vvc.methods.rate_aware.decoder:RateAwareDecoder",
        output="views",
        bitstream="fake.vvc",
        rd_runs=lambda values=None: {"p1": RdRun("p1", "Fake", ("--x", "1"), bitstream="fake.vvc")},
        rd_default_runs=("p1",),
        rd_reference="x265",
    )
    monkeypatch.setattr(sys.modules[__name__], "FAKE", fake, raising=False)
    monkeypatch.setenv(specs.ENV_VAR, f"vvc-fake={__name__}:FAKE")
    specs.discover_methods(refresh=True)
    yield fake
    monkeypatch.delenv(specs.ENV_VAR)
    specs.discover_methods(refresh=True)


def test_every_method_has_one_spec_through_the_entry_point_group():
    names = sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
    assert names == list(METHODS), "pip install -e . registers the group"
    found = specs.discover_methods(refresh=True)
    assert sorted(found) == list(METHODS)
    presets = {ep.name for ep in entry_points(group="nerfstudio.method_configs")}
    for mid, m in found.items():
        assert m.method_id == mid and set(m.presets) <= presets, mid
        assert m.cpu_preset in m.presets
        assert specs.method_for_preset(m.presets[-1]) is m


def test_specs_agree_with_the_method_code():
    """The spec's ids and names are the ones the decoders, codecs and training models use."""
    import importlib

    from nerfstudio_vvc.method_configs import codebook as cb_cfg
    from nerfstudio_vvc.method_configs import mv_inr as mv_cfg
    from nerfstudio_vvc.method_configs import rate_aware as ra_cfg
    from nerfstudio_vvc.methods.rate_aware import model as ra_model
    from nerfstudio_vvc.methods.rate_aware.spec import extra_bitstream_name
    from nerfstudio_vvc.playback.registry import decoder_class, registered_methods

    codecs = [m for m in specs.discover_methods().values() if m.has_bitstream]
    assert sorted(registered_methods()) == sorted(m.method_id for m in codecs)
    for m in codecs:
        assert decoder_class(m.method_id).method_id == m.method_id
        assert importlib.import_module(m.codec).METHOD_ID == m.method_id
        model = importlib.import_module(m.codec.rsplit(".", 1)[0] + ".model")
        assert model.METHOD is m and not hasattr(model, "BITSTREAM_NAME")  # the file name is the spec's, only
    assert ra_model.extra_bitstream_name(3) == extra_bitstream_name(3)
    assert ra_cfg.RD_LAMBDAS is specs.get_method("vvc-rate-aware").rd_runs.__globals__["RD_LAMBDAS"]
    assert cb_cfg.RD_CODEBOOK_SIZES == (256, 1024, 4096) and mv_cfg.RD_POINTS[0] == (20, 43)
    for m in codecs:
        runs = m.rd_runs(())
        assert set(m.rd_default_runs) <= set(runs) and m.rd_reference
    assert specs.get_method("vvc-grid").has_bitstream is False


def test_listing_the_specs_imports_nothing_heavy():
    code = (
        "import sys\n"
        "from nerfstudio_vvc.methods.spec import discover_methods\n"
        "ms = discover_methods()\n"
        "print('HEAVY', [m for m in ('torch', 'nerfstudio', 'constriction', 'numpy') if m in sys.modules], len(ms))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "HEAVY [] 4" in out.stdout, out.stdout


def test_a_new_spec_reaches_registry_rd_sweep_and_eval_without_code_changes(fake_method, tmp_path: Path):
    from nerfstudio_vvc.playback.evaluate import codes_views
    from nerfstudio_vvc.scripts import rd_sweep

    assert specs.decoders()["vvc-fake"] == fake_method.decoder
    sweep = rd_sweep.RdSweep(data=tmp_path, out=tmp_path / "o", preset="vvc-fake-cpu")
    assert sweep.method is fake_method and rd_sweep.is_view_codec("vvc-fake-cpu")
    assert rd_sweep.is_sequence_preset("vvc-fake-cpu") and not rd_sweep.is_sequence_preset("vvc-rate-aware-cpu")
    decoder = type("D", (), {"header": type("H", (), {"method_id": "vvc-fake"})()})()
    assert codes_views(decoder)
    decoder.header.method_id = "vvc-rate-aware"
    assert not codes_views(decoder)
    decoder.header.method_id = "not-a-method"  # a decoder without a spec (e.g. a test's toy) codes a scene
    assert not codes_views(decoder)


def test_rd_sweep_takes_runs_and_reference_from_the_spec(fake_method, tmp_path: Path, monkeypatch):
    """No --runs: the spec's default runs; the BD reference is the spec's; an unknown preset is one line."""
    from nerfstudio_vvc.scripts import rd_sweep

    seen = {}
    monkeypatch.setattr(rd_sweep.RdSweep, "do_run", lambda self, run, threads=None: seen.setdefault("run", run))
    monkeypatch.setattr(rd_sweep.RdSweep, "_x265", lambda self: None)
    monkeypatch.setattr(rd_sweep, "write_plots", lambda *a, **k: [])
    point = {"point": "p1", "curve": "Fake", "kb_per_frame": 1.0, "test": {"psnr_db": 30.0}}
    (tmp_path / "d").mkdir()
    sweep = rd_sweep.RdSweep(data=tmp_path / "d", out=tmp_path / "o", preset="vvc-fake-cpu")
    sweep.point_json("p1").parent.mkdir(parents=True)
    sweep.point_json("p1").write_text(__import__("json").dumps(point))
    summary = sweep.main()
    assert sweep.runs == ("p1",) and seen["run"].bitstreams() == {"p1": "fake.vvc"}
    assert "BD-rate against x265" in summary["markdown"]
    with pytest.raises(rd_sweep.SweepError, match="no method has the preset 'vvc-nope'"):
        rd_sweep.RdSweep(data=tmp_path / "d", preset="vvc-nope").main()


def _write_config(tmp_path: Path, spec_obj) -> Path:
    cfg = dataclasses.replace(spec_obj.config)
    path = tmp_path / "config.yml"
    path.write_text(yaml.dump(cfg))  # what nerfstudio's save_config writes
    return path


def test_export_and_run_lookup_read_the_method_from_config_yml(tmp_path: Path):
    from nerfstudio_vvc.export.bitstream import ExportBitstream
    from nerfstudio_vvc.method_configs.codebook import vvc_codebook_cpu
    from nerfstudio_vvc.method_configs.vvc_grid import vvc_grid

    cb = _write_config(tmp_path, vvc_codebook_cpu)
    assert specs.method_of_run(cb) is specs.get_method("vvc-codebook")
    grid_dir = tmp_path / "grid"
    grid_dir.mkdir()
    grid = _write_config(grid_dir, vvc_grid)
    assert specs.method_of_run(grid) is specs.get_method("vvc-grid")
    with pytest.raises(SystemExit, match="vvc-grid writes no bitstream"):
        ExportBitstream(load_config=grid, output_dir=tmp_path / "out").main()
    with pytest.raises(SystemExit, match="sequence.vvc: no bitstream in this run"):
        ExportBitstream(load_config=cb, output_dir=tmp_path / "out").main()


def test_demo_asks_the_spec():
    from nerfstudio_vvc.scripts.demo import Demo

    ra, grid = Demo(method="vvc-rate-aware"), Demo(method="vvc-grid")
    assert ra.spec.cpu_preset == "vvc-rate-aware-cpu" and "--iframe-iterations" in ra.iteration_args()
    assert grid.spec.cpu_preset == "vvc-grid" and grid.iteration_args() == []


def test_encode_parallel_takes_only_frame_sequential_codecs():
    from nerfstudio_vvc.scripts.encode_parallel import check_gop_parallel

    check_gop_parallel("vvc-rate-aware-cpu")
    with pytest.raises(SystemExit, match="vvc-codebook trains the whole sequence at once"):
        check_gop_parallel("vvc-codebook-cpu")
    with pytest.raises(SystemExit, match="vvc-grid writes no bitstream"):
        check_gop_parallel("vvc-grid")
    with pytest.raises(SystemExit, match="no method has the preset 'nerfacto'"):
        check_gop_parallel("nerfacto")
