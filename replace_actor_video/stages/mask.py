"""The contour mask for replace mode (SAM2 by points → grow → blockify, as ComfyUI users know it):
inside run_preprocessing.py (`--mask_mode contour`, the default in replace mode) or on its own on an
existing preprocessing folder (run_mask.py), so a user can re-mask without redoing the pose."""

from __future__ import annotations

import sys
from pathlib import Path

from ..core.errors import UserError
from ..core.options import as_dict
from ..core.paths import absolute
from ..core.rundir import RunContext, describe_path, fingerprint
from ..core.stage_cli import RunOptions
from ..core.stage_cli import main as stage_main
from ..mask.options import MaskOptions, MaskStageOptions, check_ready, sam2_checkpoint
from ..mask.step import LABEL, OUTPUTS, contour_step, worker_argv
from ..upstream.wan.preprocess import read_record

STAGE = "mask"


def run(opts: MaskStageOptions, mask: MaskOptions, run_opts: RunOptions, *, ctx: RunContext) -> Path:
    """Re-mask `src_root_path` in place: our pair replaces src_mask/src_bg, the official pair is kept in
    official_mask/ (the first time), mask_preview.mp4 shows the result."""
    folder = absolute(opts.src_root_path)
    record = read_record(folder) or {}
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
        ctx.step(LABEL, worker_argv(folder, video, mask, checkpoint=checkpoint, resolution=resolution, fps=fps),
                 stage=STAGE)
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
