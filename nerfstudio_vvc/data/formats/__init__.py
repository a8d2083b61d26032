"""Readers for multi-view video layouts (Panoptic/D3DGS, N3DV/DyNeRF, nerfstudio transforms.json)."""

from __future__ import annotations

from pathlib import Path

from nerfstudio_vvc.data.formats.common import RawVideoScene, VvcDataError

FORMATS = ("panoptic", "n3dv", "transforms")


def detect_format(root: Path) -> str:
    """Guess the layout of ``root`` from the files present."""
    from nerfstudio_vvc.data.formats import n3dv, panoptic, transforms

    root = Path(root)
    if not root.exists():
        raise VvcDataError(root, "data folder not found")
    if not root.is_dir():
        raise VvcDataError(root, "data path is not a folder")
    if panoptic.detect(root):
        return "panoptic"
    if n3dv.detect(root):
        return "n3dv"
    if transforms.detect(root):
        return "transforms"
    raise VvcDataError(
        root,
        "cannot detect the data format: expected train_meta.json (Panoptic/D3DGS), "
        "poses_bounds.npy + camNN.mp4 (N3DV) or transforms.json (nerfstudio)",
    )


def load_raw(root: Path, fmt: str = "auto") -> RawVideoScene:
    """Read a multi-view video folder in the given (or detected) format."""
    from nerfstudio_vvc.data.formats import n3dv, panoptic, transforms

    root = Path(root)
    if fmt == "auto":
        fmt = detect_format(root)
    elif not root.is_dir():
        raise VvcDataError(root, "data folder not found")
    readers = {"panoptic": panoptic.load, "n3dv": n3dv.load, "transforms": transforms.load}
    if fmt not in readers:
        raise VvcDataError(root, f"unknown format {fmt!r}; choose one of {('auto',) + FORMATS}")
    return readers[fmt](root)


__all__ = ["FORMATS", "RawVideoScene", "VvcDataError", "detect_format", "load_raw"]
