"""vvc-codebook: the codebook algorithms, the stream, and the run (train → stages → file → decoder) on the tiny sample.

The run tests train in-process with nerfstudio's own ``train_loop`` (the ``ns-train`` CLI is covered by
one subprocess run), at a toy scale: planes 8² × 4, 40 rays, a handful of steps per stage.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from stream_edit import rewrite_stream

from nerfstudio_vvc.codec.bitstream.container import ChunkType, ContainerReader
from nerfstudio_vvc.codec.errors import BitstreamError, CorruptChunkError
from nerfstudio_vvc.components.frame_store import FrameStore
from nerfstudio_vvc.components.rendering import render_rays
from nerfstudio_vvc.methods.codebook.codebook import ImportanceField, build_codebook, ones_multipliers, select_kept
from nerfstudio_vvc.methods.codebook.codec import DecodedFrame, decode_frame
from nerfstudio_vvc.methods.codebook.field import PLANES, HexField, HexHead, HexSpec, init_planes
from nerfstudio_vvc.playback.registry import open_decoder

BIN = Path(sys.executable).parent
METHOD_ENV = "vvc-codebook-cpu=nerfstudio_vvc.method_configs.codebook:vvc_codebook_cpu"
C2W = torch.tensor([[1.0, 0, 0, 0], [0, 0, -1, -3.0], [0, 1, 0, 0.2]])

TINY = {
    "density_resolution": 8, "appearance_resolutions": (4, 8), "time_resolution": 4, "density_dim": 4,
    "appearance_dim": 6, "hidden_dim": 16, "num_samples": 16, "occupancy_resolution": 16, "occupancy_warmup": 4,
    "occupancy_update_every": 4, "codebook_size": 16, "kmeans_iters": 5, "finetune_iterations": 4,
    "fragment_size": 2, "dynamic_density_codes": 4, "dynamic_appearance_codes": 3, "dynamic_accum_iterations": 2,
    "dynamic_iterations": 3, "importance_batches": 2,
}
TINY_ITERS = 12
TINY_CLI = [
    "--max-num-iterations",
    str(TINY_ITERS),
    "--steps-per-save",
    "4",
    "--pipeline.datamanager.train-num-rays-per-batch",
    "40",
]
for _k, _v in TINY.items():
    TINY_CLI += [
        f"--pipeline.model.{_k.replace('_', '-')}",
        *([str(x) for x in _v] if isinstance(_v, tuple) else [str(_v)]),
    ]


# ------------------------------------------------------------------------------ runs
def train_inprocess(out: Path, sample: Path, kill_at: str = "", device: str = "cpu") -> Path:
    """A tiny vvc-codebook-cpu run in this process (nerfstudio's train_loop); returns the run folder."""
    from nerfstudio.scripts.train import train_loop

    from nerfstudio_vvc.method_configs.codebook import vvc_codebook_cpu

    config = copy.deepcopy(vvc_codebook_cpu.config)
    config.output_dir, config.experiment_name, config.timestamp = out, "e", "t"
    config.vis = "tensorboard"
    config.machine.device_type = device
    config.max_num_iterations, config.steps_per_save = TINY_ITERS, 4
    config.pipeline.datamanager.data = sample
    config.pipeline.datamanager.train_num_rays_per_batch = 40
    for k, v in TINY.items():
        setattr(config.pipeline.model, k, v)
    old = os.environ.get("NSVVC_KILL_AT")
    os.environ["NSVVC_KILL_AT"] = kill_at
    try:
        train_loop(0, 1, config)
    finally:
        os.environ["NSVVC_KILL_AT"] = old or ""
    return out / "e" / "vvc-codebook-cpu" / "t"


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, tiny_sample) -> Path:
    """An uninterrupted in-process tiny run (read-only)."""
    return train_inprocess(tmp_path_factory.mktemp("cb_ref"), tiny_sample)


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, tiny_sample) -> Path:
    """A tiny run through the real `ns-train` CLI (read-only)."""
    from ns_train import ns_train_cmd

    out = tmp_path_factory.mktemp("cb_cli")
    cmd = ns_train_cmd("vvc-codebook-cpu", out, *TINY_CLI, data=tiny_sample)
    env = dict(os.environ, PYTHONWARNINGS="ignore", NERFSTUDIO_METHOD_CONFIGS=METHOD_ENV)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out / "e" / "vvc-codebook-cpu" / "t"


