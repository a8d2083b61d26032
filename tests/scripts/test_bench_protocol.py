"""bench/bench_panoptic_protocol.py's bookkeeping: which runs count as finished, the training time it reports, the
table's scale line and the commands a resumed run issues (dry run: nothing trains)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    path = REPO / "bench" / "bench_panoptic_protocol.py"
    spec = importlib.util.spec_from_file_location("bench_panoptic_protocol", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_train_seconds_and_finished(bench, tmp_path):
    seq = tmp_path / "seq"
    seq.mkdir()
    (seq / "progress.json").write_text(json.dumps({"frames_done": 2, "frames": [
        {"frame": 0, "train_s": 100.0, "finalize_s": 3.0}, {"frame": 1, "train_s": 50.0, "finalize_s": 2.0}]}))
    assert bench.train_seconds(seq) == pytest.approx(155.0)
    assert bench.run_finished(seq, 2) and not bench.run_finished(seq, 3)
    whole = tmp_path / "whole"
    whole.mkdir()
    (whole / "stages.json").write_text(json.dumps({"done": ["fit", "code"], "stats": {
        "fit": {"seconds": 60.0, "epochs": 10}, "code": {"seconds": 1.5}}}))
    assert bench.train_seconds(whole) == pytest.approx(61.5)
    assert bench.run_finished(whole, 30)
    assert bench.train_seconds(tmp_path / "absent") is None


def test_table_states_scale_and_anchor(bench):
    point = {"method": "rate-aware", "point": "lambda-0.002", "kb_per_frame": 12.345, "psnr_db": 25.5, "ssim": 0.8,
             "lpips": None, "train_s": 3600.0}
    text = bench.table([point], [], "640×360, 30 frames")
    assert "640×360, 30 frames" in text
    assert "| rate-aware | lambda-0.002 | 12.35 | 25.50 | 0.8000 | n/a | 60 |" in text
    assert "28.22" in text


def test_dry_run_commands(bench, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train_meta.json").write_text("{}")
    assert bench.main(["--data", str(data), "--out", str(tmp_path / "out"), "--methods", "mv-inr", "--points",
                       "c40-qp33", "--dry-run", "--no-x265", "--frames", "3", "--no-ledger"]) == 0
    cmds = [line for line in capsys.readouterr().out.splitlines() if line.startswith("$ ")]
    assert "--downscale-factor 1" in cmds[0] and "--num-frames 3" in cmds[0] and "--pipeline.model.epochs 10" in cmds[0]
    assert [c.split()[2] for c in cmds] == ["vvc-mv-inr-cpu", "decode", "vvc-grid", "eval-run"]
    # the reconstruction sees the protocol's scene box (at vvc-data's default it learned fog: 16 dB), in a folder
    # of its own recipe, and the eval reads that run
    assert cmds[2].endswith("--scene-box-size 3.0") and "--experiment-name mv-inr-reconstruction-box3" in cmds[2]
    assert "mv-inr-reconstruction-box3/vvc-grid/c40-qp33/config.yml" in cmds[3]
    with pytest.raises(SystemExit, match="unknown --points"):
        bench.main(["--data", str(data), "--points", "k-7", "--dry-run"])


def test_collect_reports_finished_points_from_the_file_size_and_runs_nothing(bench, tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train_meta.json").write_text("{}")
    out = tmp_path / "out"
    run = out / "runs" / "rate-aware" / "vvc-rate-aware-cpu" / "lambda-0.002"
    run.mkdir(parents=True)
    (run / "sequence.vvc").write_bytes(b"\0" * 3000)
    (run / "progress.json").write_text(json.dumps({"frames_done": 3, "frames": [{"train_s": 60.0}] * 3}))
    ev = out / "eval" / "rate-aware" / "lambda-0.002"
    ev.mkdir(parents=True)
    (ev / "metrics.json").write_text(json.dumps({"frames": [
        {"frame": f, "psnr_db": 20.0 + f, "ssim": 0.5, "lpips": 0.4} for f in range(3)]}))
    monkeypatch.setattr(bench, "_run", lambda *a: pytest.fail(f"--collect ran {a}"))
    assert bench.main(["--data", str(data), "--out", str(out), "--frames", "3", "--collect", "--no-lpips",
                       "--ledger", str(tmp_path / "ledger")]) == 0
    summary = json.loads((out / "summary.json").read_text())
    (point,) = summary["points"]
    assert point["kb_per_frame"] == pytest.approx(1.0) and point["psnr_db"] == pytest.approx(21.0)
    assert point["train_s"] == pytest.approx(180.0)
    assert "| rate-aware | lambda-0.002 | 1.00 | 21.00 |" in (out / "table.md").read_text()
    assert (out / "rd_psnr.png").stat().st_size > 0
    assert "codebook k-1024: not finished" in capsys.readouterr().err


def test_bd_between_methods_with_three_points_each(bench):
    """BD figures from 3 points per method (labelled so), only for pairs with 3 finished points; a curve that does not
    rise with rate loses its off-curve point and gets the reason, not a number."""
    pt = lambda m, kb, q: {"method": m, "kb_per_frame": kb, "psnr_db": q, "ssim": q / 40, "lpips": 1 - q / 40}  # noqa
    ra = [pt("rate-aware", kb, q) for kb, q in ((10, 22.0), (20, 24.0), (40, 26.0))]
    cb = [pt("codebook", kb / 2, q) for kb, q in ((10, 22.0), (20, 24.0), (40, 26.0))]  # half the bytes, same quality
    bd = bench.bd_between(ra + cb + [pt("mv-inr", 5, 20.0)])
    assert set(bd) == {"codebook vs rate-aware (psnr_db)", "codebook vs rate-aware (ssim)",
                       "codebook vs rate-aware (lpips)"}
    assert bd["codebook vs rate-aware (psnr_db)"]["bd_rate_pct"] == pytest.approx(-50.0)
    assert bd["codebook vs rate-aware (lpips)"]["bd_rate_pct"] == pytest.approx(-50.0)
    assert bd["codebook vs rate-aware (psnr_db)"]["bd_quality"] > 0
    assert "-50.0 %" in bench.bd_lines(bd) and "3+ points" in bench.bd_lines(bd)
    assert "not yet" in bench.bd_lines(bench.bd_between(ra))
    flat = [pt("mv-inr", kb, 21.0 + (kb == 20)) for kb in (10, 20, 40)]  # quality falls from 20 to 40 KB
    bad = bench.bd_between(ra + flat)["mv-inr vs rate-aware (psnr_db)"]  # 40 KB is off the operational curve
    assert "bd_rate_pct" not in bad and "at least 3 are required" in bad["error"], bad
    assert bad["dropped"] == {"mv-inr": ["40 KB"]}


def test_bd_between_fits_the_operational_curves_as_rd_sweep_does(bench):
    """A point another point of its method beats with no more bytes is left out of the fit and listed (session 24's
    vvc-codebook k-4096: more bytes than k-1024, less PSNR); a curve left with too few points gets the reason."""
    pt = lambda m, p, kb, q: {"method": m, "point": p, "kb_per_frame": kb, "psnr_db": q, "ssim": q / 40,  # noqa
                              "lpips": 1 - q / 40}
    ra = [pt("rate-aware", f"l{kb}", kb, q) for kb, q in ((10, 22.0), (20, 24.0), (40, 26.0))]
    cb = [pt("codebook", f"k{kb}", kb, q) for kb, q in ((5, 22.0), (10, 24.0), (12, 23.0), (20, 26.0))]
    bd = bench.bd_between(ra + cb)
    psnr = bd["codebook vs rate-aware (psnr_db)"]
    assert psnr["bd_rate_pct"] == pytest.approx(-50.0) and psnr["points"] == [3, 3]
    assert psnr["dropped"] == {"codebook": ["k12"]}
    assert bd["codebook vs rate-aware (lpips)"]["dropped"] == psnr["dropped"]
    assert "left out: codebook k12" in bench.bd_lines(bd)
    short = bench.bd_between(ra + cb[:3])["codebook vs rate-aware (psnr_db)"]  # 2 operational points remain
    assert "bd_rate_pct" not in short and "3" in str(short) and short["dropped"] == {"codebook": ["k12"]}


def _finished_point(out: Path, frames: int = 3, journal_rows: int = 0, metrics: bool = True) -> tuple:
    run = out / "runs" / "rate-aware" / "vvc-rate-aware-cpu" / "lambda-0.002"
    run.mkdir(parents=True)
    (run / "sequence.vvc").write_bytes(b"\1" * 3000)
    (run / "config.yml").write_text("config\n")
    (run / "progress.json").write_text(json.dumps({"frames_done": frames, "frames": [{"train_s": 60.0}] * frames}))
    ckpt = run / "nerfstudio_models"
    ckpt.mkdir()
    (ckpt / "step-000000010.ckpt").write_bytes(b"\0" * 100)
    ev = out / "eval" / "rate-aware" / "lambda-0.002"
    ev.mkdir(parents=True)
    rows = [{"frame": f, "psnr_db": 20.0 + f, "ssim": 0.5, "lpips": 0.4} for f in range(frames)]
    if metrics:
        (ev / "metrics.json").write_text(json.dumps({"frames": rows}))
    if journal_rows:
        (ev / "frames.partial.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:journal_rows]))
    (ev / "frame0000_cam0.png").write_bytes(b"png")  # side-by-side renders stay out of the ledger
    return run, ev


def test_the_ledger_carries_finished_steps_and_eval_journals_to_a_new_machine(bench, tmp_path, monkeypatch):
    """--save-ledger copies a finished run's small files (no checkpoint, no renders), an eval's journal and the
    point's figures; on a machine without bench_out the bench restores them, so training is skipped, the eval resumes
    from its journal and --collect reports the point from the file's bytes. A run still training stays out."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "train_meta.json").write_text("{}")
    out, ledger = tmp_path / "out", tmp_path / "ledger"
    common = ["--data", str(data), "--out", str(out), "--frames", "3", "--ledger", str(ledger), "--no-x265"]
    run, ev = _finished_point(out, journal_rows=2, metrics=False)
    unfinished = out / "runs" / "codebook" / "vvc-codebook-cpu" / "k-256"
    unfinished.mkdir(parents=True)
    (unfinished / "config.yml").write_text("config\n")  # no stages.json: still training
    assert bench.main([*common, "--save-ledger"]) == 0
    kept = sorted(str(p.relative_to(ledger)) for p in ledger.rglob("*") if p.is_file())
    assert kept == ["eval/rate-aware/lambda-0.002/frames.partial.jsonl",
                    "runs/rate-aware/vvc-rate-aware-cpu/lambda-0.002/config.yml",
                    "runs/rate-aware/vvc-rate-aware-cpu/lambda-0.002/progress.json",
                    "runs/rate-aware/vvc-rate-aware-cpu/lambda-0.002/sequence.vvc"]
    shutil.rmtree(out)  # a new machine
    issued = []
    monkeypatch.setattr(bench, "_run", lambda cmd, dry: issued.append(cmd))
    assert bench.main([*common, "--methods", "rate-aware", "--points", "lambda-0.002"]) == 0
    assert [c[1] for c in issued] == ["eval"]  # training skipped: the restored run is finished
    assert (ev / "frames.partial.jsonl").read_text().count("\n") == 2  # the eval resumes after 2 frames
    assert (run / "sequence.vvc").read_bytes() == b"\1" * 3000
    # the eval finishes: its figures reach the ledger, and --collect reports them on the next machine
    (ev / "metrics.json").write_text(json.dumps({"frames": [
        {"frame": f, "psnr_db": 20.0 + f, "ssim": 0.5, "lpips": 0.4} for f in range(3)]}))
    assert bench.main([*common, "--save-ledger"]) == 0
    recorded = json.loads((ledger / "points" / "rate-aware" / "lambda-0.002.json").read_text())
    assert recorded["file_bytes"] == 3000 and recorded["psnr_db"] == pytest.approx(21.0)
    shutil.rmtree(out)
    assert bench.main([*common, "--collect"]) == 0
    (point,) = json.loads((out / "summary.json").read_text())["points"]
    assert point["kb_per_frame"] == pytest.approx(1.0) and point["psnr_db"] == pytest.approx(21.0)


