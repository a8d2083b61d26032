"""The compression stages of vvc-codebook, as data: ``STAGES`` lists them in order.

Each stage is ``run(ctx) -> outputs`` (tensors / bytes, saved to ``<run>/stages/<name>.pt``) and
``restore(model, outputs)`` (re-installs a finished stage's result when a killed run resumes). The
SequenceTrainer (training/sequence_trainer.py) runs them after training, seeds the RNG per stage,
and records finished stages in ``<run>/stages.json``. A stage with long inner work (``dynamic``:
one unit per fragment) saves partial outputs through ``ctx.save_partial`` and resumes from them.

    importance  I per plane pixel (ImportanceField)
    codebook    merge / keep / cluster per group → codebooks + index planes
    finetune    train codebooks + MLP (index planes fixed)
    quantize    uniform codebook quantisation, MLP quantisation (what the decoder will have)
    dynamic     per fragment: select top-k codes by gradient, fine-tune them, quantise them
    code        occupancy per fragment, write sequence.vvc (+ ablation files), decoded states to frames/
"""

from __future__ import annotations

from typing import Any, Dict, List

import torch

from nerfstudio_vvc.jsonio import strict_json
from nerfstudio_vvc.methods.codebook.codebook import (
    ImportanceField,
    build_codebook,
    dequantize,
    group_stats,
    ones_multipliers,
    quantize_codebook,
    quantize_with,
    select_dynamic,
)
from nerfstudio_vvc.methods.codebook.field import GROUPS, gather_planes, split_codes, split_index
from nerfstudio_vvc.testing.faults import maybe_kill
from nerfstudio_vvc.training.stages import Stage, StageContext


# ------------------------------------------------------------------------------ importance
def run_importance(ctx: StageContext) -> Dict[str, Any]:
    model = ctx.model
    hx = model.hex
    planes = [p.detach() for p in hx.current_planes()]
    mults = ones_multipliers(planes)
    n = model.config.importance_batches
    task = ctx.task("importance", n)
    for _ in range(n):
        bundle, _ = ctx.batch()
        out = model.render_grouped(bundle.origins, bundle.directions, bundle.times.reshape(-1), jitter=False,
                                   make_field=lambda t: ImportanceField(hx.at_time(t, planes), mults))
        out["rgb"][:, 0].sum().backward()
        ctx.progress.update(task, advance=1)
    maybe_kill("importance")
    return {"importance": [m.grad[0].detach().cpu() for m in mults]}


def restore_nothing(model, outputs: Dict[str, Any]) -> None:
    """The stage changes no model state (its outputs are read by the next stage)."""


# ------------------------------------------------------------------------------ codebook
def run_codebook(ctx: StageContext, importance: List[torch.Tensor]) -> Dict[str, Any]:
    model, c = ctx.model, ctx.model.config
    spec = model.spec
    planes = [p.detach() for p in model.hex.planes]
    gen = torch.Generator().manual_seed(c.seed + 1)
    codebooks, indices, results = {}, [None] * len(planes), {}
    task = ctx.task("codebook (merge / keep / k-means)", len(GROUPS))
    for g in GROUPS:
        codes = split_codes(spec, planes, g)
        imp = torch.cat([im.reshape(-1) for (gg, _), im in zip(spec.plane_shapes(), importance) if gg == g]).to(
            codes.device
        )
        res = build_codebook(
            codes, imp, c.codebook_size, c.keep_fraction, c.keep_by, c.merge_fraction, c.kmeans_iters, gen
        )
        results[g] = res
        codebooks[g] = res.codebook.cpu()
        pieces = iter(split_index(spec, g, res.index.cpu()))
        for i, (gg, _) in enumerate(spec.plane_shapes()):
            if gg == g:
                indices[i] = next(pieces)
        ctx.progress.update(task, advance=1)
    maybe_kill("codebook")
    return {"codebooks": codebooks, "indices": indices, "stats": group_stats(results)}


def restore_codebook(model, outputs: Dict[str, Any]) -> None:
    dev = model.aabb.device
    model.hex.codebooks = {g: v.to(dev) for g, v in outputs["codebooks"].items()}
    model.hex.indices = [i.to(dev) for i in outputs["indices"]]


# ------------------------------------------------------------------------------ finetune
def run_finetune(ctx: StageContext) -> Dict[str, Any]:
    model, c = ctx.model, ctx.model.config
    hx = model.hex
    hx.codebooks = {g: v.detach().clone().requires_grad_(True) for g, v in hx.codebooks.items()}
    opt = torch.optim.Adam(
        [
            {"params": list(hx.codebooks.values()), "lr": c.finetune_lr},
            {"params": list(hx.head.parameters()), "lr": c.finetune_lr * 0.1},
        ],
        eps=1e-15,
    )
    task = ctx.task("finetune codebook + MLP", c.finetune_iterations)
    for _ in range(c.finetune_iterations):
        opt.zero_grad(set_to_none=True)
        ctx.mse().backward()
        with torch.no_grad():
            for v in hx.codebooks.values():
                v.grad[0].zero_()  # the zero code stays zero
        opt.step()
        ctx.progress.update(task, advance=1)
    hx.codebooks = {g: v.detach() for g, v in hx.codebooks.items()}
    maybe_kill("finetune")
    return {
        "codebooks": {g: v.cpu() for g, v in hx.codebooks.items()},
        "mlp": {k: v.detach().cpu().clone() for k, v in hx.head.state_dict().items()},
    }


