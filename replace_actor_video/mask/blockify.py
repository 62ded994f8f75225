"""KJNodes `BlockifyMask`, plus a variant whose blocks sit on the 16-px latent grid.

KJNodes (ComfyUI-KJNodes nodes/mask_nodes.py, BlockifyMask.process), per frame:
  bbox of mask > 0 (an empty frame stays empty);
  w_div = max(1, bbox_w // block), w_slice = bbox_w // w_div (same for h);
  block index of column x = min((x - x_min) // w_slice, w_div - 1), so blocks are >= `block` px and the
  last row/column absorbs the remainder (< 2 * block);
  a block is on iff any of its pixels is on (their sum > 0); everything outside the bbox is 0.

snap16 (ours): the grid is anchored at the frame origin instead of the bbox corner, with cells of
`cell = ceil(block / 16) * 16` px: cell (i, j) covers rows [i*cell, (i+1)*cell) and columns
[j*cell, (j+1)*cell), clipped to the frame; a cell is on iff any pixel in it is on. Every block edge
then falls on a multiple of 16 px, i.e. on the boundary between the DiT's 16x16 patches (VAE /8, patch
2), so no latent token is half mask, half background. The bbox plays no part; cells without mask
pixels stay off, so nothing outside the mask's cells turns on.
"""

from __future__ import annotations

import numpy as np

LATENT_GRID = 16


def _blockify_region(region: np.ndarray, h_starts: np.ndarray, w_starts: np.ndarray) -> np.ndarray:
    """Fill each grid cell of a 2-D bool region that holds any True; cells start at the given offsets
    and each runs to the next start (the last one to the region's end)."""
    cells = np.logical_or.reduceat(np.logical_or.reduceat(region, h_starts, axis=0), w_starts, axis=1)
    rows = np.repeat(np.arange(len(h_starts)), np.diff(np.append(h_starts, region.shape[0])))
    cols = np.repeat(np.arange(len(w_starts)), np.diff(np.append(w_starts, region.shape[1])))
    return cells[np.ix_(rows, cols)]


def blockify_frame(mask: np.ndarray, block: int = 32, *, snap16: bool = False) -> np.ndarray:
    """Blockify one (H, W) mask (any value > 0 is inside); returns bool (H, W)."""
    if block < 1:
        raise ValueError(f"mask block size {block} must be >= 1 (KJNodes allows 8..512; 32 is the default)")
    on = np.asarray(mask) > 0
    out = np.zeros(on.shape, dtype=bool)
    if not on.any():
        return out
    if snap16:
        cell = -(-block // LATENT_GRID) * LATENT_GRID
        return _blockify_region(on, np.arange(0, on.shape[0], cell), np.arange(0, on.shape[1], cell))
    ys = np.flatnonzero(on.any(axis=1))
    xs = np.flatnonzero(on.any(axis=0))
    y0, y1, x0, x1 = ys[0], ys[-1] + 1, xs[0], xs[-1] + 1
    h_div = max(1, (y1 - y0) // block)
    w_div = max(1, (x1 - x0) // block)
    h_slice = (y1 - y0) // h_div
    w_slice = (x1 - x0) // w_div
    out[y0:y1, x0:x1] = _blockify_region(on[y0:y1, x0:x1], np.arange(h_div) * h_slice, np.arange(w_div) * w_slice)
    return out


def blockify_masks(masks: np.ndarray, block: int = 32, *, snap16: bool = False) -> np.ndarray:
    """Blockify every frame of a (T, H, W) mask stack (or one (H, W) mask); returns bool."""
    arr = np.asarray(masks)
    if arr.ndim == 2:
        return blockify_frame(arr, block, snap16=snap16)
    if arr.ndim != 3:
        raise ValueError(f"masks must be (T, H, W) or (H, W), got shape {arr.shape}")
    out = np.zeros(arr.shape, dtype=bool)
    for t in range(arr.shape[0]):
        out[t] = blockify_frame(arr[t], block, snap16=snap16)
    return out