def test_a_point_recorded_only_in_the_ledger_is_reported_and_huge_files_are_refused(bench, tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train_meta.json").write_text("{}")
    out, ledger = tmp_path / "out", tmp_path / "ledger"
    common = ["--data", str(data), "--out", str(out), "--frames", "3", "--ledger", str(ledger), "--no-x265"]
    rec = {"method": "codebook", "point": "k-256", "kb_per_frame": 5.0, "psnr_db": 23.0, "ssim": 0.8, "lpips": 0.5,
           "note": "bitstream not kept"}
    (ledger / "points" / "codebook").mkdir(parents=True)
    (ledger / "points" / "codebook" / "k-256.json").write_text(json.dumps(rec))
    assert bench.main([*common, "--collect"]) == 0
    (point,) = json.loads((out / "summary.json").read_text())["points"]
    assert point == rec
    assert bench.main([*common, "--collect", "--no-ledger"]) == 0
    assert json.loads((out / "summary.json").read_text())["points"] == []
    issued = []
    monkeypatch.setattr(bench, "_run", lambda cmd, dry: issued.append(cmd))
    assert bench.main([*common, "--methods", "codebook", "--points", "k-256"]) == 0
    assert issued == []  # recorded in the ledger: not trained again
    monkeypatch.undo()
    not_a_folder = tmp_path / "ledger.txt"
    not_a_folder.write_text("x")
    with pytest.raises(SystemExit, match="ledger.txt: --ledger must be a folder, not a file"):
        bench.main([*common[:-3], "--ledger", str(not_a_folder), "--no-x265", "--save-ledger"])
    run, _ = _finished_point(out)
    monkeypatch.setattr(bench, "LEDGER_MAX_FILE_BYTES", 2000)
    with pytest.raises(SystemExit, match="sequence.vvc: 3000 bytes, over the ledger's 2000 per file"):
        bench.main([*common, "--save-ledger"])


def test_the_default_ledger_is_for_the_protocol_scale_only_and_a_local_run_is_not_mixed(bench, tmp_path, monkeypatch):
    """Without --ledger, the committed ledger is read and written at --frames 30 --downscale 1 only (a 3-frame slice
    must not land beside the protocol's points); a run folder this machine already has is not overwritten by the
    ledger's files for the same point."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "train_meta.json").write_text("{}")
    ledger = tmp_path / "ledger"
    rec = {"method": "codebook", "point": "k-256", "kb_per_frame": 5.0, "psnr_db": 23.0, "ssim": 0.8, "lpips": 0.5}
    (ledger / "points" / "codebook").mkdir(parents=True)
    (ledger / "points" / "codebook" / "k-256.json").write_text(json.dumps(rec))
    monkeypatch.setattr(bench, "DEFAULT_LEDGER", ledger)
    for frames, expect in (("3", []), ("30", [rec])):
        out = tmp_path / f"out{frames}"
        assert bench.main(["--data", str(data), "--out", str(out), "--frames", frames, "--collect", "--no-x265"]) == 0
        assert json.loads((out / "summary.json").read_text())["points"] == expect
    with pytest.raises(SystemExit, match="--save-ledger: no ledger"):
        bench.main(["--data", str(data), "--out", str(tmp_path / "o"), "--frames", "3", "--save-ledger"])
    # the ledger holds a finished run; this machine has its own run of that point, still training
    src_out = tmp_path / "src"
    _finished_point(src_out, frames=30, journal_rows=1, metrics=False)  # trained; its eval under way
    assert bench.main(["--data", str(data), "--out", str(src_out), "--save-ledger"]) == 0
    local = tmp_path / "local"
    run = local / "runs" / "rate-aware" / "vvc-rate-aware-cpu" / "lambda-0.002"
    run.mkdir(parents=True)
    (run / "config.yml").write_text("local config\n")
    issued = []
    monkeypatch.setattr(bench, "_run", lambda cmd, dry: issued.append(cmd))
    assert bench.main(["--data", str(data), "--out", str(local), "--methods", "rate-aware", "--points",
                       "lambda-0.002", "--no-x265"]) == 0
    assert sorted(p.name for p in run.iterdir()) == ["config.yml"]  # nothing of the ledger's run mixed in
    assert (run / "config.yml").read_text() == "local config\n"
    assert issued and issued[0][1] == "vvc-rate-aware-cpu"  # it goes on training its own run


def test_a_broken_ledger_record_stops_the_bench_with_one_line(bench, tmp_path):
    """A `points/` record that is not the point's figures must not be silently taken as absent (the point would be
    neither measured again nor reported): one line naming the file."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "train_meta.json").write_text("{}")
    ledger = tmp_path / "ledger"
    rec_path = ledger / "points" / "codebook" / "k-256.json"
    rec_path.parent.mkdir(parents=True)
    common = ["--data", str(data), "--out", str(tmp_path / "out"), "--frames", "3", "--ledger", str(ledger),
              "--no-x265", "--methods", "codebook", "--points", "k-256"]
    good = {"method": "codebook", "point": "k-256", "kb_per_frame": 5.0, "psnr_db": 23.0, "ssim": 0.8, "lpips": None}
    cases = (
        ('{"method": "codebook", "point": "k-2', "k-256.json: not readable JSON"),
        (json.dumps({k: v for k, v in good.items() if k != "psnr_db"}), "k-256.json: lacks psnr_db, not the figures"),
        (json.dumps([good]), "k-256.json: lacks method, point, kb_per_frame, psnr_db, ssim, lpips"),
        (json.dumps(good | {"point": "k-1024"}), "k-256.json: is the record of codebook k-1024, not the figures of"),
    )
    for text, message in cases:
        rec_path.write_text(text)
        for mode in (["--collect"], ["--dry-run"], []):
            with pytest.raises(SystemExit, match=message):
                bench.main([*common, *mode])
    rec_path.write_text(json.dumps(good))
    assert bench.main([*common, "--collect"]) == 0
