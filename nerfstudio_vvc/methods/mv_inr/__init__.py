"""vvc-mv-inr: implicit-explicit multi-view video codec (Zhu et al.), issue 13.

Status: network only (``network.py``); training, compression stages, container and decoder are not written yet.
"""
