"""x265 *simulcast* anchor: every camera encoded as its own HEVC video, then decoded and measured.

Settings (all overridable): libx265 through PyAV (the PyAV wheel bundles libx265), ``preset=veryfast``,
constant-quality ``crf`` in ``DEFAULT_CRFS = (22, 28, 33, 38)``, pixel format **yuv444p** (8-bit, no
chroma subsampling), default GOP (x265 keyint 250, so a ≤250-frame clip has one I-frame per camera),
30 fps time base, and x265 **without its thread pool and with one frame thread**
(``DETERMINISTIC_X265_PARAMS``): x265 derives its frame threads — which change the bitstream — from the
core count, and its pooled lookahead can give a different stream for the same input from run to run, so
the default threading would make the anchor's bytes depend on the machine. RGB→YUV and YUV→RGB conversions
are libswscale's defaults (BT.601, limited range), identical on the encode and the decode side.

Bytes
  Each camera's bitstream is written as a raw HEVC Annex-B elementary stream ``cam_<id>_crf<q>.hevc``
  (no container), then decoded back *from that file*. ``bytes_total`` is the sum of those file sizes
  over cameras (equal to the sum of encoded packet sizes, which is recorded too as a cross-check);
  ``kb_per_frame = bytes_total / 1000 / num_frames`` (KB = 1000 bytes, summed over all cameras per
  time instant).

Quality (raw against raw, by frame index)
  Decoded frames are taken in decoder output order (display order) and matched to source frame *i*
  by index — container timestamps are never used. Per (camera, frame) image: RGB PSNR (data range 1,
  float64 MSE over all channels), PSNR-Y (codec-domain luma: the 8-bit limited-range Y plane fed to
  the encoder vs the decoded Y plane, peak 255 — what x265 itself reports), SSIM and LPIPS from
  :mod:`nerfstudio_vvc.eval.metrics` on the RGB images. Reported values are means over all
  (camera, frame) images. ``lpips`` is ``None`` if the offline LPIPS weights are not installed.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

__all__ = ["DEFAULT_CRFS", "DETERMINISTIC_X265_PARAMS", "encode_camera", "decode_hevc", "run_x265_anchor",
           "x265_anchor_point"]

DEFAULT_CRFS = (22, 28, 33, 38)
PIX_FMT = "yuv444p"
DETERMINISTIC_X265_PARAMS = "log-level=error:pools=none:frame-threads=1"
"""x265 options of every encode here: no thread pool, one frame thread, so the bytes depend on neither the machine
nor thread scheduling (x265 picks frame threads from the core count; its pooled lookahead was seen to change the
stream between runs on a many-core machine)."""


def _check_frames(frames: Sequence[np.ndarray]) -> tuple:
    if len(frames) == 0:
        raise ValueError("empty frame sequence")
    h, w = frames[0].shape[:2]
    for i, f in enumerate(frames):
        if f.dtype != np.uint8 or f.ndim != 3 or f.shape != (h, w, 3):
            raise ValueError(f"frame {i}: expected uint8 array of shape ({h}, {w}, 3), got {f.dtype} {f.shape}")
    return h, w


def encode_camera(
    frames: Sequence[np.ndarray],
    path: Union[str, Path],
    crf: int,
    preset: str = "veryfast",
    fps: int = 30,
    x265_params: str = DETERMINISTIC_X265_PARAMS,
    qp: Optional[int] = None,
) -> Dict[str, object]:
    """Encode uint8 HxWx3 RGB frames to a raw HEVC Annex-B file at constant quality `crf`, or at the constant
    quantiser `qp` when given (vvc-mv-inr's basic view; `crf` is then ignored).

    Returns ``{"packet_bytes", "file_bytes", "per_frame_bytes" (by display index), "is_iframe", "encode_s"}``.
    """
    import av

    h, w = _check_frames(frames)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(frames)
    per_frame = [0] * n
    is_key = [False] * n
    packet_bytes = 0

    def _take(packets, out):
        nonlocal packet_bytes
        for p in packets:
            packet_bytes += p.size
            if p.pts is not None and 0 <= p.pts < n:
                per_frame[p.pts] += p.size
                is_key[p.pts] = is_key[p.pts] or bool(p.is_keyframe)
            out.mux(p)

    t0 = time.perf_counter()
    out = av.open(str(path), mode="w", format="hevc")
    try:
        stream = out.add_stream("libx265", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, PIX_FMT
        rc = {"qp": str(int(qp))} if qp is not None else {"crf": str(crf)}
        stream.options = {**rc, "preset": preset, "x265-params": x265_params}
        for i, img in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24").reformat(format=PIX_FMT)
            vf.pts = i
            _take(stream.encode(vf), out)
        _take(stream.encode(None), out)
    finally:
        out.close()
    encode_s = time.perf_counter() - t0
    return {
        "packet_bytes": packet_bytes,
        "file_bytes": path.stat().st_size,
        "per_frame_bytes": per_frame,
        "is_iframe": is_key,
        "encode_s": encode_s,
    }


def decode_hevc(path: Union[str, Path]) -> Dict[str, List[np.ndarray]]:
    """Decode a raw HEVC file; frames in decoder output order as ``{"rgb": [HxWx3 uint8], "yuv": [3xHxW uint8]}``."""
    import av

    rgb, yuv = [], []
    with av.open(str(path), mode="r", format="hevc") as c:
        for f in c.decode(video=0):
            rgb.append(f.to_ndarray(format="rgb24"))
            yuv.append(f.to_ndarray(format=PIX_FMT))
    return {"rgb": rgb, "yuv": yuv}


def _source_y(img: np.ndarray) -> np.ndarray:
    import av

    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
    return frame.reformat(format=PIX_FMT).to_ndarray()[0]


def _nhwc_u8_to_bchw(x: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float() / 255.0


def _psnr_u8(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def x265_anchor_point(
    frames: Mapping[object, Sequence[np.ndarray]],
    crf: int,
    out_dir: Union[str, Path],
    preset: str = "veryfast",
    use_lpips: bool = True,
    fps: int = 30,
    source_y: Optional[Mapping[object, Sequence[np.ndarray]]] = None,
) -> Dict[str, object]:
    """One RD point of the simulcast anchor (all cameras at one CRF). See module doc for definitions."""
    import torch

    from nerfstudio_vvc.eval import metrics as M

    if not frames:
        raise ValueError("no cameras given")
    cams = list(frames.keys())
    n = len(frames[cams[0]])
    h, w = _check_frames(frames[cams[0]])
    for c in cams:
        if len(frames[c]) != n or _check_frames(frames[c]) != (h, w):
            raise ValueError(f"camera {c}: all cameras need the same number of frames ({n}) and size ({h}x{w})")
    out_dir = Path(out_dir)
    lp_model = M.load_lpips_model("cpu") if use_lpips else None

    bytes_total = packet_total = 0
    per_frame_bytes = np.zeros(n, dtype=np.int64)
    iframe_any = [False] * n
    encode_s = decode_s = 0.0
    psnrs, psnr_ys, ssims, lpipss = [], [], [], []
    for c in cams:
        src = frames[c]
        path = out_dir / f"cam_{c}_crf{crf}.hevc"
        enc = encode_camera(src, path, crf=crf, preset=preset, fps=fps)
        encode_s += enc["encode_s"]
        bytes_total += enc["file_bytes"]
        packet_total += enc["packet_bytes"]
        per_frame_bytes += np.asarray(enc["per_frame_bytes"], dtype=np.int64)
        iframe_any = [a or b for a, b in zip(iframe_any, enc["is_iframe"])]
        t0 = time.perf_counter()
        dec = decode_hevc(path)
        decode_s += time.perf_counter() - t0
        if len(dec["rgb"]) != n:
            raise RuntimeError(f"camera {c}: decoded {len(dec['rgb'])} frames from {path}, encoded {n}")
        src_y = source_y[c] if source_y is not None else [_source_y(f) for f in src]
        for i in range(n):
            psnrs.append(_psnr_u8(dec["rgb"][i], src[i]))
            psnr_ys.append(_psnr_u8(dec["yuv"][i][0], src_y[i]))
        pred = _nhwc_u8_to_bchw(np.stack(dec["rgb"]))
        gt = _nhwc_u8_to_bchw(np.stack(src))
        ssims.append(M.ssim(pred, gt) * n)
        if lp_model is not None:
            with torch.no_grad():
                for s in range(0, n, 8):
                    lpipss.extend(lp_model(pred[s : s + 8], gt[s : s + 8]).tolist())

    num_images = n * len(cams)
    return {
        "crf": int(crf),
        "preset": preset,
        "pix_fmt": PIX_FMT,
        "bytes_total": int(bytes_total),
        "packet_bytes_total": int(packet_total),
        "kb_per_frame": bytes_total / 1000.0 / n,
        "psnr_db": float(np.mean(psnrs)),
        "psnr_y_db": float(np.mean(psnr_ys)),
        "ssim": float(np.sum(ssims) / num_images),
        "lpips": float(np.mean(lpipss)) if lpipss else None,
        "encode_s": encode_s,
        "decode_s": decode_s,
        "num_frames": n,
        "num_cameras": len(cams),
        "width": w,
        "height": h,
        "per_frame": [
            {"frame_idx": i, "kb": float(per_frame_bytes[i]) / 1000.0, "is_iframe": bool(iframe_any[i])}
            for i in range(n)
        ],
        "bitstream_dir": str(out_dir),
    }


def run_x265_anchor(
    frames: Mapping[object, Sequence[np.ndarray]],
    out_dir: Union[str, Path],
    crfs: Sequence[int] = DEFAULT_CRFS,
    preset: str = "veryfast",
    use_lpips: bool = True,
    fps: int = 30,
) -> List[Dict[str, object]]:
    """Simulcast x265 anchor over several CRFs; one result dict per CRF (same order as ``crfs``).

    ``frames``: ``{cam_id: [HxWx3 uint8 RGB, ...]}``, same frame count and size for every camera.
    Bitstreams go to ``out_dir/crf<q>/cam_<id>_crf<q>.hevc``.
    """
    out_dir = Path(out_dir)
    source_y = {c: [_source_y(f) for f in seq] for c, seq in frames.items()}  # shared by all CRFs
    return [
        x265_anchor_point(
            frames, crf, out_dir / f"crf{crf}", preset=preset, use_lpips=use_lpips, fps=fps, source_y=source_y
        )
        for crf in crfs
    ]