def restore_finetune(model, outputs: Dict[str, Any]) -> None:
    dev = model.aabb.device
    model.hex.codebooks = {g: v.to(dev) for g, v in outputs["codebooks"].items()}
    model.hex.head.load_state_dict(outputs["mlp"])


# ------------------------------------------------------------------------------ quantize
def run_quantize(ctx: StageContext) -> Dict[str, Any]:
    from nerfstudio_vvc.codec.weights import compress_state_dict

    model, c = ctx.model, ctx.model.config
    symbols, steps = {}, {}
    for g, cb in model.hex.codebooks.items():
        symbols[g], steps[g] = quantize_codebook(cb.detach().cpu(), c.codebook_bits)
    mlp_payload, mlp_state = compress_state_dict(model.hex.head.state_dict(), bits=c.mlp_bits)
    maybe_kill("quantize")
    return {"symbols": symbols, "steps": steps, "mlp_payload": mlp_payload, "mlp": dict(mlp_state)}


def restore_quantize(model, outputs: Dict[str, Any]) -> None:
    """From here on the model renders what the decoder will have: dequantised codebooks and MLP."""
    dev = model.aabb.device
    model.hex.codebooks = {g: dequantize(s, outputs["steps"][g]).to(dev) for g, s in outputs["symbols"].items()}
    model.hex.head.load_state_dict(outputs["mlp"])


# ------------------------------------------------------------------------------ dynamic
def fragment_frames(model, fragment: int) -> List[int]:
    c = model.config
    return list(range(fragment * c.fragment_size, min((fragment + 1) * c.fragment_size, model.frames_coded)))


