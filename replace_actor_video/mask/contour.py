"""The contour mask step: replace the official rectangle mask of a replace-mode preprocessing folder
with a ComfyUI-style contour (SAM2 by clicks -> GrowMask -> BlockifyMask).

On a folder written by Wan2.2's preprocess_data.py --replace_flag (src_pose.mp4, src_face.mp4,
src_ref.png, src_bg.mp4, src_mask.mp4):
  1. the driving video's frames are rebuilt exactly as upstream samples and resizes them
     (get_frame_indices + resize_by_area with divisor 16, reproduced in upstream/wan/preprocess.py),
     checked against src_bg.mp4's size and frame count;
  2. SAM2 segments the person from the clicks (a points JSON, or 'auto' = clicks on the skeleton
     drawn in src_pose.mp4), then grow and blockify;
  3. frames where SAM2 lost the person take the nearest frame's mask (upstream crashes there, #300);
  4. the official src_mask.mp4/src_bg.mp4 move to official_mask/ (once: a re-run keeps them), and our
     src_mask.mp4 (lossless, exactly 0/255), src_bg.mp4 (frame with the mask area black, as upstream),
     mask_preview.mp4 and mask_points.json (the clicks used, editable for a re-run) are written.
Every file appears under its final name only when complete.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..core.atomic import partial_name
from ..core.errors import UserError
from ..media.frames import VideoWriter, iter_frames
from ..media.probe import probe_video
from ..upstream.wan.preprocess import frame_indices, upstream_resize, upstream_size
from .blockify import blockify_frame
from .grow import grow_masks
from .options import MaskOptions, validate
from .points import PointsSpec, load_points, points_from_skeleton, resolve_points, save_points
from .preview import render_preview
from .sam2_video import Sam2Settings, Sam2VideoSegmenter, segment_video

log = logging.getLogger(__name__)

OFFICIAL_DIR = "official_mask"
MASK_NAME, BG_NAME, POSE_NAME = "src_mask.mp4", "src_bg.mp4", "src_pose.mp4"
PREVIEW_NAME, POINTS_NAME = "mask_preview.mp4", "mask_points.json"


@dataclass(frozen=True)
class ContourResult:
    mask_path: Path
    bg_path: Path
    preview_path: Path
    points_path: Path
    official_dir: Path
    frames: int
    width: int
    height: int
    filled_frames: tuple[int, ...]  # frames whose empty SAM2 mask was replaced by the nearest one
    seconds: float


def sampled_frames(video: Path, indices: Sequence[int], area: int) -> Iterator[np.ndarray]:
    """The driving video's frames at `indices` (non-decreasing; repeats allowed), resized as upstream."""
    pos = 0
    last: np.ndarray | None = None
    for i, frame in enumerate(iter_frames(video)):
        if pos >= len(indices):
            return
        if indices[pos] == i:
            last = upstream_resize(frame, area)
        while pos < len(indices) and indices[pos] == i:
            assert last is not None
            yield last
            pos += 1
    # decord clips indices to its frame count; a shorter decode repeats the last frame the same way.
    while pos < len(indices) and last is not None:
        yield last
        pos += 1


def fill_empty(packed: list[np.ndarray | None]) -> list[int]:
    """Replace each None (empty mask) by the nearest non-empty one (the earlier on a tie), in place;
    returns the filled frame indices. Raises UserError when every frame is empty."""
    full = [i for i, p in enumerate(packed) if p is not None]
    if not full:
        raise UserError(
            "SAM2 found the person in no frame; check the clicks (mask_points.json, or pass "
            "--points with clicks on the person) and the SAM2 checkpoint"
        )
    empty = [i for i, p in enumerate(packed) if p is None]
    full_arr = np.array(full)
    for i in empty:
        j = int(np.searchsorted(full_arr, i))
        candidates = [full_arr[k] for k in (j - 1, j) if 0 <= k < len(full_arr)]
        packed[i] = packed[int(min(candidates, key=lambda c: (abs(c - i), c)))]
    return empty


def _ranges(frames: Sequence[int]) -> str:
    parts, start = [], None
    for k, f in enumerate(frames):
        if start is None:
            start = f
        if k + 1 == len(frames) or frames[k + 1] != f + 1:
            parts.append(str(start) if start == f else f"{start}-{f}")
            start = None
    return ", ".join(parts)


