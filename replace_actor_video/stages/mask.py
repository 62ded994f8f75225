"""The contour mask for replace mode (SAM2 by points → grow → blockify, as ComfyUI users know it):
inside run_preprocessing.py (`--mask_mode contour`, the default in replace mode) or on its own on an
existing preprocessing folder (run_mask.py), so a user can re-mask without redoing the pose."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import UserError
from ..core.options import as_dict, option
from ..core.process import own_module_env
from ..core.rundir import RunContext, describe_path, fingerprint
from ..core.values import parse_resolution
from .common import RunOptions, absolute, ckpt_option
from .common import main as stage_main

STAGE = "mask"
SAM2_DEFAULT = Path("process_checkpoint") / "sam2" / "sam2_hiera_large.pt"
OUTPUTS = ("src_mask.mp4", "src_bg.mp4", "mask_preview.mp4", "mask_points.json")


@dataclass(kw_only=True)
class MaskOptions:
    """Replace-mode mask (contour = SAM2 by points → grow → blockify)"""

    mask_mode: str = option("contour", choices=("contour", "official"), label="Mask shape",
                            help="replace mode: contour mask, or the "
                            "official one (bbox of a dilated SAM2 mask, shaped by --iterations/--k/--w_len/--h_len)",
                            group="mask")
    points: str = option("auto", label="Clicks on the person",
                         help="clicks for SAM2: a points JSON (docs/MASK.md; the UI editor writes it) or "
                         "'auto' (clicks on the skeleton of src_pose.mp4)", widget="points", group="mask")
    points_every: int = option(100, label="Automatic clicks every N frames",
                               help="'auto' points: click frames 0, K, 2K, ...", group="mask")
    mask_grow: int = option(10, label="Grow mask (px)",
                            help="grow the mask by N px (ComfyUI GrowMask; negative shrinks)", group="mask")
    mask_grow_shape: str = option("diamond", choices=("diamond", "square"),
                                  label="Grow shape",
                                  help="diamond = GrowMask tapered corners, square = not tapered", group="mask")
    mask_block: int = option(32, label="Block size (px)",
                             help="blockify cell size in px (ComfyUI BlockifyMask); cells anchor at the mask "
                             "box", group="mask")
    mask_snap16: bool = option(False, label="Blocks on the 16-px grid",
                               help="anchor blockify cells to the 16-px latent grid instead", group="mask")
    sam2_checkpoint: str | None = option(None, help="SAM2 or SAM2.1 checkpoint (config inferred from its name); "
                                         "default: <ckpt_dir>/process_checkpoint/sam2/sam2_hiera_large.pt",
                                         group="mask", server="weights",
                                         label="SAM2 checkpoint")
    sam2_config: str | None = option(None, help="SAM2 config name when the checkpoint name does not tell it",
                                     group="mask", server="location")
    mask_chunk_frames: int = option(400, label="SAM2 frames per session",
                                    help="SAM2 frames per session (memory bound for long videos)", group="mask")
    mask_device: str = option("auto", choices=("auto", "cuda", "cpu"), label="SAM2 device",
                              help="where SAM2 runs", group="mask")
    sam2_image_size: int | None = option(None, label="SAM2 input size",
                                         help="SAM2 input size (default 1024; smaller is faster and coarser, "
                                         "e.g. 256 for a quick CPU try)", group="mask")


@dataclass(kw_only=True)
class MaskStageOptions:
    """Re-mask an existing replace-mode preprocessing folder"""

    src_root_path: str = option("process_results", label="Preprocessing folder",
                                help="the replace-mode preprocessing folder", widget="dir",
                                group="inputs")
    video_path: str | None = option(None, label="Driving video", help="the driving video (default: the one recorded by "
                                    "run_preprocessing.py)", widget="video", group="inputs")
    resolution: tuple[int, int] | None = option(None, parse=parse_resolution, nargs="+",
                                                help="--resolution used in preprocessing (default: recorded)")
    fps: int | None = option(None, help="--fps used in preprocessing (default: recorded, else src_bg.mp4's)")
    ckpt_dir: str = ckpt_option()


def sam2_checkpoint(mask: MaskOptions, ckpt_dir: Path) -> Path:
    path = absolute(mask.sam2_checkpoint) if mask.sam2_checkpoint else ckpt_dir / SAM2_DEFAULT
    if not path.is_file():
        raise UserError(f"{path}: SAM2 checkpoint not found; pass --sam2_checkpoint or --mask_mode official")
    return path


def check_ready(mask: MaskOptions) -> None:
    if importlib.util.find_spec("sam2") is None:
        raise UserError("the contour mask needs the sam2 package (pip install sam2), or pass --mask_mode official")
    if mask.mask_block < 1 or mask.points_every < 1 or mask.mask_chunk_frames < 2:
        raise UserError("--mask_block and --points_every must be at least 1, --mask_chunk_frames at least 2")
    if mask.points != "auto" and not Path(mask.points).is_file():
        raise UserError(f"--points {mask.points}: file not found; pass a points JSON (docs/MASK.md) or 'auto'")


def worker_argv(folder: Path, video: Path, mask: MaskOptions, *, checkpoint: Path, resolution: tuple[int, int],
                fps: int | None) -> list[str]:
    """The contour step as a child process of the runner (see replace_actor_video/mask/__main__.py)."""
    options = {"sam2_checkpoint": str(checkpoint), "sam2_config": mask.sam2_config,
               "points": mask.points if mask.points == "auto" else str(absolute(mask.points)),
               "points_every": mask.points_every, "mask_grow": mask.mask_grow, "mask_grow_shape": mask.mask_grow_shape,
               "mask_block": mask.mask_block, "mask_snap16": mask.mask_snap16, "chunk_frames": mask.mask_chunk_frames,
               "device": mask.mask_device, "resolution_area": list(resolution), "fps": fps,
               "sam2_image_size": mask.sam2_image_size}
    return [sys.executable, "-m", "replace_actor_video.mask", "--preprocess_dir", str(folder),
            "--video_path", str(video), "--options", json.dumps(options)]


def contour_step(ctx: RunContext, *, stage: str, folder: Path, video: Path, mask: MaskOptions, checkpoint: Path,
                 resolution: tuple[int, int], fps: int | None) -> None:
    ctx.step("contour mask (SAM2 → grow → blockify)",
             worker_argv(folder, video, mask, checkpoint=checkpoint, resolution=resolution, fps=fps), stage=stage,
             expected_outputs=[folder / name for name in OUTPUTS], cwd=ctx.scratch(stage), env=own_module_env())


def run(opts: MaskStageOptions, mask: MaskOptions, run_opts: RunOptions, *, ctx: RunContext) -> Path:
    """Re-mask `src_root_path` in place: our pair replaces src_mask/src_bg, the official pair is kept in
    official_mask/ (the first time), mask_preview.mp4 shows the result."""
    from . import preprocess  # the record format lives with the stage that writes it

    folder = absolute(opts.src_root_path)
    record = preprocess.read_record(folder) or {}
    video = absolute(opts.video_path) if opts.video_path else Path(record.get("video_path", ""))
    if not opts.video_path and not record:
        raise UserError(f"{folder}: no rav_preprocess.json; pass --video_path (and --resolution/--fps used)")
    if not video.is_file():
        raise UserError(f"{video}: driving video not found; pass --video_path")
    resolution = opts.resolution or tuple(record.get("resolution", (1280, 720)))
    fps = opts.fps if opts.fps is not None else record.get("fps_option")
    check_ready(mask)
    checkpoint = sam2_checkpoint(mask, absolute(opts.ckpt_dir))
    if ctx.dry_run:
        ctx.step("contour mask (SAM2 → grow → blockify)",
                 worker_argv(folder, video, mask, checkpoint=checkpoint, resolution=resolution, fps=fps), stage=STAGE)
        return folder
    inputs = {"src_root_path": describe_path(folder), "video_path": describe_path(video)}
    with ctx.running(STAGE, options={**as_dict(opts), **as_dict(mask)}, inputs=inputs,
                     upstream={"sam2_checkpoint": str(checkpoint)}, fp=fingerprint([as_dict(mask), inputs]),
                     outputs=[folder / name for name in OUTPUTS]):
        contour_step(ctx, stage=STAGE, folder=folder, video=video, mask=mask, checkpoint=checkpoint,
                     resolution=resolution, fps=fps)
    ctx.say(f"contour mask done: {folder / 'src_mask.mp4'} (preview: {folder / 'mask_preview.mp4'})")
    return folder


def main(argv: list[str] | None = None) -> int:
    return stage_main(description="Contour mask for a replace-mode preprocessing folder (SAM2 by points → grow → "
                      "blockify).", option_classes=[MaskStageOptions, MaskOptions, RunOptions], run=run, argv=argv,
                      stage=STAGE)


if __name__ == "__main__":
    sys.exit(main())