def _not_json(name: str):
    raise AssertionError(f"stages.json holds {name}, which is not JSON")


def test_cli_run_decodes_to_the_encoders_states_and_renders(cli_run: Path, tiny_sample: Path):
    """ns-train → sequence.vvc → registry decoder: every decoded frame equals the encoder's state, renders are
    bit-identical, an I-frame per fragment (fragments of 2 frames), reported bytes are file bytes."""
    stages = json.loads((cli_run / "stages.json").read_text(), parse_constant=_not_json)
    assert stages["done"] == ["train", "importance", "codebook", "finetune", "quantize", "dynamic", "code"]
    dec = open_decoder(cli_run / "sequence.vvc")
    assert dec.method_id == "vvc-codebook"
    assert dec.fps == pytest.approx(json.loads((tiny_sample / "train_meta.json").read_text())["fps"]) != 30.0
    assert dec.frames() == [0, 1, 2] and [dec.is_iframe(f) for f in dec.frames()] == [True, False, True]
    store = FrameStore(cli_run / "frames")
    for d in dec.iter_decoded():
        enc = DecodedFrame.from_state(store.load(d.frame_idx))
        assert d.time == enc.time and d.fragment == enc.fragment == d.frame_idx // 2
        for g in d.codebooks:
            assert torch.equal(d.codebooks[g], enc.codebooks[g])
        for a, b in zip(d.indices, enc.indices):
            assert torch.equal(a, b)
        for k, v in d.mlp_state.items():
            assert torch.equal(v, enc.mlp_state[k])
        assert torch.equal(d.occupancy, enc.occupancy)
        a = dec.render(d, C2W, 20.0, 20.0, 8.0, 8.0, 12, 12)
        b = dec.render(enc, C2W, 20.0, 20.0, 8.0, 8.0, 12, 12)
        assert torch.equal(a, b) and torch.isfinite(a).all()
    coded = stages["stats"]["code"]["sequence.vvc"]
    assert coded["file_bytes"] == (cli_run / "sequence.vvc").stat().st_size
    assert coded["frame_bytes"] == [dec.frame_bytes(f) for f in dec.frames()]
    # the ablation files: float planes + MLP, and the stream without dynamic codes (smaller frames)
    assert (cli_run / "planes_float32.bin").stat().st_size == stages["stats"]["code"]["planes_float32.bin"][
        "file_bytes"
    ]
    nodyn = open_decoder(cli_run / "sequence-nodyn.vvc")
    assert nodyn.frame_bytes(0) < dec.frame_bytes(0)


def test_playback_through_the_model_renders_the_file(cli_run: Path):
    """The viewer's / eval's path: the run's model plays sequence.vvc (BitstreamSource), at the frame's time."""
    from nerfstudio.configs.method_configs import all_methods
    from nerfstudio.utils.eval_utils import eval_setup

    from nerfstudio_vvc.method_configs.codebook import vvc_codebook_cpu

    all_methods.setdefault("vvc-codebook-cpu", vvc_codebook_cpu.config)  # = the entry point, before `pip install -e .`
    _, pipeline, _, _ = eval_setup(cli_run / "config.yml", test_mode="test")
    model = pipeline.model
    field, occ = model._playback_modules(2)
    dec = open_decoder(cli_run / "sequence.vvc")
    d = dec.decode_frame(2)
    assert type(model.playback_source()).__name__ == "BitstreamSource"
    assert field.time == d.time
    for a, b in zip(field.planes, d.planes(dec.spec)):
        assert torch.equal(a, b)
    assert torch.equal(occ.binary, d.occupancy)