def build_contour_mask(
    preprocess_dir: str | Path,
    video_path: str | Path,
    options: MaskOptions,
    *,
    resolution: tuple[int, int],
    fps: int | None,
    device: str,
) -> ContourResult:
    """Run the whole contour-mask step on a replace-mode preprocessing folder (see the module doc).
    `resolution` and `fps` are the preprocessing's --resolution and --fps (None: src_bg.mp4's rate);
    `options.sam2_checkpoint` is the checkpoint to load."""
    t0 = time.monotonic()
    validate(options)
    if options.sam2_checkpoint is None:
        raise UserError(
            "the contour mask needs a SAM2 checkpoint; pass --sam2_checkpoint "
            "(Wan2.2-Animate-14B/process_checkpoint/sam2/sam2_hiera_large.pt)"
        )
    folder = Path(preprocess_dir)
    video = Path(video_path)
    official = folder / OFFICIAL_DIR
    if official.exists() and not (official / BG_NAME).is_file():
        raise UserError(f"{official} exists without {BG_NAME}; move it away so the official pair can be kept there")
    # After a first run the official pair lives in official_mask/ and the folder holds ours.
    ref_dir = official if (official / BG_NAME).is_file() else folder
    for name in (BG_NAME, MASK_NAME):
        if not (ref_dir / name).is_file():
            raise UserError(f"{ref_dir / name} is missing; run replace-mode preprocessing into {folder} first")
    bg = probe_video(ref_dir / BG_NAME, count_frames=True)
    width, height, count = bg.width, bg.height, bg.frames
    src = probe_video(video, count_frames=True)
    if fps is None:
        rate = bg.fps
    else:  # -1 = the video's own rate, as upstream's --fps -1
        rate = src.fps if fps == -1 else Fraction(fps).limit_denominator(1001)
    indices = frame_indices(src.frames, float(src.fps), float(rate), src.duration)
    area = resolution[0] * resolution[1]
    if upstream_size(src.width, src.height, area) != (width, height):
        w, h = upstream_size(src.width, src.height, area)
        raise UserError(
            f"{video} resized for area {resolution[0]}x{resolution[1]} gives "
            f"{w}x{h} but {BG_NAME} is {width}x{height}; pass the --resolution and video used in preprocessing"
        )
    if len(indices) != count:
        raise UserError(
            f"{video} sampled at {float(rate):g} fps gives {len(indices)} frames but {BG_NAME} has {count}; "
            "pass the --fps and video used in preprocessing"
        )

    points = _points(folder, options, width, height, count)
    segmenter = Sam2VideoSegmenter(
        Sam2Settings(Path(options.sam2_checkpoint), options.sam2_config, device, options.sam2_image_size)
    )
    # Pass 1: masks, bit-packed (a 720p frame is 115 KB) so long videos fit in memory.
    packed: list[np.ndarray | None] = []
    for mask in segment_video(segmenter, sampled_frames(video, indices, area), points, options.mask_chunk_frames):
        if not mask.any():
            packed.append(None)
            continue
        grown = grow_masks(mask, options.mask_grow, options.mask_grow_shape)
        packed.append(np.packbits(blockify_frame(grown, options.mask_block, snap16=options.mask_snap16)))
    if len(packed) != count:
        raise UserError(f"{video} gave {len(packed)} frames, {count} expected; re-export the video")
    filled = fill_empty(packed)
    if filled:
        log.warning(
            "SAM2 lost the person on frames %s; their masks were copied from the nearest frame with one (check %s)",
            _ranges(filled),
            PREVIEW_NAME,
        )

    # Pass 2: write ours into a staging folder, then swap the pair in.
    stage = partial_name(folder / ".contour")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        hold = max(1, round(float(rate) / 2))  # clicks stay visible for half a second
        with (
            VideoWriter(stage / MASK_NAME, width, height, rate, mask=True) as mask_w,
            VideoWriter(stage / BG_NAME, width, height, rate) as bg_w,
            VideoWriter(folder / PREVIEW_NAME, width, height, rate, crf=20) as prev_w,
        ):
            for t, frame in enumerate(sampled_frames(video, indices, area)):
                bits = packed[t]
                assert bits is not None
                mask = np.unpackbits(bits, count=width * height).reshape(height, width).astype(bool)
                mask_w.write(mask)
                bg_w.write(np.where(mask[..., None], np.uint8(0), frame))
                clicks = next(
                    (points.for_frame(f) for f in range(t, max(-1, t - hold), -1) if points.for_frame(f) is not None),
                    None,
                )
                prev_w.write(render_preview(frame, mask, clicks))
        if not (official / BG_NAME).is_file():
            _keep_official(folder, official)
        for name in (MASK_NAME, BG_NAME):
            os.replace(stage / name, folder / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    save_points(points, folder / POINTS_NAME)
    return ContourResult(
        folder / MASK_NAME,
        folder / BG_NAME,
        folder / PREVIEW_NAME,
        folder / POINTS_NAME,
        official,
        count,
        width,
        height,
        tuple(filled),
        time.monotonic() - t0,
    )


def _keep_official(folder: Path, official: Path) -> None:
    """Put the official pair into official_mask/ in one rename (hard links, or copies across devices),
    so official_mask/ either holds both files or does not exist; ours then replace the originals."""
    staging = partial_name(official)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        for name in (MASK_NAME, BG_NAME):
            try:
                os.link(folder / name, staging / name)
            except OSError:
                shutil.copy2(folder / name, staging / name)
        os.replace(staging, official)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _points(folder: Path, options: MaskOptions, width: int, height: int, count: int) -> PointsSpec:
    if options.points != "auto":
        return resolve_points(load_points(options.points), width, height, count)
    pose = folder / POSE_NAME
    if not pose.is_file():
        raise UserError(f"{pose} is missing, so no automatic clicks; pass --points with a points JSON")
    info = probe_video(pose)
    if (info.width, info.height) != (width, height):
        raise UserError(
            f"{pose} is {info.width}x{info.height} but {BG_NAME} is {width}x{height}; pass --points with a points JSON"
        )
    return resolve_points(points_from_skeleton(iter_frames(pose), every=options.points_every), width, height, count)
