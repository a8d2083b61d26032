"""End-to-end `ns-train vvc-grid` runs in subprocesses: resume after SIGKILL, eval smoke test, CLI.

Tiny on purpose (32x32 sample, 16^3 grid, 16 samples/ray, 256 rays/step) so each run takes
seconds of training plus ~10 s of nerfstudio start-up on a 2-core CPU.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytest

BIN = Path(sys.executable).parent
TINY_MODEL = [
    "--pipeline.model.grid-resolution", "16",
    "--pipeline.model.num-samples", "16",
    "--pipeline.model.occupancy-resolution", "16",
    "--pipeline.datamanager.train-num-rays-per-batch", "256",
]


def tool(name: str) -> str:
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} not installed (pip install -e . in this environment)")
    return found


def env() -> Dict[str, str]:
    e = dict(os.environ)
    e.update(PYTHONUNBUFFERED="1", COLUMNS="160", TERM="dumb")
    return e


def ns_train_cmd(
    data: Path, out: Path, iframe: int, pframe: int, max_frames: int, gop: int, name: str = "s", stamp: str = "t1"
) -> List[str]:
    from ns_train import ns_train_cmd

    return ns_train_cmd(
        "vvc-grid", out, "--iframe-iterations", str(iframe), "--pframe-iterations", str(pframe),
        "--max-frames", str(max_frames), "--gop-size", str(gop), *TINY_MODEL,
        data=data, data_args=("--cache-dir", str(out / "cache")), name=name, stamp=stamp,
    )  # fmt: skip


def run_dir(out: Path, name: str = "s", stamp: str = "t1") -> Path:
    return out / name / "vvc-grid" / stamp


def run(cmd: List[str], log: Path, timeout: float = 240) -> str:
    with open(log, "w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env(), timeout=timeout, cwd=log.parent)
    text = log.read_text()
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{text[-4000:]}"
    return text


def read_progress(run: Path) -> Optional[dict]:
    try:
        return json.loads((run / "progress.json").read_text())
    except (OSError, ValueError):
        return None


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_resume_after_sigkill(tiny_sample, tmp_path):
    """Kill ns-train (SIGKILL) while frame 1 trains; the same command resumes at the first unfinished frame."""
    out = tmp_path / "out"
    iframe, pframe, max_frames, gop = 20, 60, 3, 2  # frames: 0 (I, 20 it), 1 (P, 60 it), 2 (I, 20 it)
    cmd = ns_train_cmd(tiny_sample, out, iframe, pframe, max_frames, gop)
    rd = run_dir(out)
    log1 = tmp_path / "first.log"
    with open(log1, "w") as f:
        proc = subprocess.Popen(
            cmd, stdout=f, stderr=subprocess.STDOUT, env=env(), cwd=tmp_path, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 180
            info = None
            while time.monotonic() < deadline and proc.poll() is None:
                info = read_progress(rd)
                if info is not None and info["frames_done"] >= 1:
                    break
                time.sleep(0.05)
            assert proc.poll() is None, f"ns-train ended before it could be killed:\n{log1.read_text()[-4000:]}"
            assert info is not None and info["frames_done"] >= 1, "no frame finished within 180 s"
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    # What a kill leaves behind: whole files only, a consistent progress.json.
    info = read_progress(rd)
    assert info is not None
    done = info["frames_done"]
    assert 1 <= done < max_frames, f"killed too late to test a resume (frames_done={done})"
    ckpts = sorted(p.name for p in (rd / "nerfstudio_models").glob("step-*.ckpt"))
    assert ckpts == [info["checkpoint"]]
    assert [s["frame"] for s in info["frames"]] == list(range(done))
    finished = {f: rd / "frames" / f"frame-{f:05d}.pt" for f in range(done)}
    assert all(p.exists() for p in finished.values())
    hashes = {f: sha(p) for f, p in finished.items()}

    # Same command again: resumes at the first unfinished frame and finishes the sequence.
    text = run(cmd, tmp_path / "second.log")
    assert f"Resuming at frame {done}" in text, text[-4000:]
    assert "training from the first frame" not in text
    assert re.search(rf"frame {done} \([IP]\)", text)
    for f in range(done):
        assert not re.search(rf"^frame {f} \([IP]\) \|", text, re.M), f"finished frame {f} was trained again"
    for f, h in hashes.items():
        assert sha(finished[f]) == h, f"finished frame {f}'s decoded state changed on resume"

    final = read_progress(rd)
    assert final is not None and final["frames_done"] == max_frames
    assert [s["frame"] for s in final["frames"]] == list(range(max_frames))
    assert [s["is_iframe"] for s in final["frames"]] == [f % gop == 0 for f in range(max_frames)]
    assert [s["iterations"] for s in final["frames"]] == [iframe if f % gop == 0 else pframe for f in range(max_frames)]
    # steps continue across the kill: the last step is the total budget minus one
    total = sum(s["iterations"] for s in final["frames"])
    assert final["step"] == total - 1
    assert sorted(p.name for p in (rd / "nerfstudio_models").glob("step-*.ckpt")) == [f"step-{total - 1:09d}.ckpt"]
    assert sorted(p.name for p in (rd / "frames").glob("frame-*.pt")) == [
        f"frame-{f:05d}.pt" for f in range(max_frames)
    ]

    # A third run of a finished sequence trains nothing and keeps every frame.
    all_hashes = {p.name: sha(p) for p in (rd / "frames").glob("frame-*.pt")}
    text = run(cmd, tmp_path / "third.log")
    assert f"Resuming at frame {max_frames}" in text
    assert {p.name: sha(p) for p in (rd / "frames").glob("frame-*.pt")} == all_hashes
    assert read_progress(rd)["frames_done"] == max_frames


# Measured on the 3-frame 32x32 tiny sample, 80 I / 40 P iterations, 1 test camera: test-view PSNR
# ~10.0-10.6 dB (an all-white image scores ~8.4 dB, the mean colour ~9.9 dB: 4 training cameras
# constrain novel views poorly); training views rendered from the decoded frame store ~14.5-16 dB.
MIN_TEST_PSNR = 9.0
MIN_TRAIN_VIEW_PSNR = 12.0


def test_train_then_eval_run_smoke(tiny_sample, tmp_path):
    out = tmp_path / "out"
    max_frames = 2
    text = run(ns_train_cmd(tiny_sample, out, 80, 40, max_frames, gop=2), tmp_path / "train.log")
    rd = run_dir(out)
    assert "frame 0 (I)" in text and "frame 1 (P)" in text
    # a log (not a terminal) gets plain progress lines too, not only rich's bars when they stop
    assert "frame 0 (I): 80/80 (100%)" in text and "frame 1 (P): 40/40 (100%)" in text, text[-4000:]
    progress = read_progress(rd)
    assert progress is not None and progress["frames_done"] == max_frames
    for s in progress["frames"]:
        assert math.isfinite(s["train_psnr"]) and s["train_psnr"] > 10.0, s

    eval_dir = tmp_path / "eval"
    text = run(
        [
            tool("ns-vvc"),
            "eval-run",
            "--load-config",
            str(rd / "config.yml"),
            "--no-lpips",
            "--output-dir",
            str(eval_dir),
        ],
        tmp_path / "eval.log",
    )
    assert "PSNR (dB)" in text and "mean" in text, text[-4000:]
    assert "rendering test views: 3/3 (100%)" in text, text[-4000:]
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    rows = metrics["frames"]
    assert "PSNR train views" in text and metrics["summary"]["train_psnr_db"] > MIN_TEST_PSNR
    # foreground PSNR from the sample's seg/ masks, beside the full-frame one
    assert all(r["psnr_fg_db"] is not None for r in rows[:max_frames])
    # the run trained 2 frames of a 3-frame sample; eval renders every frame of the sample
    assert [r["frame"] for r in rows][:max_frames] == list(range(max_frames))
    print("test-view PSNR per frame:", [round(r["psnr_db"], 2) for r in rows])
    for r in rows[:max_frames]:
        assert r["psnr_db"] is not None and math.isfinite(r["psnr_db"]), r
        assert r["psnr_db"] > MIN_TEST_PSNR, r
        assert r["lpips"] is None
    pngs = sorted(eval_dir.glob("frame*_cam*.png"))
    assert len(pngs) >= max_frames
    from PIL import Image

    with Image.open(pngs[0]) as im:
        assert im.size == (64, 32), "side by side: ground truth | render, 32x32 each"

    # Training views rendered from the decoded frame store (what playback uses) fit the data.
    import torch
    from nerfstudio.utils.eval_utils import eval_setup

    from nerfstudio_vvc.data.datamanager import load_rgb
    from nerfstudio_vvc.eval.metrics import image_metrics

    _, pipeline, _, _ = eval_setup(rd / "config.yml", test_mode="test")
    dm, model = pipeline.datamanager, pipeline.model
    model.eval()
    assert model.store is not None and model.store.frames() == list(range(max_frames))
    for f in range(max_frames):
        idx = int(dm.frame_image_indices(f, "train")[0])
        cam = dm.train_dataset.cameras[idx : idx + 1]
        with torch.no_grad():
            rgb = model.get_outputs_for_camera(cam)["rgb"]
        gt = load_rgb(dm.train_dataparser_outputs.image_filenames[idx])
        psnr = image_metrics(rgb.clamp(0, 1), gt, use_lpips=False)["psnr_db"]
        print(f"frame {f}: training view {idx} from the frame store: {psnr:.2f} dB")
        assert psnr > MIN_TRAIN_VIEW_PSNR, (f, psnr)


def test_ns_train_help_lists_vvc_grid():
    proc = subprocess.run([tool("ns-train"), "--help"], capture_output=True, text=True, env=env(), timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "vvc-grid" in proc.stdout
    assert "Per-frame feature grid" in proc.stdout  # the method's description


ENTRY_POINT_GROUPS = ("nerfstudio.method_configs", "nerfstudio.dataparser_configs", "nerfstudio_vvc.methods")


@pytest.mark.parametrize("group", ENTRY_POINT_GROUPS)
def test_entry_points_import_light(group: str):
    """Resolving every entry point of the plugin's groups (what every `ns-train` start does for the method
    configs) pulls in neither LPIPS, PyAV, pybullet nor the entropy coder; nerfstudio itself already imports torch
    and matplotlib. The group's entry points load one after another in a fresh interpreter, checked after each
    load: a heavy module shows at the first entry point whose imports pull it in, so a later one cannot hide behind
    an earlier one (one interpreter per group, not per entry point: ~10 s of nerfstudio import each)."""
    from importlib.metadata import entry_points

    names = sorted(ep.name for ep in entry_points(group=group))
    assert names, f"no {group} entry points (pip install -e .)"
    code = (
        "import sys\n"
        "from importlib.metadata import entry_points\n"
        "for e in sorted(entry_points(group=sys.argv[1]), key=lambda e: e.name):\n"
        "    e.load()\n"
        "    heavy = [m for m in ('lpips', 'av', 'pybullet', 'constriction') if m in sys.modules]\n"
        "    print('LOADED', e.name, 'HEAVY', heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, group], capture_output=True, text=True, env=env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("LOADED ")]
    assert [ln.split()[1] for ln in lines] == names, proc.stdout
    for ln in lines:
        assert ln.endswith("HEAVY []"), ln
