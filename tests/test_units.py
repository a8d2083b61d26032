"""One KB (1000 bytes) in every place that prints sizes: viewer read-out, training log, `ns-vvc eval` table."""

from __future__ import annotations

import io

from nerfstudio_vvc.units import KB_LABEL, format_kb, kb


def test_kb_is_1000_bytes():
    assert kb(2310) == 2.31
    assert format_kb(2310) == "2.31 KB"
    assert format_kb(12_450, 1) == "12.4 KB"


def test_viewer_readout_and_training_log_use_1000_bytes():
    from nerfstudio_vvc.playback.player import FrameInfo
    from nerfstudio_vvc.training.trainer import _frame_line

    assert FrameInfo(frame=3, is_iframe=False, nbytes=2048, decode_ms=14.0).line(9) == "3/9 · P · 2.05 KB · 14 ms"
    line = _frame_line({"frame": 0, "is_iframe": True, "train_psnr": 27.0, "bytes": 46_240, "train_s": 1.0,
                        "finalize_s": 0.5})
    assert "| 46.2 KB |" in line  # 1024-byte KB would print 45.2


def test_eval_table_names_the_unit():
    from rich.console import Console

    from nerfstudio_vvc.playback.evaluate import metrics_table

    rows = [{"frame": 0, "psnr_db": 25.0, "psnr_fg_db": None, "ssim": 0.9, "lpips": 0.1}]
    table = metrics_table(rows, "t", {0: {"bytes": 5000, "type": "I"}})
    out = io.StringIO()
    Console(file=out, width=200).print(table)
    text = out.getvalue()
    assert KB_LABEL in text and "5.00" in text, text
