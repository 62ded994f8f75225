"""ComfyUI core `GrowMask` for binary mask stacks.

ComfyUI (comfy_extras/nodes_mask.py) runs `abs(expand)` iterations of
`scipy.ndimage.grey_dilation` (`grey_erosion` when expand < 0) with a 3x3 footprint whose centre row
and column are 1 and whose corners are 0 when `tapered_corners` (the default) else 1; each frame on
its own, scipy's default mode='reflect' at the image border.

For a binary mask this equals `binary_dilation(iterations=n)` with the same footprint (outside the
image counts as 0: a reflected pixel is already in the 3x3 window, so it never adds anything) and
`binary_erosion(iterations=n, border_value=1)` (reflect: the border never erodes a mask that touches
it). The binary form runs the iterations in C, ~7x faster on 720p stacks; the tests check it
pixel-for-pixel against the literal ComfyUI loop.

Shapes: 'diamond' = tapered corners (growth by L1 distance: a point becomes a diamond of radius n),
'square' = full 3x3 (growth by L-infinity distance: a point becomes a (2n+1)^2 square).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import ndimage

from .options import GROW_SHAPES

GrowShape = Literal["diamond", "square"]


def grow_footprint(shape: GrowShape) -> np.ndarray:
    """The 3x3 GrowMask kernel: cross for 'diamond' (tapered_corners=True), full for 'square'."""
    if shape not in GROW_SHAPES:
        raise ValueError(f"mask grow shape {shape!r} is unknown; use one of {', '.join(GROW_SHAPES)}")
    corner = shape == "square"
    return np.array([[corner, 1, corner], [1, 1, 1], [corner, 1, corner]], dtype=bool)


def grow_masks(masks: np.ndarray, expand: int, shape: GrowShape = "diamond") -> np.ndarray:
    """Grow (expand > 0) or shrink (expand < 0) each frame of a (T, H, W) or (H, W) mask by `expand` px.

    Any value > 0 counts as inside. Returns a bool array of the input's shape; frames never mix."""
    footprint = grow_footprint(shape)
    binary = np.asarray(masks) > 0
    if expand == 0 or binary.size == 0:
        return binary
    # A leading axis of size 1 in the structure keeps every frame independent.
    structure = footprint.reshape((1,) * (binary.ndim - 2) + footprint.shape)
    if expand > 0:
        return ndimage.binary_dilation(binary, structure=structure, iterations=expand)
    return ndimage.binary_erosion(binary, structure=structure, iterations=-expand, border_value=1)
