#!/usr/bin/env python
"""One RD plot of several methods on the same frames and test cameras (issue 12 item 8).

Usage (from the repo root):
    .venv/bin/python bench/plot_methods_rd.py --out bench_out/methods_rd \\
        [--rate-aware-summary bench_out/rd_panoptic_30f/summary.json | bench/reference/rate_aware_panoptic_30f.json] \\
        [--codebook-summary bench_out/codebook/summary.json
                            | bench/reference/codebook_panoptic_30f_cpu_k1024_worldop.json]

Reads vvc-rate-aware's `ns-vvc rd-sweep` summary.json (its `full-*` points) and vvc-codebook's
`bench/bench_codebook.py` summary.json (its k curve), checks that both cover the same number of frames, and writes
rd_test_psnr.png and rd_test_lpips.png plus methods_rd.json (the plotted points) into --out. Prints the JSON.
The defaults are the panoptic runs documented in docs/evaluation.md and docs/codebook.md, kept in
`bench/reference/` (codebook: the CPU run with today's renderer and `--pipeline.model.outer-opacity world`, k 1024;
`..._k1024_renderer2.json`: the same with contracted-length opacity, 1.8 dB worse; `codebook_panoptic_30f_cpu.json`:
its k curve with the renderer before 2026-12-02; `codebook_panoptic_30f.json`: the earlier GPU run).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from nerfstudio_vvc.jsonio import strict_json  # noqa: E402


def rate_aware_curve(summary: Dict) -> List[Dict]:
    """Full points of an rd-sweep summary, as {point, kb_per_frame, psnr_db, lpips, ...}."""
    out = []
    for p in summary.get("points", []):
        if not str(p.get("run", "")).startswith("full"):
            continue
        test = p.get("test") or {}
        out.append(
            {
                "point": p.get("point"),
                "kb_per_frame": p.get("kb_per_frame"),
                "file_bytes": p.get("file_bytes"),
                "i_kb": p.get("i_kb"),
                "p_kb": p.get("p_kb"),
                "psnr_db": test.get("psnr_db"),
                "ssim": test.get("ssim"),
                "lpips": test.get("lpips"),
            }
        )
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "bench_out" / "methods_rd")
    ap.add_argument(
        "--rate-aware-summary",
        type=Path,
        default=REPO_ROOT / "bench" / "reference" / "rate_aware_panoptic_30f.json",
        help="rd-sweep summary.json of vvc-rate-aware, or its points/ folder",
    )
    ap.add_argument(
        "--codebook-summary",
        type=Path,
        default=REPO_ROOT / "bench" / "reference" / "codebook_panoptic_30f_cpu_k1024_worldop.json",
    )
    ap.add_argument("--title", default="panoptic-basketball, frames 0-29, 160x90, 4 test cameras")
    args = ap.parse_args(argv)
    for path in (args.rate_aware_summary, args.codebook_summary):
        if not path.exists():
            print(f"{path}: not found (run the method's benchmark first)")
            return 1
    try:
        ra, cb = _load(args.rate_aware_summary), json.loads(args.codebook_summary.read_text())
        curves = {"vvc-rate-aware (λ)": rate_aware_curve(ra), "vvc-codebook (k)": list(cb.get("k_curve", []))}
    except (OSError, ValueError, AttributeError, TypeError) as e:
        print(f"{args.rate_aware_summary} / {args.codebook_summary}: not an rd-sweep / bench_codebook summary ({e})")
        return 1
    return _plot(args, ra, cb, curves)


def _load(path: Path) -> Dict:
    if path.is_dir():  # an rd-sweep's points/ folder (a sweep not finished yet: no summary)
        pts = [json.loads(f.read_text()) for f in sorted(path.glob("*.json"))]
        return {"points": pts, "scale": pts[0].get("scale") if pts else None}
    return json.loads(path.read_text())


def _plot(args, ra: Dict, cb: Dict, curves: Dict) -> int:
    ra_frames = (ra.get("scale") or {}).get("frames")
    if ra_frames is not None and cb.get("frames") is not None and int(ra_frames) != int(cb["frames"]):
        print(f"frame counts differ: rate-aware {ra_frames}, codebook {cb['frames']}; not plotting them together")
        return 1
    from nerfstudio_vvc.eval.plots import plot_rd_curves

    args.out.mkdir(parents=True, exist_ok=True)
    plot_rd_curves(curves, metric="psnr_db", out_png=args.out / "rd_test_psnr.png", title=args.title)
    plot_rd_curves(curves, metric="lpips", out_png=args.out / "rd_test_lpips.png", title=args.title)
    result = {
        "title": args.title,
        "curves": curves,
        "rate_aware_scale": ra.get("scale"),
        "codebook_source": cb.get("source", str(args.codebook_summary)),
    }
    (args.out / "methods_rd.json").write_text(strict_json(result, indent=1))
    print(strict_json(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
