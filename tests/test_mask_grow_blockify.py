"""GrowMask and BlockifyMask: hand-computed cases and pixel-for-pixel agreement with the node code."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from replace_actor_video.mask.blockify import blockify_frame, blockify_masks
from replace_actor_video.mask.grow import grow_footprint, grow_masks


def comfy_grow_mask(mask: np.ndarray, expand: int, tapered_corners: bool) -> np.ndarray:
    """ComfyUI comfy_extras/nodes_mask.py GrowMask.expand_mask, with numpy in place of torch."""
    c = 0 if tapered_corners else 1
    kernel = np.array([[c, 1, c], [1, 1, 1], [c, 1, c]])
    out = []
    for m in mask.reshape((-1, mask.shape[-2], mask.shape[-1])).astype(np.float32):
        output = m
        for _ in range(abs(expand)):
            if expand < 0:
                output = ndimage.grey_erosion(output, footprint=kernel)
            else:
                output = ndimage.grey_dilation(output, footprint=kernel)
        out.append(output)
    return np.stack(out)


def kj_blockify(masks: np.ndarray, block_size: int) -> np.ndarray:
    """KJNodes BlockifyMask.process line by line, with numpy in place of torch (scatter_add_ -> add.at)."""
    result = np.zeros(masks.shape, dtype=np.float32)
    for i in range(masks.shape[0]):
        mask = masks[i].astype(np.float32)
        mask_bool = mask > 0
        if not mask_bool.any():
            continue
        y_indices = np.nonzero(mask_bool.any(axis=1))[0]
        x_indices = np.nonzero(mask_bool.any(axis=0))[0]
        y_min, y_max = y_indices[0], y_indices[-1]
        x_min, x_max = x_indices[0], x_indices[-1]
        bbox_width = x_max - x_min + 1
        bbox_height = y_max - y_min + 1
        w_divisions = max(1, bbox_width // block_size)
        h_divisions = max(1, bbox_height // block_size)
        w_slice = bbox_width // w_divisions
        h_slice = bbox_height // h_divisions
        y_coords = np.arange(y_min, y_max + 1).reshape(-1, 1)
        x_coords = np.arange(x_min, x_max + 1).reshape(1, -1)
        w_block = np.clip((x_coords - x_min) // w_slice, 0, w_divisions - 1)
        h_block = np.clip((y_coords - y_min) // h_slice, 0, h_divisions - 1)
        block_ids = h_block * w_divisions + w_block
        region = mask[y_min : y_max + 1, x_min : x_max + 1]
        content = np.zeros(h_divisions * w_divisions, dtype=np.float32)
        np.add.at(content, block_ids.flatten(), region.flatten())
        result[i, y_min : y_max + 1, x_min : x_max + 1] = (content > 0)[block_ids]
    return np.clip(result, 0, 1)


def random_blobs(seed: int, shape: tuple[int, int, int]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.random(shape), sigma=(0, 3, 3))
    masks = noise > np.quantile(noise, 0.8)
    masks[0] = False  # an empty frame
    masks[1, :, 0] = True  # touches the left border
    masks[1, -1, :] = True  # and the bottom border
    return masks


# --- grow ---------------------------------------------------------------------------------------


def test_footprints() -> None:
    assert grow_footprint("diamond").astype(int).tolist() == [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    assert grow_footprint("square").all()
    with pytest.raises(ValueError, match="diamond, square"):
        grow_footprint("circle")  # type: ignore[arg-type]


def test_grow_single_pixel_diamond_and_square() -> None:
    m = np.zeros((9, 9), bool)
    m[4, 4] = True
    diamond = grow_masks(m, 2, "diamond")
    yy, xx = np.mgrid[:9, :9]
    assert (diamond == (abs(yy - 4) + abs(xx - 4) <= 2)).all()  # L1 ball, 13 pixels
    assert diamond.sum() == 13
    square = grow_masks(m, 2, "square")
    assert (square == ((abs(yy - 4) <= 2) & (abs(xx - 4) <= 2))).all()  # L-inf ball, 5x5
    assert square.sum() == 25


def test_grow_zero_and_shrink() -> None:
    m = np.zeros((7, 7), np.uint8)
    m[1:6, 1:6] = 255
    assert (grow_masks(m, 0) == (m > 0)).all()
    shrunk = grow_masks(m, -1, "square")
    expected = np.zeros((7, 7), bool)
    expected[2:5, 2:5] = True
    assert (shrunk == expected).all()
    # Diamond erosion of a 5x5 square by 2 leaves only the centre.
    assert grow_masks(m, -2, "diamond").sum() == 1


def test_mask_touching_border_is_not_eroded_from_outside() -> None:
    # scipy's default mode='reflect' (what ComfyUI uses): the image edge is not background.
    m = np.zeros((6, 6), bool)
    m[:3, :3] = True
    shrunk = grow_masks(m, -1, "diamond")
    expected = np.zeros((6, 6), bool)
    expected[:2, :2] = True
    assert (shrunk == expected).all()
    grown = grow_masks(m, 1, "diamond")
    assert grown[3, :3].all() and grown[:3, 3].all() and not grown[3, 3]


@pytest.mark.parametrize("expand", [-3, -1, 1, 2, 5])
@pytest.mark.parametrize("shape", ["diamond", "square"])
def test_grow_matches_comfyui_node(expand: int, shape: str) -> None:
    masks = random_blobs(expand + 10, (4, 40, 56))
    ours = grow_masks(masks.astype(np.uint8) * 255, expand, shape)  # type: ignore[arg-type]
    ref = comfy_grow_mask(masks, expand, tapered_corners=shape == "diamond") > 0
    assert ours.dtype == bool and ours.shape == masks.shape
    assert (ours == ref).all()


def test_grow_keeps_frames_apart() -> None:
    masks = np.zeros((3, 8, 8), bool)
    masks[1, 4, 4] = True
    out = grow_masks(masks, 3)
    assert not out[0].any() and not out[2].any() and out[1].sum() == 25


# --- blockify -----------------------------------------------------------------------------------


def test_blockify_hand_computed_remainder_goes_to_last_block() -> None:
    # bbox 7 wide x 5 high at (x=1..7, y=2..6), block 3: w_div = 2, w_slice = 3 -> columns [1,4) and
    # [4,8); h_div = 1 -> one row band. Only pixel (x=7, y=6) and (x=1, y=2) are on.
    m = np.zeros((10, 10), bool)
    m[2, 1] = True
    m[6, 7] = True
    out = blockify_frame(m, 3)
    expected = np.zeros((10, 10), bool)
    expected[2:7, 1:8] = True  # both column blocks hold a pixel, the single row band spans the bbox
    assert (out == expected).all()
    m2 = m.copy()
    m2[6, 7] = False
    m2[2, 3] = True  # now only the first column block has pixels; bbox = x 1..3
    out2 = blockify_frame(m2, 3)
    assert out2.sum() == 3 and out2[2, 1:4].all()


def test_blockify_l_shape_keeps_its_notch() -> None:
    # An L: a bounding-box mask would fill the top-right 8x8 notch; blockify with block 4 must not.
    m = np.zeros((20, 20), bool)
    m[2:18, 2:6] = True  # vertical bar
    m[14:18, 2:18] = True  # foot
    out = blockify_frame(m, 4)
    bbox = np.zeros_like(m)
    bbox[2:18, 2:18] = True
    assert (out >= m).all()  # covers the mask
    assert not out[2:14, 6:18].any()  # the notch stays empty
    assert out.sum() < bbox.sum()
    assert not (out == bbox).all()


def test_blockify_two_blobs_keep_the_gap() -> None:
    m = np.zeros((32, 64), bool)
    m[4:12, 4:12] = True
    m[20:28, 48:60] = True
    out = blockify_frame(m, 8)
    assert out[4:12, 4:12].all() and out[20:28, 48:60].all()
    assert not out[4:12, 28:40].any()  # between the blobs: off, a bbox would be on
    assert not out[20:28, 4:20].any()


def test_blockify_bbox_smaller_than_block_is_the_bbox() -> None:
    m = np.zeros((16, 16), bool)
    m[3, 5] = True
    m[7, 9] = True  # bbox 5x5 < block 32: one block = the bbox rectangle
    out = blockify_frame(m, 32)
    expected = np.zeros_like(m)
    expected[3:8, 5:10] = True
    assert (out == expected).all()


def test_blockify_empty_frames_stay_empty() -> None:
    masks = np.zeros((3, 12, 12), np.uint8)
    masks[1, 2:5, 2:5] = 1
    out = blockify_masks(masks, 8)
    assert not out[0].any() and not out[2].any() and out[1].any()
    assert not blockify_frame(np.zeros((5, 5)), 8).any()


def test_blockify_mask_touching_border() -> None:
    m = np.zeros((20, 20), bool)
    m[:, 0] = True
    m[19, :] = True
    out = blockify_frame(m, 5)
    assert out[:, 0].all() and out[19].all()
    assert not out[0:15, 5:20].any()


@pytest.mark.parametrize("block", [3, 8, 13, 32])
def test_blockify_matches_kjnodes(block: int) -> None:
    masks = random_blobs(block, (5, 70, 90))
    ours = blockify_masks(masks, block)
    assert (ours == (kj_blockify(masks, block) > 0)).all()


def test_blockify_snap16_grid_is_latent_aligned() -> None:
    m = np.zeros((64, 80), bool)
    m[17, 33] = True  # lies in the 32-px cell rows 0..31, cols 32..63
    m[40, 70] = True  # cell rows 32..63, cols 64..79 (clipped at the frame edge)
    out = blockify_frame(m, 32, snap16=True)
    expected = np.zeros_like(m)
    expected[0:32, 32:64] = True
    expected[32:64, 64:80] = True
    assert (out == expected).all()
    # A block size that is not a multiple of 16 rounds up: 20 -> 32-px cells.
    assert (blockify_frame(m, 20, snap16=True) == expected).all()
    # Edges fall on multiples of 16 in both directions.
    rows = np.flatnonzero(np.diff(out.any(axis=1).astype(int))) + 1
    cols = np.flatnonzero(np.diff(out.any(axis=0).astype(int))) + 1
    assert all(r % 16 == 0 for r in rows) and all(c % 16 == 0 for c in cols)


def test_blockify_output_covers_input() -> None:
    masks = random_blobs(7, (3, 50, 50))
    for snap in (False, True):
        out = blockify_masks(masks, 8, snap16=snap)
        assert (out >= masks).all()


def test_blockify_rejects_bad_block() -> None:
    with pytest.raises(ValueError, match="block size"):
        blockify_frame(np.ones((4, 4)), 0)