@pytest.mark.cuda
def test_cuda_run_decodes_bit_exactly(tmp_path, tiny_sample):
    """Trained and compressed on the GPU: the file decodes (on the CPU) to exactly the encoder's states."""
    run = train_inprocess(tmp_path, tiny_sample, device="cuda")
    dec = open_decoder(run / "sequence.vvc")
    store = FrameStore(run / "frames")
    for d in dec.iter_decoded():
        enc = DecodedFrame.from_state(store.load(d.frame_idx))
        assert all(torch.equal(d.codebooks[g], enc.codebooks[g]) for g in d.codebooks)
        assert torch.equal(d.occupancy, enc.occupancy)
        rays_o = C2W[:3, 3].expand(64, 3).cuda()
        rays_d = torch.nn.functional.normalize(torch.randn(64, 3), dim=-1).cuda()
        a = dec.render_rays(d, rays_o, rays_d)["rgb"]
        b = dec.render_rays(enc, rays_o, rays_d)["rgb"]
        assert torch.equal(a, b)


# ------------------------------------------------------------------------------ resume
KILLS = ["train:5", "importance", "codebook", "finetune", "quantize", "dynamic:1", "code:1"]


@pytest.mark.parametrize("kill", KILLS)
def test_resume_after_a_kill_in_each_stage_writes_the_same_file(tmp_path, tiny_sample, reference_run, kill):
    """A run killed inside a stage keeps what it finished; run again, it writes the uninterrupted run's bytes."""
    from nerfstudio_vvc.training.stages import SimulatedKill

    with pytest.raises(SimulatedKill):
        train_inprocess(tmp_path, tiny_sample, kill_at=kill)
    run = tmp_path / "e" / "vvc-codebook-cpu" / "t"
    stage = kill.partition(":")[0]
    done = json.loads((run / "stages.json").read_text())["done"] if (run / "stages.json").exists() else []
    assert stage not in done and not (run / "sequence.vvc").exists()
    if stage == "train":
        assert list((run / "nerfstudio_models").glob("step-000000003.ckpt"))  # killed after step 4, saved at 3
    if stage == "code":
        assert (run / "sequence.vvc.part").exists()  # killed while writing: the file is never half-written
    if stage == "dynamic":
        assert (run / "stages" / "dynamic.partial.pt").exists()  # the first fragment is kept
    train_inprocess(tmp_path, tiny_sample)
    assert (run / "sequence.vvc").read_bytes() == (reference_run / "sequence.vvc").read_bytes()


# ------------------------------------------------------------------------------ algorithms
def _toy_field(seed: int = 0):
    spec = HexSpec(
        density_resolution=4,
        appearance_resolutions=(3,),
        time_resolution=3,
        density_dim=2,
        appearance_dim=2,
        hidden_dim=8,
    )
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    planes = [p + torch.randn(p.shape, generator=gen) * 0.5 for p in init_planes(spec, gen)]
    head = HexHead(spec)
    with torch.no_grad():
        head.sigma[2].bias.fill_(6.0)  # dense enough that transmittance matters
    return spec, planes, head


