"""vvc-mv-inr: implicit-explicit multi-view video codec (Zhu et al.), issue 13 — docs/mv_inr.md.

network.py (F(j, t) + inter-view compensation), basic_view.py (choice + x265), train.py (the training loop of the
fit / fine-tune / QAT phases), compress.py (pruning, 8-bit tanh quantisation), stages.py (the resumable stages),
model.py (the nerfstudio model: stages + playback), codec.py (stream chunks), decoder.py (registry decoder).
"""
