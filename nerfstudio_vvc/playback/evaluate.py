"""Render the test cameras of a trained run, frame by frame, and measure them.

Renders come from the model in eval mode, never from the float training state: codec methods render
each decoded frame of the file through its decoder (`FrameModel.play_file`), methods without a codec
their frame store.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Literal, Optional

import numpy as np
import torch
import tyro
from nerfstudio.utils.rich_utils import CONSOLE
from PIL import Image
from rich.table import Table

from nerfstudio_vvc.eval.metrics import image_metrics
from nerfstudio_vvc.jsonio import strict_json
from nerfstudio_vvc.progress import track
from nerfstudio_vvc.units import KB_LABEL
from nerfstudio_vvc.units import kb as to_kb


def side_by_side(gt: torch.Tensor, pred: torch.Tensor) -> Image.Image:
    """Ground truth | render as one uint8 PNG image."""
    both = torch.cat([gt, pred.clamp(0, 1)], dim=1)
    return Image.fromarray((both.cpu().numpy() * 255.0 + 0.5).astype(np.uint8))


def foreground_mask(data_root: Path, cam: int, source_frame: int, size: tuple) -> Optional[torch.Tensor]:
    """Person/foreground mask [H, W] bool from ``<data>/seg/<cam>/<frame:06d>.png`` (Panoptic layout, the
    sample scene), resized to ``size`` = (H, W); None when the capture has no mask for that image."""
    path = Path(data_root) / "seg" / str(cam) / f"{source_frame:06d}.png"
    if not path.exists():
        return None
    with Image.open(path) as im:
        im = im.convert("L")
        if im.size != (size[1], size[0]):
            im = im.resize((size[1], size[0]), Image.NEAREST)
        return torch.from_numpy(np.asarray(im) > 127)


def masked_psnr(pred: torch.Tensor, gt: torch.Tensor, mask: Optional[torch.Tensor]) -> Optional[float]:
    """PSNR (dB) over the pixels of ``mask`` only; None without a mask or with an empty one."""
    if mask is None or not bool(mask.any()):
        return None
    mse = float(((pred.clamp(0, 1) - gt) ** 2)[mask.to(pred.device)].mean())
    return float(-10.0 * math.log10(max(mse, 1e-10)))


def render_test_views(
    pipeline,
    frames: Optional[List[int]] = None,
    out_dir: Optional[Path] = None,
    use_lpips: bool = True,
    split: Literal["train", "test"] = "test",
    max_cameras: int = 0,
    journal: Optional[Path] = None,
    journal_key: str = "",
) -> List[Dict]:
    """Render every camera of `split` (test by default) at every frame; return per-frame mean metrics.

    `max_cameras` > 0 keeps that many cameras, evenly spaced (to bound the cost of training-view evaluation).
    `journal`: a JSON-lines file that gets each frame's row as soon as it is measured; a later call with the same
    `journal_key` (what was measured: the file's hash, the options) takes the frames found there instead of rendering
    them again, so an evaluation killed after hours resumes where it stopped.
    """
    dm = pipeline.datamanager
    model = pipeline.model
    model.eval()
    frame_list = frames if frames is not None else list(range(dm.num_frames))
    outputs_meta = (dm.eval_dataparser_outputs if split == "test" else dm.train_dataparser_outputs).metadata
    data_root = dm.get_datapath()
    rows: List[Dict] = []
    done = read_journal(journal, journal_key, split) if journal is not None else {}
    if done:
        CONSOLE.print(f"{journal}: {len(done)} of {len(frame_list)} frames already measured, not rendered again")
    for frame in track(frame_list, description=f"rendering {split} views", console=CONSOLE):
        if frame in done:
            rows.append(done[frame])
            continue
        per_cam = []
        indices = dm.frame_image_indices(frame, split).tolist()
        if 0 < max_cameras < len(indices):
            indices = [indices[round(i * len(indices) / max_cameras)] for i in range(max_cameras)]
        for idx in indices:
            camera, batch = dm.camera(idx, split)
            with torch.no_grad():
                outputs = model.get_outputs_for_camera(camera)
            pred = outputs["rgb"].cpu()
            gt = batch["image"].cpu()[..., :3]
            m = image_metrics(pred.clamp(0, 1), gt, use_lpips=use_lpips)
            m["camera"] = int(outputs_meta["cam_id"][idx])
            mask = foreground_mask(data_root, m["camera"], int(outputs_meta["source_frame"][idx]), tuple(gt.shape[:2]))
            m["psnr_fg_db"] = masked_psnr(pred, gt, mask)
            per_cam.append(m)
            if out_dir is not None:
                out_dir.mkdir(parents=True, exist_ok=True)
                prefix = "" if split == "test" else "train_"
                side_by_side(gt, pred).save(out_dir / f"{prefix}frame{frame:04d}_cam{m['camera']}.png")
        rows.append({"frame": frame, **mean_metrics(per_cam), "cameras": per_cam})
        if journal is not None:
            journal.parent.mkdir(parents=True, exist_ok=True)
            with open(journal, "a", encoding="utf8") as f:  # one line per frame: a kill loses at most that frame
                f.write(strict_json({"key": journal_key, "split": split, "row": rows[-1]}) + "\n")
    return rows


def read_journal(journal: Path, key: str, split: str) -> Dict[int, Dict]:
    """Rows by frame from `render_test_views`' journal, for `key` and `split` only (other keys: another file or other
    options; a torn last line from a kill is skipped)."""
    rows: Dict[int, Dict] = {}
    if not journal.exists():
        return rows
    for line in journal.read_text(encoding="utf8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
            if entry.get("key") == key and entry.get("split") == split:
                rows[int(entry["row"]["frame"])] = entry["row"]
        except (ValueError, KeyError, TypeError, AttributeError):  # a torn or foreign line: that frame is redone
            continue
    return rows


def mean_metrics(items: List[Dict]) -> Dict[str, Optional[float]]:
    out: Dict[str, Optional[float]] = {}
    for key in ("psnr_db", "psnr_fg_db", "ssim", "lpips"):
        vals = [it[key] for it in items if it.get(key) is not None]
        out[key] = float(np.mean(vals)) if vals else None
    return out


def metrics_table(rows: List[Dict], title: str, extra: Optional[Dict[int, Dict]] = None) -> Table:
    """A rich table of per-frame metrics (and bytes, when known) plus the mean."""
    table = Table(title=title)
    for col in ("frame", "type", KB_LABEL, "PSNR (dB)", "fg PSNR (dB)", "SSIM", "LPIPS"):
        table.add_column(col, justify="right")
    fmt = lambda v, f: "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f.format(v)  # noqa: E731
    for r in rows:
        e = (extra or {}).get(r["frame"], {})
        kb = e.get("bytes", None)
        table.add_row(
            str(r["frame"]),
            e.get("type", ""),
            fmt(to_kb(kb) if kb is not None else None, "{:.2f}"),
            fmt(r["psnr_db"], "{:.2f}"),
            fmt(r.get("psnr_fg_db"), "{:.2f}"),
            fmt(r["ssim"], "{:.4f}"),
            fmt(r["lpips"], "{:.4f}"),
        )
    mean = mean_metrics(rows)
    kbs = [to_kb(e["bytes"]) for e in (extra or {}).values() if "bytes" in e]
    table.add_row(
        "mean", "", fmt(float(np.mean(kbs)) if kbs else None, "{:.2f}"),
        fmt(mean["psnr_db"], "{:.2f}"), fmt(mean["psnr_fg_db"], "{:.2f}"), fmt(mean["ssim"], "{:.4f}"),
        fmt(mean["lpips"], "{:.4f}"),
    )
    return table


def fit_vs_generalisation(pipeline, test_rows: List[Dict], frames: Optional[List[int]], cameras: int) -> Dict:
    """Mean PSNR of (up to) `cameras` training views next to the test views' (fit vs generalisation)."""
    train_rows = render_test_views(pipeline, frames=frames, use_lpips=False, split="train", max_cameras=cameras)
    test, train = mean_metrics(test_rows), mean_metrics(train_rows)
    out = {"train_psnr_db": train["psnr_db"], "test_psnr_db": test["psnr_db"],
           "train_psnr_fg_db": train["psnr_fg_db"], "test_psnr_fg_db": test["psnr_fg_db"], "train_cameras": cameras}
    fmt = lambda v: "n/a" if v is None else f"{v:.2f} dB"  # noqa: E731
    CONSOLE.print(f"PSNR train views {fmt(out['train_psnr_db'])} | test views {fmt(out['test_psnr_db'])}"
                  f"   (foreground: train {fmt(out['train_psnr_fg_db'])} | test {fmt(out['test_psnr_fg_db'])})")
    return out


