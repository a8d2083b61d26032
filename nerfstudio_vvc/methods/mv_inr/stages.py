"""The stages of vvc-mv-inr, as data: ``STAGES`` lists them in order (run by training/sequence_trainer.py, each
resumable; the training phases save every epoch through ``ctx.save_partial`` and resume from it).

    basic      choose the basic view, code it with x265 at the QP, decode it back from the file
    fit        train the INR on every (view, frame) of the other views against the decoded basic view
    prune      global magnitude pruning of the conv weights (exact fraction)
    finetune   fine-tune with the pruned weights held at 0
    qat        quantisation-aware training (every parameter fake-quantised, pruned weights at 0)
    code       quantise, entropy-code (constriction), write sequence.vvc; the encoder's reconstruction of every view
"""

from __future__ import annotations

import math
from typing import Any, Dict, List

import numpy as np
import torch

from nerfstudio_vvc.jsonio import strict_json
from nerfstudio_vvc.testing.faults import maybe_kill
from nerfstudio_vvc.training.stages import Stage, StageContext


# ------------------------------------------------------------------------------ the views
def views_of(dm) -> Dict[str, Any]:
    """The loaded training images as uint8 cameras × frames × H × W × 3, with each camera's id and pinhole."""
    outs = dm.train_dataparser_outputs
    idx = dm._image_indices
    cam_of = outs.metadata["cam_id"][idx]
    frame_of = outs.metadata["frame_idx"][idx]
    hw = dm._hw
    if not bool((hw == hw[0]).all()):
        raise ValueError("vvc-mv-inr needs every training camera at one image size; got "
                         + ", ".join(sorted({f"{int(w)}x{int(h)}" for h, w in hw.tolist()})))
    cam_ids = sorted(set(cam_of.tolist()))
    if len(cam_ids) < 2:
        raise ValueError(f"vvc-mv-inr needs at least 2 training cameras, got {len(cam_ids)}")
    h, w = int(hw[0, 0]), int(hw[0, 1])
    n_frames = int(frame_of.max()) + 1
    images = torch.zeros(len(cam_ids), n_frames, h, w, 3, dtype=torch.uint8)
    seen = torch.zeros(len(cam_ids), n_frames, dtype=torch.bool)
    cameras = [None] * len(cam_ids)
    for k, (c, f) in enumerate(zip(cam_of.tolist(), frame_of.tolist())):
        j = cam_ids.index(c)
        images[j, f] = dm._images[k, :h, :w]
        seen[j, f] = True
        if cameras[j] is None:
            i = int(idx[k])
            cams = outs.cameras
            cameras[j] = {"id": int(c), "fx": float(cams.fx[i, 0]), "fy": float(cams.fy[i, 0]),
                          "cx": float(cams.cx[i, 0]), "cy": float(cams.cy[i, 0]),
                          "c2w": cams.camera_to_worlds[i].double().tolist()}
    if not bool(seen.all()):
        raise ValueError("vvc-mv-inr needs every training camera in every frame")
    return {"images": images, "cam_ids": cam_ids, "cameras": cameras, "height": h, "width": w}


def _views(ctx: StageContext) -> Dict[str, Any]:
    if "views" not in ctx.cache:
        ctx.cache["views"] = views_of(ctx.datamanager)
    return ctx.cache["views"]


def _split(ctx: StageContext):
    """(targets of the INR's views V × T × H × W × 3, decoded basic view T × H × W × 3 or None without compensation)."""
    v, basic = _views(ctx), ctx.outputs["basic"]
    others = [j for j in range(len(v["cam_ids"])) if j != basic["basic"]]
    src = basic["decoded"] if ctx.model.config.compensation else None
    return v["images"][others], src


# ------------------------------------------------------------------------------ basic
def run_basic(ctx: StageContext) -> Dict[str, Any]:
    from nerfstudio_vvc.methods.mv_inr.basic_view import choose_basic_view, code_basic_view

    c = ctx.model.config
    v = _views(ctx)
    c2ws = np.asarray([cam["c2w"] for cam in v["cameras"]])
    override = None
    if c.basic_view_camera is not None:
        if c.basic_view_camera not in v["cam_ids"]:
            raise ValueError(
                f"basic_view_camera {c.basic_view_camera} is not a training camera (training cameras: {v['cam_ids']})"
            )
        override = v["cam_ids"].index(c.basic_view_camera)
    b = choose_basic_view(c2ws, override)
    task = ctx.task(f"basic view: camera {v['cam_ids'][b]}, x265 QP {c.qp}", 1)
    path = ctx.run_dir / "basic_view.hevc"
    stats = code_basic_view([f.numpy() for f in v["images"][b]], path, qp=c.qp, preset=c.hevc_preset)
    decoded = torch.from_numpy(np.stack(stats.pop("decoded")))
    ctx.progress.update(task, advance=1)
    maybe_kill("basic")
    layout = {k: v[k] for k in ("cam_ids", "cameras", "height", "width")}
    return {
        "basic": b,
        "hevc": path.read_bytes(),
        "decoded": decoded,
        "layout": layout,
        "stats": {"camera": v["cam_ids"][b], "qp": c.qp, "hevc_bytes": path.stat().st_size},
    }


