"""`ns-vvc rd-sweep` on the tiny sample: points measured from decoded files, resume, report, BD-rate."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import pytest

from nerfstudio_vvc.eval.bdrate import pareto
from nerfstudio_vvc.scripts import rd_sweep
from nerfstudio_vvc.scripts.rd_sweep import RdSweep, rate_at_quality, summarize

TINY = (
    "--iframe-iterations", "20", "--pframe-iterations", "10",
    "--pipeline.model.basis-resolutions", "6", "8", "8", "10", "10", "12",
    "--pipeline.model.coeff-resolution", "8", "--pipeline.model.hidden-dim", "16",
    "--pipeline.model.num-samples", "16", "--pipeline.model.occupancy-resolution", "16",
    "--pipeline.model.posthoc-entropy-steps", "10", "--pipeline.datamanager.train-num-rays-per-batch", "256",
)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, tiny_sample) -> RdSweep:
    s = RdSweep(data=tiny_sample, out=tmp_path_factory.mktemp("sweep"), runs=("full-0.001", "wo-adaptive", "baseline"),
                num_frames=2, downscale=1, gop_size=2, train_view_cameras=2, x265_crfs=(20, 40), lpips=False,
                train_args=TINY)
    s.main()
    return s


def test_points_come_from_decoded_files(sweep: RdSweep):
    names = sorted(p.stem for p in (sweep.out / "points").glob("*.json"))
    assert names == sorted(
        ["baseline", *[f"baseline-q{k}" for k in rd_sweep.BASELINE_EXPONENTS[1:]], "full-0.001", "wo-adaptive"]
    )
    assert len(names) == 8
    for name in names:
        p = json.loads(sweep.point_json(name).read_text())
        bitstream = Path(p["bitstream"])
        assert p["file_bytes"] == bitstream.stat().st_size > 0
        assert p["kb_per_frame"] == pytest.approx(p["file_bytes"] / 1000 / 2)
        assert sum(f["bytes"] for f in p["per_frame"]) < p["file_bytes"]  # header + index on top of frame records
        assert 5.0 < p["test"]["psnr_db"] < 60.0 and 5.0 < p["train"]["psnr_db"] < 60.0
        assert p["decode_s_per_frame"] > 0 and p["encode_s_per_frame"] > 0
    full = json.loads(sweep.point_json("full-0.001").read_text())
    assert [f["is_iframe"] for f in full["per_frame"]] == [True, False]
    assert not list((sweep.out / "points").rglob("frames.partial.jsonl"))  # per-frame journals go with the JSON
    # finer fixed steps cost more bytes on the Baseline curve. At the two coarsest steps of this tiny run the grids
    # cost little and each stream's own occupancy grid (recomputed from its quantized field) can move the total by
    # a few tenths of a percent (measured: 11.84 vs 11.82 KB), so those two are only checked against the finer ones.
    kb = [json.loads(sweep.point_json(f"baseline-q{k}").read_text())["kb_per_frame"] for k in (-2, -1, 0, 1, 2)]
    assert kb[2] < kb[3] < kb[4] and max(kb[:2]) < kb[3] and min(kb[:2]) < kb[2] * 1.01


def test_summary_has_table_bd_rate_and_plots(sweep: RdSweep):
    md = (sweep.out / "summary.md").read_text()
    assert "| Full | full-0.001 |" in md and "| x265 (train views) | crf20 |" in md
    summary = json.loads((sweep.out / "summary.json").read_text())
    key = "x265 vs Baseline (train psnr_db)"
    assert key in summary["bd"]
    assert [a["crf"] for a in summary["x265"]] == [20, 40]
    assert summary["x265"][0]["kb_per_frame"] > summary["x265"][1]["kb_per_frame"]
    for png in (
        "rd_test_psnr.png",
        "rd_test_ssim.png",
        "rd_test_lpips.png",
        "rd_train_psnr.png",
        "frame_bytes_full-0.001.png",
    ):
        assert (sweep.out / png).stat().st_size > 1000


def test_rerun_recomputes_nothing(sweep: RdSweep, monkeypatch):
    before = {p: p.stat().st_mtime_ns for p in (sweep.out / "points").glob("*.json")}

    def no_training(*a, **k):
        raise AssertionError("a finished point was recomputed")

    monkeypatch.setattr(subprocess, "run", no_training)
    monkeypatch.setattr(RdSweep, "_measure", no_training)
    monkeypatch.setattr(rd_sweep, "summarize", summarize)
    sweep.main()
    assert {p: p.stat().st_mtime_ns for p in (sweep.out / "points").glob("*.json")} == before


@pytest.mark.slow  # ~3 min of Ray start-up and two more sweeps; make test-all runs it
def test_ray_workers_measure_the_serial_points(sweep: RdSweep, tmp_path: Path, monkeypatch):
    """Two RD runs as Ray tasks on 2 local CPUs (one thread each): the same bitstreams and measurements as a
    serial sweep at the same thread count (CPU float reductions depend on it: docs/training.md); a rerun
    recomputes nothing (and starts no Ray)."""
    ray = pytest.importorskip("ray")
    import torch

    runs = ("full-0.001", "wo-adaptive")
    one = dataclasses.replace(sweep, out=tmp_path / "one", runs=runs, x265_crfs=())
    threads = torch.get_num_threads()
    with monkeypatch.context() as m:  # the serial reference with one thread: ns-train's and the measurement's
        m.setenv("OMP_NUM_THREADS", "1")
        m.setenv("MKL_NUM_THREADS", "1")
        torch.set_num_threads(1)
        try:
            one.main()
        finally:
            torch.set_num_threads(threads)
    par = dataclasses.replace(sweep, out=tmp_path / "par", runs=runs, x265_crfs=(), workers=2)
    try:
        par.main()
    finally:
        ray.shutdown()
    for name in runs:
        a, b = (json.loads(s.point_json(name).read_text()) for s in (one, par))
        assert Path(a["bitstream"]).read_bytes() == Path(b["bitstream"]).read_bytes()
        assert a["test"] == b["test"] and a["file_bytes"] == b["file_bytes"]
    before = {p: p.stat().st_mtime_ns for p in (par.out / "points").glob("*.json")}
    par.main()
    assert not ray.is_initialized()
    assert {p: p.stat().st_mtime_ns for p in (par.out / "points").glob("*.json")} == before


def test_unknown_run_is_a_clear_error(tiny_sample, tmp_path):
    with pytest.raises(SystemExit, match="unknown run"):
        RdSweep(data=tiny_sample, out=tmp_path, runs=("full-0.3",)).main()


def test_rate_at_quality_interpolates_in_log_rate():
    assert rate_at_quality([10, 100], [30, 40], 35) == pytest.approx(10**1.5)
    assert rate_at_quality([10, 100], [30, 40], 41) is None  # outside the curve: no extrapolation
    assert rate_at_quality([10], [30], 30) is None
    assert rate_at_quality([10, 20, 40], [30, 40, 35], 32) is None  # non-monotonic curve: no number


def test_summary_reports_too_few_points_as_error_not_number():
    pts = [
        {"point": "a", "curve": "Baseline", "kb_per_frame": 10, "test": {"psnr_db": 30, "ssim": 0.9}},
        {"point": "b", "curve": "Full", "kb_per_frame": 5, "test": {"psnr_db": 30, "ssim": 0.9}},
    ]
    s = summarize(
        pts, None, {"scene": "s", "preset": "p", "frames": 1, "frame_start": 0, "downscale": 1, "gop_size": 1}
    )
    assert all("error" in v for v in s["bd"].values()) and s["bd"]
    assert "not computable" in s["markdown"]


def test_lpips_bd_treats_lower_as_better():
    """Half the bytes for the same LPIPS is BD-rate −50 %; lower LPIPS at equal rate is a negative BD-quality."""
    rates, lp = [10.0, 20.0, 40.0, 80.0], [0.40, 0.30, 0.22, 0.18]
    pts = [
        {"point": f"b{i}", "curve": "Baseline", "kb_per_frame": r, "test": {"lpips": q}}
        for i, (r, q) in enumerate(zip(rates, lp))
    ]
    pts += [
        {"point": f"f{i}", "curve": "Full", "kb_per_frame": r / 2, "test": {"lpips": q}}
        for i, (r, q) in enumerate(zip(rates, lp))
    ]
    scale = {"scene": "s", "preset": "p", "frames": 1, "frame_start": 0, "downscale": 1, "gop_size": 1}
    s = summarize(pts, None, scale)
    bd = s["bd"]["Full vs Baseline (test lpips)"]
    assert bd["bd_rate_pct"] == pytest.approx(-50.0, abs=1e-6)
    assert bd["bd_quality"] < 0
    f1 = next(r for r in s["ratios"] if r["point"] == "f1" and r["metric"] == "test lpips")
    assert f1["baseline_kb_at_equal_quality"] == pytest.approx(20.0) and f1["ratio"] == pytest.approx(0.5)


def test_pareto_drops_only_dominated_points():
    assert pareto([10, 20, 30, 40], [1, 3, 2, 4]) == ([0, 1, 3], [2])  # 30 KB gives less than 20 KB
    assert pareto([10, 20], [1, 1]) == ([0], [1])  # more bytes, same quality
    assert pareto([10, 20, 30], [1, 2, 3]) == ([0, 1, 2], [])


def test_summary_fits_bd_through_non_dominated_points_and_names_the_dropped():
    base = [(10, 30.0), (20, 32.0), (40, 34.0), (80, 36.0)]
    full = [(5, 30.0), (10, 32.0), (12, 31.9), (20, 34.0), (40, 36.0)]  # 12 KB is dominated by 10 KB
    pts = [{"point": f"b{r}", "curve": "Baseline", "kb_per_frame": r, "test": {"psnr_db": q}} for r, q in base]
    pts += [{"point": f"f{r}", "curve": "Full", "kb_per_frame": r, "test": {"psnr_db": q}} for r, q in full]
    scale = {"scene": "s", "preset": "p", "frames": 1, "frame_start": 0, "downscale": 1, "gop_size": 1}
    s = summarize(pts, None, scale)
    assert s["dropped"] == {"Full (test psnr_db)": ["f12"]}
    assert s["bd"]["Full vs Baseline (test psnr_db)"]["bd_rate_pct"] == pytest.approx(-50.0, abs=1e-6)
    assert "dropped as dominated, Full (test psnr_db): f12" in s["markdown"]


def test_extra_lambda_makes_its_run_known():
    assert "full-0.0004" in rd_sweep.rate_aware_runs((4e-4, 7e-4))
    assert "full-0.0004" not in rd_sweep.rate_aware_runs()


MV_TINY = (
    "--pipeline.model.conv-channels",
    "6",
    "6",
    "4",
    "4",
    "4",
    "--pipeline.model.epochs",
    "2",
    "--pipeline.model.finetune-epochs",
    "1",
    "--pipeline.model.qat-epochs",
    "1",
)


def test_mv_inr_sweep_measures_views_and_test_cameras_end_to_end(tmp_path, tiny_sample):
    """vvc-mv-inr points: train = decoded views vs originals (bytes of the MV-INR file), test = a 3D method trained
    on the decoded views rendering the held-out camera; x265 is the BD reference."""
    s = RdSweep(
        data=tiny_sample,
        out=tmp_path,
        preset="vvc-mv-inr-cpu",
        runs=("c20-qp43",),
        num_frames=2,
        downscale=1,
        gop_size=2,
        x265_crfs=(20, 40),
        lpips=False,
        train_args=MV_TINY,
        e2e_args=TINY,
    )
    summary = s.main()
    p = json.loads(s.point_json("c20-qp43").read_text())
    vvc = Path(p["bitstream"])
    assert p["file_bytes"] == vvc.stat().st_size and p["curve"] == "MV-INR"
    per_view = [v["psnr_db"] for v in p["per_view"].values()]
    assert len(per_view) == 4 and abs(p["train"]["psnr_db"] - sum(per_view) / 4) < 1e-6  # every coded view, equally
    assert 0 < p["test"]["psnr_db"] < 100  # the held-out camera, rendered by the 3D method from its decoded file
    ds = json.loads((tmp_path / "points" / "c20-qp43" / "dataset" / "transforms.json").read_text())
    assert {f.get("split", "train") for f in ds["frames"]} == {"train", "test"}
    assert any("MV-INR vs x265" in k for k in summary["bd"]) or "x265" in summary["markdown"]


def test_bd_rate_is_reported_when_only_the_quality_ranges_overlap():
    """Two curves at equal qualities but rates a decade apart: BD-rate exists (≈ +900 %), BD-quality does not."""
    scale = {"scene": "s", "preset": "p", "frames": 1, "frame_start": 0, "downscale": 1, "gop_size": 1}
    pts = [
        {"point": f"{c}{i}", "curve": c, "kb_per_frame": r * (10 if c == "Full" else 1), "test": {"psnr_db": q}}
        for c in ("Baseline", "Full")
        for i, (r, q) in enumerate([(1, 30), (2, 32), (4, 34), (8, 36)])
    ]
    s = summarize(pts, None, scale)
    bd = s["bd"]["Full vs Baseline (test psnr_db)"]
    assert bd["bd_rate_pct"] == pytest.approx(900.0, rel=1e-6) and "bd_quality_error" in bd
    assert "BD-rate +900.0 %" in s["markdown"] and "BD-quality not computable" in s["markdown"]
