"""vvc-mv-inr end to end (issue 13): ns-train → stages → sequence.vvc → registry decoder, at toy scale.

The tiny sample (4 training cameras, 3 frames, 32×32) with a 2-channel grid and a few epochs per phase: what is
tested is the plumbing (bit-exact decode, resume, typed errors, dataset export), not quality.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from stream_edit import rewrite_stream

from nerfstudio_vvc.codec.bitstream.container import ChunkType
from nerfstudio_vvc.codec.errors import BitstreamError
from nerfstudio_vvc.playback.registry import open_decoder

BIN = Path(sys.executable).parent
METHOD_ENV = "vvc-mv-inr-cpu=nerfstudio_vvc.method_configs.mv_inr:vvc_mv_inr_cpu"
TINY = {"grid_channels": 2, "conv_channels": (6, 6, 4, 4, 4), "epochs": 3, "finetune_epochs": 2, "qat_epochs": 2,
        "batch_size": 2, "qp": 30}
TINY_CLI = []
for _k, _v in TINY.items():
    TINY_CLI += [
        f"--pipeline.model.{_k.replace('_', '-')}",
        *([str(x) for x in _v] if isinstance(_v, tuple) else [str(_v)]),
    ]


def train_inprocess(out: Path, sample: Path, kill_at: str = "", **overrides) -> Path:
    from nerfstudio.scripts.train import train_loop

    from nerfstudio_vvc.method_configs.mv_inr import vvc_mv_inr_cpu

    config = copy.deepcopy(vvc_mv_inr_cpu.config)
    config.output_dir, config.experiment_name, config.timestamp = out, "e", "t"
    config.vis = "tensorboard"
    config.machine.device_type = "cpu"
    config.pipeline.datamanager.data = sample
    for k, v in {**TINY, **overrides}.items():
        setattr(config.pipeline.model, k, v)
    old = os.environ.get("NSVVC_KILL_AT")
    os.environ["NSVVC_KILL_AT"] = kill_at
    try:
        train_loop(0, 1, config)
    finally:
        os.environ["NSVVC_KILL_AT"] = old or ""
    return out / "e" / "vvc-mv-inr-cpu" / "t"


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, tiny_sample) -> Path:
    """A tiny run through the real `ns-train` CLI (read-only)."""
    from ns_train import ns_train_cmd

    out = tmp_path_factory.mktemp("mv_cli")
    cmd = ns_train_cmd("vvc-mv-inr-cpu", out, *TINY_CLI, data=tiny_sample)
    env = dict(os.environ, PYTHONWARNINGS="ignore", NERFSTUDIO_METHOD_CONFIGS=METHOD_ENV)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out / "e" / "vvc-mv-inr-cpu" / "t"


def test_cli_run_decodes_to_the_encoders_reconstruction_exactly(cli_run: Path):
    path = cli_run / "sequence.vvc"
    stats = json.loads((cli_run / "compression.json").read_text())
    assert stats["file_bytes"] == path.stat().st_size  # the reported size is the file's
    code = torch.load(cli_run / "stages" / "code.pt", weights_only=False)
    basic = torch.load(cli_run / "stages" / "basic.pt", weights_only=False)
    dec = open_decoder(path)
    assert dec.frames() == [0, 1, 2]
    others = dec.config.inr_views
    assert dec.config.basic == basic["basic"] and len(others) == 3
    for d in dec.iter_decoded():
        t = d.frame_idx
        assert torch.equal(d.images[others], code["reconstruction"][:, t])  # INR views: bit-exact
        assert torch.equal(d.images[dec.config.basic], basic["decoded"][t])  # basic view: the HEVC decode
    # the ratios and the Huffman figure are labelled comparisons, the coded size is the file's part
    assert stats["inr_bytes"] + stats["hevc_bytes"] < stats["file_bytes"]
    assert stats["entropy_coding"]["huffman_bytes_comparison"] > 0


def test_pruning_and_qat_leave_what_the_decoder_reads(cli_run: Path):
    prune = torch.load(cli_run / "stages" / "prune.pt", weights_only=False)
    qat = torch.load(cli_run / "stages" / "qat.pt", weights_only=False)
    n = prune["stats"]["conv_weights"]
    assert prune["stats"]["kept"] == n - round(0.6 * n)  # exactly the requested fraction removed
    for name, mask in prune["masks"].items():
        assert torch.all(qat["model"][name][~mask] == 0)  # fine-tuning and QAT kept them pruned
    dec = open_decoder(cli_run / "sequence.vvc")
    for name, mask in prune["masks"].items():
        w = dict(dec.shared.net.named_parameters())[name]
        assert torch.all(w[~mask] == 0)


def test_viewer_render_at_a_coded_camera_reproduces_its_decoded_view(cli_run: Path):
    dec = open_decoder(cli_run / "sequence.vvc")
    d = dec.decode_frame(1)
    k = 2
    cam = dec.config.cameras[k]
    img = dec.render(d, torch.tensor(cam.c2w), cam.fx, cam.fy, cam.cx, cam.cy, dec.config.width, dec.config.height)
    assert dec.last_camera == k
    ref = d.images[k].float() / 255
    assert (img - ref).abs().max() < 2e-3  # pixel centres sample the image exactly (up to float error)


def test_decode_as_dataset_trains_a_nerfstudio_method(cli_run: Path, tmp_path: Path):
    out = tmp_path / "ds"
    proc = subprocess.run(
        [str(BIN / "ns-vvc"), "decode", str(cli_run / "sequence.vvc"), "--out", str(out), "--as-dataset"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    meta = json.loads((out / "transforms.json").read_text())
    assert len(meta["frames"]) == 4 * 3
    from nerfstudio_vvc.data.dataparser import VvcDataParserConfig

    outs = VvcDataParserConfig(data=out, test_cameras=()).setup().get_dataparser_outputs("train")
    assert len(outs.image_filenames) == 12 and outs.metadata["num_frames"] == 3


@pytest.mark.parametrize("kill", ["basic", "fit:2", "prune", "finetune:1", "qat:1", "code"])
def test_resume_after_a_kill_in_each_stage_writes_the_same_file(tmp_path, tiny_sample, kill, cli_run):
    from nerfstudio_vvc.training.stages import SimulatedKill

    with pytest.raises(SimulatedKill):
        train_inprocess(tmp_path, tiny_sample, kill_at=kill)
    run = train_inprocess(tmp_path, tiny_sample)
    assert (run / "sequence.vvc").read_bytes() == (cli_run / "sequence.vvc").read_bytes()


_rewrite = rewrite_stream


def _replace(gl, kind, fn):
    return [(t, fn(b) if int(t) == int(kind) else b) for t, b in gl]


@pytest.mark.parametrize("case", ["hevc_garbage", "hevc_cut", "inr_byte", "inr_cut", "frame_inr", "config_size"])
def test_corrupted_hevc_or_inr_chunk_gives_the_typed_error(cli_run: Path, tmp_path: Path, case: str):
    src = cli_run / "sequence.vvc"
    dst = tmp_path / "bad.vvc"

    def flip(b: bytes, at: int) -> bytes:
        b = bytearray(b)
        b[at] ^= 0x5A
        return bytes(b)

    def config(b: bytes) -> bytes:
        meta = json.loads(b)
        meta["inr"]["height"] = 1 << 14
        meta["inr"]["width"] = 1 << 14
        return json.dumps(meta).encode()

    edits = {
        "hevc_garbage": dict(globals_fn=lambda gl: _replace(gl, ChunkType.VIDEO_STREAM, lambda b: bytes(len(b)))),
        "hevc_cut": dict(globals_fn=lambda gl: _replace(gl, ChunkType.VIDEO_STREAM, lambda b: b[: len(b) // 3])),
        "inr_byte": dict(globals_fn=lambda gl: _replace(gl, ChunkType.INR_WEIGHTS, lambda b: flip(b, 9))),
        "inr_cut": dict(globals_fn=lambda gl: _replace(gl, ChunkType.INR_WEIGHTS, lambda b: b[:-7])),
        "frame_inr": dict(frame_fn=lambda rec: [(t, b[:-3]) for t, b in rec.chunks]),
        "config_size": dict(globals_fn=lambda gl: _replace(gl, ChunkType.METHOD_CONFIG, config)),
    }[case]
    _rewrite(src, dst, **edits)
    with pytest.raises(BitstreamError, match=str(dst)):
        dec = open_decoder(dst)
        for _ in dec.iter_decoded():
            pass


def test_a_flipped_byte_on_disk_gives_the_typed_error(cli_run: Path, tmp_path: Path):
    path = tmp_path / "s.vvc"
    shutil.copy(cli_run / "sequence.vvc", path)
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF  # inside the globals (HEVC or INR) in this small file
    path.write_bytes(bytes(data))
    with pytest.raises(BitstreamError, match=str(path)):
        dec = open_decoder(path)
        for _ in dec.iter_decoded():
            pass


def test_eval_reports_every_decoded_view_against_the_originals(cli_run: Path, tmp_path: Path):
    proc = subprocess.run(
        [
            str(BIN / "ns-vvc"),
            "eval",
            str(cli_run / "sequence.vvc"),
            "--load-config",
            str(cli_run / "config.yml"),
            "--output-dir",
            str(tmp_path),
            "--no-lpips",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((tmp_path / "metrics.json").read_text())
    assert len(res["frames"]) == 4 * 3 and {r["role"] for r in res["frames"]} == {"basic", "inr"}
    stats = json.loads((cli_run / "compression.json").read_text())
    # the decoded INR views measure what the encoder measured on its reconstruction
    assert abs(res["summary"]["inr_views_psnr_db"] - stats["psnr_inr_views_mean_db"]) < 0.05
    assert abs(res["summary"]["basic_view_psnr_db"] - stats["psnr_basic_view_db"]) < 0.05
    assert res["summary"]["file_bytes"] == (cli_run / "sequence.vvc").stat().st_size


def test_viewer_path_plays_the_file_and_names_the_shown_camera(cli_run: Path):
    """ns-viewer --load-config: the run's model renders from sequence.vvc at the frame of the bundle's time."""
    from nerfstudio.cameras.cameras import Cameras
    from nerfstudio.configs.method_configs import all_methods
    from nerfstudio.utils.eval_utils import eval_setup

    from nerfstudio_vvc.method_configs.mv_inr import vvc_mv_inr_cpu

    all_methods.setdefault("vvc-mv-inr-cpu", vvc_mv_inr_cpu.config)
    _, pipeline, _, _ = eval_setup(cli_run / "config.yml", test_mode="test")
    model = pipeline.model
    dec = open_decoder(cli_run / "sequence.vvc")
    k = dec.config.inr_views[0]
    cam = dec.config.cameras[k]
    camera = Cameras(
        camera_to_worlds=torch.tensor(cam.c2w)[None],
        fx=cam.fx,
        fy=cam.fy,
        cx=cam.cx,
        cy=cam.cy,
        width=dec.config.width,
        height=dec.config.height,
        times=torch.tensor([[1.0]]),
    )
    out = model.get_outputs_for_camera(camera)
    ref = dec.decode_frame(2).images[k].float() / 255  # time 1.0 = the last frame
    assert (out["rgb"] - ref).abs().max() < 2e-3
    _, status = model.playback_prepare(2)
    assert f"camera {cam.cam_id} (INR)" in status


def test_export_copies_the_run_bitstream(cli_run: Path, tmp_path: Path):
    proc = subprocess.run(
        [
            str(BIN / "ns-export"),
            "vvc-bitstream",
            "--load-config",
            str(cli_run / "config.yml"),
            "--output-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "sequence.vvc").read_bytes() == (cli_run / "sequence.vvc").read_bytes()