def restore_basic(model, outputs: Dict[str, Any]) -> None:
    model.layout = {**outputs["layout"], "basic": outputs["basic"]}


# ------------------------------------------------------------------------------ training phases
def _train_phase(ctx: StageContext, name: str, epochs: int, lr: float, masks=None, qat_bits=None) -> Dict[str, Any]:
    from nerfstudio_vvc.methods.mv_inr.train import InrTrainConfig, train_inr

    model, c = ctx.model, ctx.model.config
    net = model.inr if model.inr is not None else model.build_inr()
    targets, src = _split(ctx)
    cfg = InrTrainConfig(
        epochs=epochs,
        batch_size=c.batch_size,
        lr=lr,
        warmup_fraction=c.warmup_fraction,
        seed=c.seed + {"fit": 0, "finetune": 1, "qat": 2}[name],
    )
    label = {
        "fit": "train INR (all views, all frames)",
        "finetune": "fine-tune after pruning",
        "qat": "quantisation-aware training",
    }[name]
    task = ctx.task(f"{label}, epochs", epochs)
    resume = ctx.partial
    ctx.progress.update(task, completed=int(resume["epoch"]) if resume else 0)
    done_here = [0]

    def on_epoch(state: Dict[str, Any]) -> None:
        ctx.save_partial(state)
        done_here[0] += 1
        maybe_kill(name, done_here[0])

    losses = train_inr(
        net,
        targets,
        list(range(targets.shape[0])),
        src,
        cfg,
        masks=masks,
        qat_bits=qat_bits,
        resume=resume,
        on_epoch=on_epoch,
        advance=lambda: ctx.progress.update(task, advance=1),
    )
    maybe_kill(name)
    return {
        "model": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
        "losses": losses,
        "stats": {"epochs": epochs, "last_epoch_loss": losses[-1] if losses else None},
    }


def restore_weights(model, outputs: Dict[str, Any]) -> None:
    net = model.inr if model.inr is not None else model.build_inr()
    net.load_state_dict(outputs["model"])


def run_fit(ctx: StageContext) -> Dict[str, Any]:
    c = ctx.model.config
    ctx.model.build_inr()
    return _train_phase(ctx, "fit", c.epochs, c.lr)


def run_prune(ctx: StageContext) -> Dict[str, Any]:
    from nerfstudio_vvc.methods.mv_inr.compress import apply_masks, conv_weights, global_magnitude_masks, masks_by_name

    net = ctx.model.inr
    masks = masks_by_name(net, global_magnitude_masks(net, ctx.model.config.prune_fraction))
    apply_masks(net, masks)
    n = sum(w.numel() for w in conv_weights(net))
    kept = sum(int(m.sum()) for m in masks.values())
    maybe_kill("prune")
    return {
        "masks": masks,
        "model": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
        "stats": {"conv_weights": n, "kept": kept, "kept_fraction": kept / max(n, 1)},
    }


def run_finetune(ctx: StageContext) -> Dict[str, Any]:
    c = ctx.model.config
    return _train_phase(ctx, "finetune", c.finetune_epochs, c.finetune_lr, masks=ctx.outputs["prune"]["masks"])


def run_qat(ctx: StageContext) -> Dict[str, Any]:
    c = ctx.model.config
    return _train_phase(ctx, "qat", c.qat_epochs, c.finetune_lr, masks=ctx.outputs["prune"]["masks"], qat_bits=c.bits)