def num_fragments(model) -> int:
    return -(-model.frames_coded // model.config.fragment_size)


def run_dynamic(ctx: StageContext, quant: Dict[str, Any]) -> Dict[str, Any]:
    model, c = ctx.model, ctx.model.config
    hx = model.hex
    hx.head.requires_grad_(False)
    counts = {"density": c.dynamic_density_codes, "appearance": c.dynamic_appearance_codes}
    fragments: List[Dict[str, Any]] = list((ctx.partial or {}).get("fragments", []))
    n_frag = num_fragments(model)
    task = ctx.task("dynamic codes per fragment", n_frag)
    ctx.progress.update(task, completed=len(fragments))
    shared = {g: v.detach() for g, v in hx.codebooks.items()}
    done_here = 0
    for j in range(len(fragments), n_frag):
        frames = fragment_frames(model, j)
        torch.manual_seed(c.seed + 1000 + j)  # a resumed fragment draws what an uninterrupted run draws
        # 1. accumulate each entry's gradient over a few passes, no step
        hx.dynamic = None
        hx.codebooks = {g: v.clone().requires_grad_(True) for g, v in shared.items()}
        acc = {g: torch.zeros(v.shape[0], device=v.device) for g, v in shared.items()}
        for _ in range(c.dynamic_accum_iterations):
            for v in hx.codebooks.values():
                v.grad = None
            ctx.mse(frames).backward()
            for g, v in hx.codebooks.items():
                acc[g] += v.grad.norm(dim=-1)
        hx.codebooks = shared
        # 2. fine-tune the top-k entries of each group for this fragment only
        ids = {g: select_dynamic(acc[g], counts[g]) for g in GROUPS}
        values = {g: shared[g][ids[g]].clone().requires_grad_(True) for g in GROUPS}
        hx.dynamic = {g: (ids[g], values[g]) for g in GROUPS}
        params = [v for v in values.values() if v.numel()]
        if params:
            opt = torch.optim.Adam(params, lr=c.dynamic_lr, eps=1e-15)
            for _ in range(c.dynamic_iterations):
                opt.zero_grad(set_to_none=True)
                ctx.mse(frames).backward()
                opt.step()
        hx.dynamic = None
        fragments.append(
            {
                "ids": {g: ids[g].cpu() for g in GROUPS},
                "symbols": {g: quantize_with(values[g].detach().cpu(), quant["steps"][g]) for g in GROUPS},
            }
        )
        ctx.save_partial({"fragments": fragments})
        ctx.progress.update(task, advance=1)
        done_here += 1
        maybe_kill("dynamic", done_here)
    hx.head.requires_grad_(True)
    maybe_kill("dynamic")
    return {"fragments": fragments}


# ------------------------------------------------------------------------------ code
def run_code(ctx: StageContext, quant: Dict[str, Any], dyn: Dict[str, Any]) -> Dict[str, Any]:
    from nerfstudio_vvc.codec.bitstream.container import SequenceHeader, write_atomically
    from nerfstudio_vvc.components.occupancy import OccupancyGrid
    from nerfstudio_vvc.methods.codebook.codec import (
        CODEC,
        METHOD_ID,
        CodedFragment,
        CodedGlobals,
        DecodedFrame,
        FragmentCodes,
        SharedState,
        StreamConfig,
        frame_time,
        reconstruct,
    )
    from nerfstudio_vvc.methods.codebook.field import HexField

    model, c = ctx.model, ctx.model.config
    spec, dev = model.spec, ctx.device
    box = model.aabb.cpu().tolist()
    render = model.render_settings().to_json()
    entries = {g: int(quant["symbols"][g].shape[0]) for g in GROUPS}
    cfg = StreamConfig(spec, model.num_frames, c.fragment_size, entries, render)
    shared = SharedState(quant["symbols"], quant["steps"], [i.cpu() for i in model.hex.indices], quant["mlp"])
    header = SequenceHeader(
        method_id=METHOD_ID,
        num_frames=model.num_frames,
        fps=model.data_fps,
        gop_size=c.fragment_size,
        num_cameras=0,
        scene_box=(tuple(box[0]), tuple(box[1])),
        extra={},
    )
    head = model.hex.head
    streams = {"sequence.vvc": [FragmentCodes(f["ids"], f["symbols"]) for f in dyn["fragments"]]}
    if c.write_ablations:
        streams["sequence-nodyn.vvc"] = [FragmentCodes.empty(spec) for _ in dyn["fragments"]]
    stats: Dict[str, Any] = {}
    n_frag = num_fragments(model)
    task = ctx.task("occupancy + coding per fragment", n_frag * len(streams))
    occupancies: List[torch.Tensor] = []
    units = 0
    for name, frags in streams.items():
        path = ctx.run_dir / name
        per_frame: List[int] = []
        with write_atomically(path, header, CODEC.encode_globals(cfg, CodedGlobals(shared, quant["mlp_payload"]))) as w:
            for j, dyn_j in enumerate(frags):
                codebooks = reconstruct(shared, dyn_j)
                frames = fragment_frames(model, j)
                if name == "sequence.vvc":  # occupancy of the decoded field over the fragment's frames
                    planes = gather_planes(
                        spec, {g: v.to(dev) for g, v in codebooks.items()}, [i.to(dev) for i in shared.indices]
                    )
                    occ = OccupancyGrid(model.occupancy_cells, c.occupancy_threshold).to(dev)
                    occ.density_ema.zero_()
                    with torch.no_grad():
                        for f in frames:
                            occ.update(
                                HexField(spec, head, planes, frame_time(f, model.num_frames)).density, model.step_size()
                            )
                    occ.dilate(1)
                    occupancies.append(occ.binary.cpu().clone())
                occ_j = occupancies[j]
                for f in frames:
                    chunks = CODEC.encode_frame(cfg, CodedFragment(dyn_j, occ_j) if f == frames[0] else None, None)
                    per_frame.append(w.write_frame(f, f == frames[0], chunks))
                    if name == "sequence.vvc" and model.store is not None:
                        decoded = DecodedFrame(
                            f,
                            f == frames[0],
                            j,
                            frame_time(f, model.num_frames),
                            codebooks,
                            shared.indices,
                            shared.mlp_state,
                            occ_j,
                        )
                        model.store.save(f, decoded.to_state())
                ctx.progress.update(task, advance=1)
                units += 1
                maybe_kill("code", units)
        stats[name] = {"file_bytes": path.stat().st_size, "frame_bytes": per_frame}
    if c.write_ablations:
        raw = b"".join(p.detach().cpu().float().numpy().tobytes() for p in model.hex.planes)
        raw += b"".join(
            v.detach().cpu().float().numpy().tobytes() for v in torch.nn.ModuleList([head]).state_dict().values()
        )
        (ctx.run_dir / "planes_float32.bin").write_bytes(raw)
        stats["planes_float32.bin"] = {"file_bytes": len(raw)}
    maybe_kill("code")
    (ctx.run_dir / "compression.json").write_text(strict_json(stats, indent=1))
    return {"stats": stats}


STAGES: List[Stage] = [
    Stage(
        "importance", "importance of every code (ones-grid gradient)", lambda ctx: run_importance(ctx), restore_nothing
    ),
    Stage(
        "codebook",
        "merge / keep / cluster into codebooks + index planes",
        lambda ctx: run_codebook(ctx, ctx.outputs["importance"]["importance"]),
        restore_codebook,
    ),
    Stage("finetune", "fine-tune codebooks and MLP", run_finetune, restore_finetune),
    Stage("quantize", "uniform quantisation of codebooks and MLP", run_quantize, restore_quantize),
    Stage(
        "dynamic",
        "dynamic codes per time fragment",
        lambda ctx: run_dynamic(ctx, ctx.outputs["quantize"]),
        restore_nothing,
    ),
    Stage(
        "code",
        "entropy coding into sequence.vvc",
        lambda ctx: run_code(ctx, ctx.outputs["quantize"], ctx.outputs["dynamic"]),
        restore_nothing,
    ),
]
"""The stages after training, in order (names are the resume points in <run>/stages.json)."""