def test_importance_equals_brute_force():
    """I_c = Σ_i w_ci T_i α_i, computed by hand (float64, explicit bilinear weights) on a toy scene."""
    spec, planes, head = _toy_field()
    t = 0.4
    field = HexField(spec, head, planes, t)
    aabb = torch.tensor([[-1.0, -1, -1], [1, 1, 1]])
    gen = torch.Generator().manual_seed(1)
    origins = torch.tensor([0.0, -3.0, 0.0]).expand(6, 3) + torch.randn(6, 3, generator=gen) * 0.2
    dirs = torch.tensor([0.0, 1.0, 0.0]) + torch.randn(6, 3, generator=gen) * 0.2
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    n = 12
    mults = ones_multipliers(planes)
    out = render_rays(ImportanceField(field, mults), origins, dirs, aabb, None, n, 0.0, torch.ones(3), jitter=False)
    out["rgb"][:, 0].sum().backward()
    brute = [np.zeros(p.shape[1:]) for p in planes]
    for r in range(len(origins)):
        o, d = origins[r].double().numpy(), dirs[r].double().numpy()
        inv = 1.0 / d
        t0, t1 = (-1 - o) * inv, (1 - o) * inv
        tmin, tmax = max(np.minimum(t0, t1).max(), 0.0), np.maximum(t0, t1).min()
        if tmax <= tmin:
            continue
        trans = 1.0
        for k in range(n):
            s = tmin + (k + 0.5) / n * (tmax - tmin)
            x01 = (o + s * d + 1.0) / 2.0
            with torch.no_grad():
                sigma = float(field.density(torch.tensor(x01, dtype=torch.float32)[None]))
            alpha = 1.0 - np.exp(-sigma * (tmax - tmin) / n)
            w = trans * alpha
            trans *= 1.0 - alpha + 1e-10
            x4 = [*x01, t]
            for p, plane in enumerate(planes):
                a, b = PLANES[p % 6]
                h, wd = plane.shape[1:]
                u, v = x4[a] * (wd - 1), x4[b] * (h - 1)
                i0, j0 = min(int(np.floor(u)), wd - 2), min(int(np.floor(v)), h - 2)
                fu, fv = u - i0, v - j0
                for dj, wv in ((0, 1 - fv), (1, fv)):
                    for di, wu in ((0, 1 - fu), (1, fu)):
                        brute[p][j0 + dj, i0 + di] += w * wu * wv
    for m, b in zip(mults, brute):
        np.testing.assert_allclose(m.grad[0].double().numpy(), b, rtol=1e-4, atol=1e-7)
    assert sum(float(b.sum()) for b in brute) > 0.5  # the toy scene is not empty


@pytest.mark.parametrize(
    "k,keep,keep_by", [(8, 0.3, "count"), (64, 0.1, "count"), (4, 0.5, "importance"), (500, 0.3, "count")]
)
def test_clustering_never_exceeds_k_plus_kept(k, keep, keep_by):
    """Distinct codes after merge / keep / cluster ≤ k + kept (+ the zero code); kept codes stay exact."""
    gen = torch.Generator().manual_seed(k)
    codes = torch.randn(400, 5, generator=gen)
    importance = torch.rand(400, generator=gen) ** 4
    importance[:20] = 0.0  # merged into the zero code
    res = build_codebook(codes, importance, k, keep, keep_by, merge_fraction=1e-5, iters=10, generator=gen)
    rebuilt = res.codebook[res.index]
    distinct = torch.unique(rebuilt, dim=0).shape[0]
    assert distinct <= k + res.num_kept + 1
    assert res.num_centres <= k and res.num_zero >= 20
    assert torch.equal(res.codebook[0], torch.zeros(5)) and bool((rebuilt[:20] == 0).all())
    exact = (rebuilt == codes).all(-1)
    assert int(exact.sum()) >= res.num_kept
    assert res.num_zero + res.num_kept + res.num_clustered == 400


def test_keep_by_importance_keeps_fewer_codes_when_importance_is_concentrated():
    imp = torch.cat([torch.full((10,), 100.0), torch.full((90,), 0.01)])
    cand = torch.ones(100, dtype=torch.bool)
    assert int(select_kept(imp, cand, 0.3, "count").sum()) == 30
    assert (
        int(select_kept(imp, cand, 0.3, "importance").sum()) == 4
    )  # the fewest codes holding ≥ 30 %: 4 × 100 of 1000.9


# ------------------------------------------------------------------------------ hostile files
def _copy(run: Path, tmp: Path) -> Path:
    dst = tmp / "s.vvc"
    shutil.copy(run / "sequence.vvc", dst)
    return dst


def test_corrupted_payload_byte_gives_the_typed_error(cli_run: Path, tmp_path: Path):
    path = _copy(cli_run, tmp_path)
    data = bytearray(path.read_bytes())
    with ContainerReader(path) as r:
        off = r.frame_offset(r.frame_indices()[0]) + 40  # inside frame 0's first chunk
    data[off] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BitstreamError, match=str(path)):
        dec = open_decoder(path)
        dec.decode_frame(0)


_rewrite = rewrite_stream