# ------------------------------------------------------------------------------ code
def _psnr_u8(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over frames (dim 0) of each frame's PSNR, as `ns-vvc eval` reports it."""
    mse = ((a.double() - b.double()) ** 2).flatten(1).mean(1).tolist()
    return float(np.mean([float("inf") if m == 0 else 10 * math.log10(255.0**2 / m) for m in mse]))


def run_code(ctx: StageContext) -> Dict[str, Any]:
    from nerfstudio_vvc.codec.bitstream.container import SequenceHeader, write_atomically
    from nerfstudio_vvc.codec.bitstream.header import ChunkType
    from nerfstudio_vvc.methods.mv_inr.codec import (
        CODEC,
        METHOD_ID,
        Camera,
        CodedGlobals,
        StreamConfig,
        coding_stats,
        split_units,
    )
    from nerfstudio_vvc.methods.mv_inr.compress import dequantize_units, quantize_params
    from nerfstudio_vvc.methods.mv_inr.train import reconstruct

    model, c = ctx.model, ctx.model.config
    net, basic, v = model.inr, ctx.outputs["basic"], _views(ctx)
    units = quantize_params(net, c.bits)
    with torch.no_grad():  # from here on the encoder has what the decoder will have
        for n, p in net.named_parameters():
            p.copy_(dequantize_units(n, units[n], c.bits).to(p.device))
    cfg = StreamConfig(
        n_frames=model.frames_coded,
        height=v["height"],
        width=v["width"],
        grid_channels=c.grid_channels,
        conv_channels=tuple(c.conv_channels),
        compensation=c.compensation,
        grid_embedding=c.grid_embedding,
        bits=c.bits,
        cameras=[Camera(**{("cam_id" if k == "id" else k): x for k, x in cam.items()}) for cam in v["cameras"]],
        basic=basic["basic"],
        hevc={"qp": c.qp, "preset": c.hevc_preset},
        render={"background": [float(x) for x in c.background_color]},
    )
    glob, per_frame = split_units(units)
    global_chunks = CODEC.encode_globals(cfg, CodedGlobals(basic["hevc"], glob))
    glob_bytes = sum(len(p) for t, p in global_chunks if t == ChunkType.INR_WEIGHTS)
    box = model.aabb.cpu().tolist()
    header = SequenceHeader(
        method_id=METHOD_ID,
        num_frames=model.num_frames,
        fps=model.data_fps,
        gop_size=1,
        num_cameras=len(cfg.cameras),
        scene_box=(tuple(box[0]), tuple(box[1])),
        extra={},
    )
    path = ctx.run_dir / "sequence.vvc"
    task = ctx.task("entropy coding into sequence.vvc, frames", cfg.n_frames)
    frame_bytes: List[int] = []
    frame_payload = 0
    with write_atomically(path, header, global_chunks) as w:
        for t, rows in enumerate(per_frame):
            chunks = CODEC.encode_frame(cfg, rows, None)
            frame_payload += sum(len(p) for _, p in chunks)
            frame_bytes.append(w.write_frame(t, True, chunks))
            ctx.progress.update(task, advance=1)
    targets, src = _split(ctx)
    recon = reconstruct(net, list(range(targets.shape[0])), cfg.n_frames, src)
    file_bytes = path.stat().st_size
    pixels = len(cfg.cameras) * cfg.n_frames * cfg.height * cfg.width
    others = cfg.inr_views
    per_view = {int(v["cam_ids"][j]): _psnr_u8(recon[k], targets[k]) for k, j in enumerate(others)}
    n_params = sum(p.numel() for p in net.parameters())
    nonzero = sum(int((q != 0).sum()) for us in units.values() for q, _ in us)
    inr_bytes = glob_bytes + frame_payload
    stats = {
        "file_bytes": file_bytes,
        "kb_per_frame": file_bytes / 1000 / cfg.n_frames,
        "bpp": 8 * file_bytes / pixels,
        "hevc_bytes": len(basic["hevc"]),
        "inr_bytes": inr_bytes,
        "frame_bytes": frame_bytes,
        "psnr_inr_views_db": per_view,
        "psnr_inr_views_mean_db": float(np.mean(list(per_view.values()))),
        "psnr_basic_view_db": _psnr_u8(basic["decoded"], v["images"][basic["basic"]]),
        "basic_camera": int(v["cam_ids"][basic["basic"]]),
        "compression_ratios": {
            "float32_bytes": 4 * n_params,
            "Q": 4.0,
            "Q+P": 4 * n_params / max(nonzero, 1),  # nonzero 8-bit values only (positions not counted)
            "Q+P+E": 4 * n_params / max(inr_bytes, 1),
        },
        "entropy_coding": coding_stats(units, inr_bytes),
    }
    (ctx.run_dir / "compression.json").write_text(strict_json(stats, indent=1))
    maybe_kill("code")
    return {"reconstruction": recon, "units": units, "stats": stats}


def restore_code(model, outputs: Dict[str, Any]) -> None:
    from nerfstudio_vvc.methods.mv_inr.compress import dequantize_units

    net = model.inr if model.inr is not None else model.build_inr()
    with torch.no_grad():
        for n, p in net.named_parameters():
            p.copy_(dequantize_units(n, outputs["units"][n], model.config.bits).to(p.device))


def restore_nothing(model, outputs: Dict[str, Any]) -> None:
    """The stage leaves no state beyond its outputs."""


STAGES: List[Stage] = [
    Stage("basic", "basic view chosen, coded with x265 and decoded back", run_basic, restore_basic),
    Stage("fit", "INR trained on all views and frames", run_fit, restore_weights),
    Stage("prune", "global magnitude pruning of the conv weights", run_prune, restore_weights),
    Stage("finetune", "fine-tuning with pruned weights at 0", run_finetune, restore_weights),
    Stage("qat", "quantisation-aware training", run_qat, restore_weights),
    Stage("code", "quantised, entropy-coded, written to sequence.vvc", run_code, restore_code),
]
"""The stages after (the empty) ray training, in order (names are the resume points in <run>/stages.json)."""