JOURNAL_NAME = "frames.partial.jsonl"
"""`ns-vvc eval`'s (and rd-sweep's) per-frame journal in the output folder (removed once the metrics are written)."""


def journal_key(bitstream: Path, load_config: Path, lpips: bool) -> str:
    """What a journal row measured: the file's bytes, the run's cameras (its config.yml), LPIPS or not."""
    digest = hashlib.sha256(Path(bitstream).read_bytes()).hexdigest()
    return f"{digest}:{Path(load_config).resolve()}:lpips={lpips}"


@dataclass
class EvalRun:
    """Render a trained run's test cameras frame by frame and print PSNR / SSIM / LPIPS."""

    load_config: Path
    """config.yml of the run (written by ns-train)."""
    output_dir: Optional[Path] = None
    """Where to write side-by-side PNGs (ground truth | render) and metrics.json."""
    lpips: bool = True
    """Compute LPIPS (offline weights; reported as n/a when missing)."""
    train_views: int = 4
    """Also render this many training cameras and print their PSNR next to the test views' (0: skip)."""

    def main(self) -> List[Dict]:
        if not self.load_config.exists():
            raise SystemExit(f"{self.load_config}: no such file (pass the config.yml of a run)")
        from nerfstudio.utils.eval_utils import eval_setup  # nerfstudio's method registry: seconds to import

        _, pipeline, _, _ = eval_setup(self.load_config, test_mode="test")
        out = self.output_dir or self.load_config.parent / "eval"
        rows = render_test_views(pipeline, out_dir=out, use_lpips=self.lpips)
        CONSOLE.print(metrics_table(rows, f"test views of {self.load_config.parent}"))
        summary = fit_vs_generalisation(pipeline, rows, None, self.train_views) if self.train_views > 0 else {}
        (out / "metrics.json").write_text(strict_json({"frames": rows, "summary": summary}, indent=1))
        CONSOLE.print(f"side-by-side images and metrics.json in {out}")
        return rows