def test_world_opacity_in_the_method_config_reaches_the_renderer(cli_run: Path, tmp_path: Path):
    """`render.world_opacity` (`--pipeline.model.outer-opacity world`) switches the decoder's renderer to
    world-length opacity outside the box; absent, a contracted stream renders as before."""
    renders = {}
    for world in (False, True):

        def fn(gl, world=world):
            meta = json.loads(dict(gl)[ChunkType.METHOD_CONFIG])
            meta["render"].update(contraction=0.5, num_outer_samples=8, **({"world_opacity": True} if world else {}))
            return [(k, json.dumps(meta).encode() if k == ChunkType.METHOD_CONFIG else v) for k, v in gl]

        dec = open_decoder(_rewrite(cli_run / "sequence.vvc", tmp_path / f"w{int(world)}.vvc", globals_fn=fn))
        assert dec.render_settings.world_opacity is world
        renders[world] = dec.render(dec.decode_frame(0), C2W, 20.0, 20.0, 8.0, 8.0, 12, 12)
    assert torch.isfinite(renders[True]).all() and not torch.equal(renders[False], renders[True])


def test_crafted_streams_give_typed_errors_naming_file_and_chunk(cli_run: Path, tmp_path: Path):
    src = cli_run / "sequence.vvc"

    def config(edit):
        def fn(gl):
            meta = json.loads(dict(gl)[ChunkType.METHOD_CONFIG])
            edit(meta)
            return [(k, json.dumps(meta).encode() if k == ChunkType.METHOD_CONFIG else v) for k, v in gl]

        return fn

    cases = {
        "huge planes": (
            config(lambda m: m["hex"].update(density_resolution=4096, time_resolution=4096)),
            "METHOD_CONFIG",
        ),
        "bool as int": (config(lambda m: m["hex"].update(hidden_dim=True)), "METHOD_CONFIG"),
        "unknown field": (config(lambda m: m["render"].update(fancy=1)), "METHOD_CONFIG"),
        "world_opacity not a bool": (config(lambda m: m["render"].update(world_opacity=1)), "METHOD_CONFIG"),
        "entries mismatch": (config(lambda m: m["codebook"]["entries"].update(density=3)), "CODEBOOK"),
        "index out of range": (lambda gl: [(k, v) for k, v in gl], None),
    }
    from nerfstudio_vvc.codec.weights import compress_int_tensor

    def bad_index(gl):
        out, done = [], False
        for k, v in gl:
            if k == ChunkType.INDEX_PLANE and not done:
                pid, h, w = struct.unpack_from("<HHH", v)
                v = v[:6] + compress_int_tensor(torch.full((h, w), 10**6, dtype=torch.long))
                done = True
            out.append((k, v))
        return out

    cases["index out of range"] = (bad_index, "INDEX_PLANE")
    cases["missing MLP"] = (lambda gl: [(k, v) for k, v in gl if k != ChunkType.MLP_WEIGHTS], "MLP_WEIGHTS")
    for name, (fn, where) in cases.items():
        path = _rewrite(src, tmp_path / f"{name.replace(' ', '_')}.vvc", globals_fn=fn)
        with pytest.raises(CorruptChunkError) as info:
            open_decoder(path)
        assert str(path) in str(info.value) and where in str(info.value), (name, str(info.value))

    def dyn_ids_out_of_range(rec):
        if not rec.is_iframe:
            return rec.chunks
        out = []
        for k, v in rec.chunks:
            if k == ChunkType.CODEBOOK and v[0] == 0:
                ids = compress_int_tensor(torch.tensor([10**6]))
                vals = compress_int_tensor(torch.zeros(4, 1, dtype=torch.long))
                v = struct.pack("<BBIH", 0, 1, 1, 4) + struct.pack("<I", len(ids)) + ids + vals
            out.append((k, v))
        return out

    path = _rewrite(src, tmp_path / "dyn.vvc", frame_fn=dyn_ids_out_of_range)
    with pytest.raises(CorruptChunkError, match="dynamic code id"):
        open_decoder(path).decode_frame(0)


def test_p_frame_needs_its_reference(cli_run: Path):
    dec = open_decoder(cli_run / "sequence.vvc")
    rec = dec.reader.read_frame(1)
    assert not rec.is_iframe and rec.chunks == []
    with pytest.raises(BitstreamError, match="reference"):
        decode_frame(rec, None, dec.config, dec.shared)
    assert dec.iframe_of(1) == 0


