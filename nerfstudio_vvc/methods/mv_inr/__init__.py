"""vvc-mv-inr: implicit-explicit multi-view video codec (Zhu et al.), issue 13.

Status: network (``network.py``) and pruning / quantisation (``compress.py``) only; training, stages, container and
decoder are not written yet (docs/mv_inr.md).
"""
