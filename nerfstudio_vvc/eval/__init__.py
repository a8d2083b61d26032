"""Evaluation toolkit (kept import-light: import the submodules you need).

* :mod:`nerfstudio_vvc.eval.metrics` — ``psnr``, ``ssim``, offline ``lpips``, ``ImageMetrics``
* :mod:`nerfstudio_vvc.eval.lpips_weights` — location/loading of the offline LPIPS-Alex weights
* :mod:`nerfstudio_vvc.eval.bdrate` — ``bd_rate``, ``bd_psnr``/``bd_quality`` (PCHIP), ``BDRateError``
* :mod:`nerfstudio_vvc.eval.plots` — ``plot_rd_curves``, ``plot_frame_bytes``
* :mod:`nerfstudio_vvc.eval.x265_anchor` — x265 simulcast anchor (``run_x265_anchor``)

See ``docs/evaluation.md``.
"""