def codes_views(decoder) -> bool:
    """Whether the decoder's method codes camera views, not a 3D scene (its spec's `output`, e.g. vvc-mv-inr)."""
    from nerfstudio_vvc.methods.spec import find_method

    spec = find_method(decoder.header.method_id)
    return spec is not None and spec.output == "views"


def pipeline_without_weights(load_config: Path, test_mode: Literal["test", "val", "inference"] = "test"):
    """The run's pipeline (data set, cameras, model settings) as `eval_setup` builds it, but with no checkpoint
    loaded. A decoded file brings everything a render of it needs, so measuring a file needs the run's config.yml
    and data, not its training weights: a run folder without `nerfstudio_models/` (another machine, a checkout that
    kept only small files) is measured the same, and nothing the encoder kept can leak into the picture."""
    import yaml
    from nerfstudio.configs.method_configs import all_methods

    config = yaml.load(Path(load_config).read_text(), Loader=yaml.Loader)
    config.pipeline.datamanager._target = all_methods[config.method_name].pipeline.datamanager._target
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    pipeline = config.pipeline.setup(device=device, test_mode=test_mode)
    pipeline.eval()
    return pipeline


def decoded_pipeline(bitstream: Path, load_config: Path):
    """Load the run's pipeline (dataset: test cameras, ground truth; no checkpoint: `pipeline_without_weights`) with
    its model playing `bitstream`: every render goes through the decoder the file's method_id selects, with the
    file's METHOD_CONFIG (`FrameModel.play_file`; the exact renderer, `MethodDecoder.render_rays`). Frames are decoded
    on demand. Returns (decoder, pipeline). Nothing is written to disk."""
    pipeline = pipeline_without_weights(load_config)
    source = pipeline.model.play_file(bitstream)
    return source.decoder, pipeline


