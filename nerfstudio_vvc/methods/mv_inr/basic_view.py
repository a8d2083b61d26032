"""vvc-mv-inr's basic view: which camera it is, and its HEVC (x265) coding.

Choice rule (our captures have no depth maps, so MIV's depth-based view score cannot be used): the basic view is
the **medoid of the viewing directions**, the camera whose optical axis has the smallest summed angle to the
optical axes of all the others. On a rig looking at one subject this is the camera whose frustum overlaps the
others most; it is also the one the inter-view warps have to bridge the least. Ties go to the lower index.
`override` picks a camera by hand (an index into the list given).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from nerfstudio_vvc.eval.x265_anchor import DETERMINISTIC_X265_PARAMS, decode_hevc, encode_camera


def viewing_directions(c2ws: np.ndarray) -> np.ndarray:
    """Unit optical axes (N, 3) of camera-to-world matrices (N, 3|4, 4) in OpenGL convention (camera looks down -z)."""
    c2ws = np.asarray(c2ws, dtype=np.float64)
    if c2ws.ndim != 3 or c2ws.shape[1] not in (3, 4) or c2ws.shape[2] != 4:
        raise ValueError(f"expected camera-to-world matrices of shape (N, 3|4, 4), got {c2ws.shape}")
    d = -c2ws[:, :3, 2]
    return d / np.linalg.norm(d, axis=1, keepdims=True).clip(1e-12)


def choose_basic_view(c2ws: np.ndarray, override: Optional[int] = None) -> int:
    """Index of the basic view: `override` if given (checked), else the medoid of the viewing directions."""
    n = len(c2ws)
    if n == 0:
        raise ValueError("no cameras to choose a basic view from")
    if override is not None:
        if not 0 <= int(override) < n:
            raise ValueError(f"basic view {override} is not one of the {n} cameras (0..{n - 1})")
        return int(override)
    d = viewing_directions(c2ws)
    angles = np.arccos(np.clip(d @ d.T, -1.0, 1.0))
    return int(np.argmin(angles.sum(axis=1)))


def code_basic_view(frames: Sequence[np.ndarray], path: Union[str, Path], qp: int,
                    preset: str = "veryfast") -> Dict[str, object]:
    """Code the basic view's frames (uint8 H×W×3, display order) with x265 at the constant quantiser `qp`.

    Returns the encoder's statistics plus ``"decoded"``: the frames as the decoder rebuilds them from the written
    file (what the INR trains against and what the player warps), in display order.
    """
    # The basic view's bytes must not depend on the machine or on thread scheduling: a resumed run has to write the
    # same file as an uninterrupted one. Single-threaded x265 costs well under a second at the basic view's sizes.
    stats = encode_camera(frames, path, crf=0, preset=preset, qp=qp, x265_params=DETERMINISTIC_X265_PARAMS)
    decoded: List[np.ndarray] = decode_hevc(path)["rgb"]
    if len(decoded) != len(frames):
        raise RuntimeError(f"{path}: x265 gave {len(decoded)} frames back for {len(frames)} coded")
    return {**stats, "qp": int(qp), "preset": preset, "decoded": decoded}
