"""Codec throughput benchmark (prints JSON; ``--out file.json`` also writes it).

(a) constriction raw: one fixed quantized Laplace for all symbols;
(b) per-symbol quantized Laplace parameters (arrays);
(c) the 3D context model (integer MLP per phase + one constriction call per phase).
All in one process/run so the ratios are meaningful.  Reports (c) decode time / (a) decode time.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from nerfstudio_vvc.codec.coder import CoderSession, choose_range
from nerfstudio_vvc.codec.context import GridContextModel
from nerfstudio_vvc.jsonio import strict_json

GRIDS = {1_000_000: (4, 64, 64, 64), 10_000_000: (10, 100, 100, 100)}


def _timed(fn, repeat: int):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def smooth_grid(shape, amp=8.0, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    c, d, h, w = shape
    x = torch.randn(c, 1, d // 8 + 2, h // 8 + 2, w // 8 + 2, generator=g)
    x = torch.nn.functional.interpolate(x, size=(d, h, w), mode="trilinear", align_corners=False)[:, 0]
    return torch.round(x * amp + torch.randn(shape, generator=g) * 0.7).long()


def bench(nominal: int, repeat: int) -> dict:
    shape = GRIDS[nominal]
    grid = smooth_grid(shape)
    sym = grid.reshape(-1).numpy()
    n = sym.size
    lo, hi, esc = choose_range(sym)
    res: dict = {"symbols": n, "nominal": nominal, "grid_shape": list(shape)}

    # (a) fixed model
    scale = float(np.mean(np.abs(sym))) + 0.5

    def enc_a():
        s = CoderSession("encode")
        s.code_laplace_fixed(sym, n, 0.0, scale, lo, hi, esc)
        return s.to_bytes()

    t_ea, data_a = _timed(enc_a, repeat)
    t_da, out = _timed(
        lambda: CoderSession("decode", data_a).code_laplace_fixed(None, n, 0.0, scale, lo, hi, esc), repeat
    )
    assert np.array_equal(out, sym)
    res["a_fixed"] = {
        "enc_sym_s": n / t_ea,
        "dec_sym_s": n / t_da,
        "enc_s": t_ea,
        "dec_s": t_da,
        "bits_per_sym": 8 * len(data_a) / n,
    }

    # (b) per-symbol parameters
    rng = np.random.default_rng(0)
    means = np.round(sym + rng.normal(0, 1, n)).astype(np.float64)
    scales = rng.uniform(0.5, 3.0, n)

    def enc_b():
        s = CoderSession("encode")
        s.code_laplace(sym, means, scales, lo, hi, esc)
        return s.to_bytes()

    t_eb, data_b = _timed(enc_b, repeat)
    t_db, out = _timed(lambda: CoderSession("decode", data_b).code_laplace(None, means, scales, lo, hi, esc), repeat)
    assert np.array_equal(out, sym)
    res["b_per_symbol"] = {
        "enc_sym_s": n / t_eb,
        "dec_sym_s": n / t_db,
        "enc_s": t_eb,
        "dec_s": t_db,
        "bits_per_sym": 8 * len(data_b) / n,
    }

    # (c) context model (random weights: speed does not depend on training)
    prev = (grid + torch.randint(-1, 2, grid.shape)).long()
    for hidden, key in ((16, "c_context"), (8, "c_context_hidden8")):
        torch.manual_seed(0)
        im = GridContextModel(hidden=hidden, num_channels=shape[0]).freeze()
        t_ec, data_c = _timed(lambda: im.compress(grid, prev), repeat)
        t_dc, out = _timed(lambda: im.decompress(data_c, shape, prev), repeat)
        assert torch.equal(out, grid)
        res[key] = {
            "enc_sym_s": n / t_ec,
            "dec_sym_s": n / t_dc,
            "enc_s": t_ec,
            "dec_s": t_dc,
            "bits_per_sym": 8 * len(data_c) / n,
        }
    t_dc = res["c_context"]["dec_s"]
    res["c8_over_a_decode_time"] = res["c_context_hidden8"]["dec_s"] / t_da
    res["c_over_a_decode_time"] = t_dc / t_da
    res["b_over_a_decode_time"] = t_db / t_da
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=None)
    ap.add_argument("--sizes", default="1000000,10000000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (constriction is single-threaded)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = {
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "runs": [bench(int(s), args.repeat) for s in args.sizes.split(",")],
    }
    text = strict_json(results, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
