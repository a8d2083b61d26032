"""Rate–distortion and per-frame byte plots (matplotlib, headless Agg backend).

``plot_rd_curves(runs, metric="psnr_db", out_png=...)``
    ``runs = {name: [{"kb_per_frame": ..., "psnr_db": ..., "ssim": ..., ...}, ...]}``; one line per run,
    points sorted by rate, KB/frame on a log x-axis. Points whose metric is missing/None/non-finite are
    skipped.
``plot_frame_bytes(per_frame, out_png=...)``
    ``per_frame = [{"frame_idx": i, "kb": ..., "is_iframe": bool}, ...]``; one bar per frame, I-frames in
    a different colour than P/B-frames, to show the GOP structure.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import matplotlib

matplotlib.use("Agg", force=False)  # no display needed; no-op if a backend is already in use
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

__all__ = ["plot_rd_curves", "plot_frame_bytes", "METRIC_LABELS"]

METRIC_LABELS = {
    "psnr_db": "PSNR (dB)",
    "psnr_y_db": "PSNR-Y (dB)",
    "ssim": "SSIM",
    "lpips": "LPIPS (lower is better)",
}


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def plot_rd_curves(
    runs: Mapping[str, Sequence[Mapping[str, object]]],
    metric: str = "psnr_db",
    out_png: Union[str, Path] = "rd.png",
    title: Optional[str] = None,
    rate_key: str = "kb_per_frame",
) -> Path:
    """Plot one RD curve per run; returns the written PNG path."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    plotted = 0
    for name, points in runs.items():
        pts = [
            (float(p[rate_key]), float(p[metric]))
            for p in points
            if _finite(p.get(rate_key)) and float(p[rate_key]) > 0 and _finite(p.get(metric))
        ]
        if not pts:
            continue
        pts.sort()
        ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=name)
        plotted += 1
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.set_xlabel("KB per frame (all cameras, log scale)" if rate_key == "kb_per_frame" else rate_key)
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.grid(True, which="both", alpha=0.3)
    return _finish(fig, ax, title, bool(plotted), out_png)


def _finish(fig, ax, title: Optional[str], legend: bool, out_png: Union[str, Path]) -> Path:
    """Title, legend, save as PNG (creating the folder) and close the figure."""
    if title:
        ax.set_title(title)
    if legend:  # below the axes: inside, it can hide a point
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize="small", frameon=False)
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_frame_bytes(
    per_frame: Sequence[Mapping[str, object]],
    out_png: Union[str, Path] = "frame_bytes.png",
    title: Optional[str] = None,
) -> Path:
    """Bar chart of KB per frame; I-frames (``is_iframe``) drawn in a different colour."""
    idx = [int(p["frame_idx"]) for p in per_frame]
    kb = [float(p["kb"]) for p in per_frame]
    is_i = [bool(p.get("is_iframe", False)) for p in per_frame]
    fig, ax = plt.subplots(figsize=(max(6.4, 0.12 * len(idx)), 3.6), dpi=120)
    i_x = [x for x, f in zip(idx, is_i) if f]
    i_y = [y for y, f in zip(kb, is_i) if f]
    p_x = [x for x, f in zip(idx, is_i) if not f]
    p_y = [y for y, f in zip(kb, is_i) if not f]
    if i_x:
        ax.bar(i_x, i_y, color="tab:red", label="I-frame", width=0.8)
    if p_x:
        ax.bar(p_x, p_y, color="tab:blue", label="P/B-frame", width=0.8)
    ax.set_xlabel("frame index")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel("KB")
    ax.grid(True, axis="y", alpha=0.3)
    return _finish(fig, ax, title, bool(idx), out_png)