@dataclass
class EvalBitstream:
    """Decode a .vvc file, render the run's test cameras from the decoded frames, report KB / PSNR / SSIM / LPIPS."""

    bitstream: tyro.conf.Positional[Path]
    """The .vvc file to decode."""
    load_config: Path
    """config.yml of the run (gives the dataset's test cameras and ground truth)."""
    output_dir: Optional[Path] = None
    """Side-by-side PNGs and metrics.json."""
    lpips: bool = True
    """Compute LPIPS (offline weights; reported as n/a when missing)."""
    train_views: int = 4
    """Also render this many training cameras and print their PSNR next to the test views' (0: skip)."""

    def journal_key(self) -> str:
        return journal_key(self.bitstream, self.load_config, self.lpips)

    def main(self) -> List[Dict]:
        for p in (self.bitstream, self.load_config):
            if not p.exists():
                raise SystemExit(f"{p}: no such file")
        out = self.output_dir or self.bitstream.parent / "eval"
        from nerfstudio_vvc.playback.registry import open_decoder

        probe = open_decoder(self.bitstream)
        if codes_views(probe):  # a view codec (vvc-mv-inr): decoded views against the originals
            from nerfstudio_vvc.playback.eval_views import eval_decoded_views

            result = eval_decoded_views(probe, self.load_config, out, use_lpips=self.lpips)
            CONSOLE.print(f"side-by-side images and metrics.json in {out}")
            return result["frames"]
        probe.close()
        decoder, pipeline = decoded_pipeline(self.bitstream, self.load_config)
        journal = out / JOURNAL_NAME
        rows = render_test_views(pipeline, frames=decoder.frames(), out_dir=out, use_lpips=self.lpips,
                                 journal=journal, journal_key=self.journal_key())
        extra = {}
        for r in rows:
            f = r["frame"]
            kind = "I" if decoder.is_iframe(f) else "P"
            extra[f] = {"bytes": decoder.frame_bytes(f), "type": kind}
            r.update(bytes=extra[f]["bytes"], type=kind, decode_s=decoder.decode_seconds.get(f))
        title = f"decoded from {self.bitstream} ({self.bitstream.stat().st_size} bytes)"
        CONSOLE.print(metrics_table(rows, title, extra))
        summary = (
            fit_vs_generalisation(pipeline, rows, decoder.frames(), self.train_views) if self.train_views > 0 else {}
        )
        (out / "metrics.json").write_text(
            strict_json(
                {
                    "file": str(self.bitstream),
                    "file_bytes": self.bitstream.stat().st_size,
                    "frames": rows,
                    "summary": summary,
                },
                indent=1,
            )
        )
        journal.unlink(missing_ok=True)  # metrics.json holds every row now
        CONSOLE.print(f"side-by-side images and metrics.json in {out}")
        return rows


@dataclass
class DecodeBitstream:
    """Decode every frame of a .vvc file into decoded frame states (no checkpoint needed)."""

    bitstream: tyro.conf.Positional[Path]
    """The .vvc file."""
    out: Path = Path("decoded")
    """Folder for frame-NNNNN.pt decoded states (or the dataset with --as-dataset)."""
    as_dataset: bool = False
    """View codecs (vvc-mv-inr): write every decoded view and frame as a vvc-data dataset (transforms.json + PNGs,
    cameras from the stream) that any nerfstudio method trains on."""
    test_views_from: Optional[Path] = None
    """With --as-dataset: config.yml of the run that coded the file; its test cameras (original images) are added
    to the dataset as held-out views, so a method trained on the decoded views is measured on them."""

    def main(self) -> None:
        from nerfstudio_vvc.playback.registry import open_decoder

        if not self.bitstream.exists():
            raise SystemExit(f"{self.bitstream}: no such file")
        decoder = open_decoder(self.bitstream)
        if not decoder.frames():
            raise SystemExit(f"{self.bitstream}: holds no complete frame (a file cut before its first frame ended)")
        if self.as_dataset:
            if not codes_views(decoder):
                raise SystemExit(
                    f"{self.bitstream}: {decoder.header.method_id} codes a 3D representation, not camera "
                    "views: --as-dataset is for view codecs (vvc-mv-inr)"
                )
            test = None
            if self.test_views_from is not None:
                from nerfstudio_vvc.playback.eval_views import test_frames_of

                test = test_frames_of(self.test_views_from, len(decoder.frames()))
            path = decoder.write_dataset(self.out, test_frames=test)
            CONSOLE.print(
                f"{len(decoder.frames())} frames decoded into {path} (train with: ns-train <method> vvc-data "
                f"--data {self.out})"
            )
            return
        decoder.decode_to_store(self.out)
        for f in decoder.frames():
            CONSOLE.print(f"frame {f}: {decoder.frame_bytes(f)} bytes, decoded in {decoder.decode_seconds[f]:.2f} s")
