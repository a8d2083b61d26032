"""RD and per-frame byte plots are written as PNG files."""

from nerfstudio_vvc.eval.plots import plot_frame_bytes, plot_rd_curves

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_plot_rd_curves(tmp_path):
    runs = {
        "x265": [{"kb_per_frame": k, "psnr_db": p, "ssim": s} for k, p, s in [(6.0, 30.5, 0.85), (13.1, 35.8, 0.93)]],
        "ours": [
            {"kb_per_frame": 9.0, "psnr_db": 33.0, "ssim": None},
            {"kb_per_frame": 4.0, "psnr_db": 29.0, "ssim": 0.8},
        ],
    }
    for metric in ("psnr_db", "ssim"):
        out = plot_rd_curves(runs, metric=metric, out_png=tmp_path / f"rd_{metric}.png", title="t")
        assert out.read_bytes()[:8] == PNG_MAGIC


def test_plot_frame_bytes(tmp_path):
    per_frame = [{"frame_idx": i, "kb": 30.0 if i % 10 == 0 else 3.0, "is_iframe": i % 10 == 0} for i in range(25)]
    out = plot_frame_bytes(per_frame, out_png=tmp_path / "sub" / "fb.png")
    assert out.read_bytes()[:8] == PNG_MAGIC
