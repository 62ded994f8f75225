"""The contour mask's options, declared once: run_preprocessing.py, run_mask.py, refine, the pipeline, the
dataset builder and the mask worker (`python -m replace_actor_video.mask`) all parse them from here."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from ..core import config
from ..core.errors import UserError
from ..core.options import option
from ..core.values import parse_resolution

SAM2_DEFAULT = Path("process_checkpoint") / "sam2" / "sam2_hiera_large.pt"  # under the Wan2.2-Animate checkpoint
GROW_SHAPES = ("diamond", "square")  # ComfyUI GrowMask tapered_corners=True / False (grow.py)
BLOCK_RANGE = (1, 4096)  # px; KJNodes' BlockifyMask allows 8..512, 32 is ComfyUI's default


@dataclass(kw_only=True)
class MaskOptions:
    """Replace-mode mask (contour = SAM2 by points → grow → blockify)"""

    mask_mode: str = option(
        "contour",
        choices=("contour", "official"),
        label="Mask shape",
        help="replace mode: contour mask, or the "
        "official one (bbox of a dilated SAM2 mask, shaped by --iterations/--k/--w_len/--h_len)",
        group="mask",
    )
    points: str = option(
        "auto",
        label="Clicks on the person",
        help="clicks for SAM2: a points JSON (docs/MASK.md; the UI editor writes it) or "
        "'auto' (clicks on the skeleton of src_pose.mp4)",
        widget="points",
        group="mask",
    )
    points_every: int = option(
        100, label="Automatic clicks every N frames", help="'auto' points: click frames 0, K, 2K, ...", group="mask"
    )
    mask_grow: int = option(
        10, label="Grow mask (px)", help="grow the mask by N px (ComfyUI GrowMask; negative shrinks)", group="mask"
    )
    mask_grow_shape: str = option(
        "diamond",
        choices=GROW_SHAPES,
        label="Grow shape",
        help="diamond = GrowMask tapered corners, square = not tapered",
        group="mask",
    )
    mask_block: int = option(
        32,
        label="Block size (px)",
        help="blockify cell size in px (ComfyUI BlockifyMask); cells anchor at the mask box",
        group="mask",
    )
    mask_snap16: bool = option(
        False,
        label="Blocks on the 16-px grid",
        help="anchor blockify cells to the 16-px latent grid instead",
        group="mask",
    )
    sam2_checkpoint: str | None = option(
        None,
        server="weights",
        label="SAM2 checkpoint",
        help="SAM2 or SAM2.1 checkpoint (config inferred from its name); "
        "default: <ckpt_dir>/process_checkpoint/sam2/sam2_hiera_large.pt",
        group="mask",
    )
    sam2_config: str | None = option(
        None, server="location", help="SAM2 config name when the checkpoint name does not tell it", group="mask"
    )
    mask_chunk_frames: int = option(
        400,
        label="SAM2 frames per session",
        help="SAM2 frames per session (memory bound for long videos)",
        group="mask",
    )
    mask_device: str = option(
        "auto", choices=("auto", "cuda", "cpu"), label="SAM2 device", help="where SAM2 runs", group="mask"
    )
    sam2_image_size: int | None = option(
        None,
        label="SAM2 input size",
        help="SAM2 input size (default 1024; smaller is faster and coarser, e.g. 256 for a quick CPU try)",
        group="mask",
    )


@dataclass(kw_only=True)
class MaskStageOptions:
    """Re-mask an existing replace-mode preprocessing folder"""

    src_root_path: str = option(
        "process_results",
        label="Preprocessing folder",
        help="the replace-mode preprocessing folder",
        widget="dir",
        group="inputs",
    )
    video_path: str | None = option(
        None,
        label="Driving video",
        help="the driving video (default: the one recorded by run_preprocessing.py)",
        widget="video",
        group="inputs",
    )
    resolution: tuple[int, int] | None = option(
        None, parse=parse_resolution, nargs="+", help="--resolution used in preprocessing (default: recorded)"
    )
    fps: int | None = option(None, help="--fps used in preprocessing (default: recorded, else src_bg.mp4's)")
    ckpt_dir: str = config.CHECKPOINT.option(help="Wan2.2-Animate-14B checkpoint folder")


def validate(mask: MaskOptions) -> None:
    """The option values the contour step can work with (what the files hold is checked when it runs)."""
    if not BLOCK_RANGE[0] <= mask.mask_block <= BLOCK_RANGE[1]:
        raise UserError(f"--mask_block {mask.mask_block}: use {BLOCK_RANGE[0]}..{BLOCK_RANGE[1]} px (32 as in ComfyUI)")
    if mask.points_every < 1:
        raise UserError(f"--points_every {mask.points_every}: must be at least 1")
    if mask.mask_chunk_frames < 2:
        raise UserError(f"--mask_chunk_frames {mask.mask_chunk_frames}: use at least 2 (400 as upstream)")


def check_ready(mask: MaskOptions) -> None:
    """What the contour step needs beyond valid values: the sam2 package and the points file."""
    validate(mask)
    if importlib.util.find_spec("sam2") is None:
        raise UserError("the contour mask needs the sam2 package (pip install sam2), or pass --mask_mode official")
    if mask.points != "auto" and not Path(mask.points).is_file():
        raise UserError(f"--points {mask.points}: file not found; pass a points JSON (docs/MASK.md) or 'auto'")


def sam2_checkpoint(mask: MaskOptions, ckpt_dir: Path) -> Path:
    path = Path(mask.sam2_checkpoint).expanduser().resolve() if mask.sam2_checkpoint else ckpt_dir / SAM2_DEFAULT
    if not path.is_file():
        raise UserError(f"{path}: SAM2 checkpoint not found; pass --sam2_checkpoint or --mask_mode official")
    return path