@pytest.mark.timeout(300)
def test_payload_fuzz_of_a_codebook_stream(tmp_path: Path):
    """300 payload mutations (valid CRCs) of a vvc-codebook stream: only typed errors naming the file, or finite
    decoded values; no hang, no out-of-memory, no crash (bench/bench_fuzz_payload.py runs 10,000)."""
    from nerfstudio_vvc.testing.fuzz import run_fuzz
    from nerfstudio_vvc.testing.fuzz_targets.codebook import decode, make_stream

    stream = make_stream(tmp_path / "base.vvc")
    assert sum(1 for _ in decode(stream)) > 10  # the unmutated stream decodes
    res = run_fuzz(
        stream,
        "nerfstudio_vvc.testing.fuzz_targets.codebook:decode",
        cases=300,
        seed=1,
        workers=2,
        timeout_s=10.0,
        mem_mb=1024,
    )
    bad = ("untyped", "hang", "oom", "crash", "nonfinite")
    assert res.cases == 300 and {k: res.counts[k] for k in bad} == {k: 0 for k in bad}, res.findings[:5]
    assert res.typed_unnamed == 0 and res.counts["typed"] > 100


def test_rd_sweep_knows_the_codebook_runs(tmp_path: Path, monkeypatch):
    """`ns-vvc rd-sweep --preset vvc-codebook-cpu`: k / bits / dynamic-code runs, each with its stream without dynamic
    codes on the reference curve; the sequence trainer gets no --gop-size, a finished run is not retrained."""
    from nerfstudio_vvc.scripts import rd_sweep

    runs = rd_sweep.codebook_runs()
    assert set(rd_sweep.CODEBOOK_DEFAULT_RUNS) <= set(runs)
    k = runs["k-1024"]
    assert k.bitstreams() == {"k-1024": "sequence.vvc", "k-1024-nodyn": "sequence-nodyn.vvc"}
    assert k.curve_of("k-1024") == "Full" and k.curve_of("k-1024-nodyn") == "w/o dynamic codes"
    assert ("--pipeline.model.codebook-size", "1024") == k.args
    calls = []
    monkeypatch.setattr(
        rd_sweep.subprocess, "run", lambda cmd, **kw: calls.append(cmd) or subprocess.CompletedProcess(cmd, 0)
    )
    sweep = rd_sweep.RdSweep(data=tmp_path, out=tmp_path / "o", preset="vvc-codebook-cpu")
    sweep._ns_train(k)
    assert "--gop-size" not in calls[0] and calls[0][calls[0].index("--pipeline.model.codebook-size") + 1] == "1024"
    run = sweep.run_dir(k)
    run.mkdir(parents=True)
    (run / "stages.json").write_text(json.dumps({"done": ["train", "code"], "stats": {}}))
    sweep._ns_train(k)
    assert len(calls) == 1


def test_sequence_datamanager_holds_every_frame_once_as_uint8(tiny_sample: Path):
    """All cameras × all frames in one uint8 tensor; a batch draws from `frames_per_batch` frames with their times."""
    from nerfstudio_vvc.data.sequence_datamanager import SequenceDataManagerConfig

    dm = SequenceDataManagerConfig(data=tiny_sample, train_num_rays_per_batch=256, frames_per_batch=2).setup(
        device="cpu"
    )
    dm.load_all()
    images = dm.frame_images()
    assert images.dtype == torch.uint8 and images.shape == (4 * 3, 32, 32, 3)  # 4 cameras x 3 frames
    torch.manual_seed(0)
    bundle, batch = dm.next_train(0)
    times = torch.unique(bundle.times.reshape(-1))
    assert len(times) == 2 and batch["image"].shape == (256, 3)
    bundle, _ = dm.sample(64, [2])
    assert torch.allclose(bundle.times.reshape(-1), torch.ones(64))  # frame 2 of 3: t = 1
    dm.load_all(2)
    assert dm.frame_images().shape[0] == 4 * 2 and dm.frames_loaded == 2
