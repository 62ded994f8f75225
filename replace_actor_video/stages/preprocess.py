"""Stage 1: official Wan2.2 preprocessing (pose, face, reference; replace mode adds background and mask)."""

from __future__ import annotations

import dataclasses
import sys
from fractions import Fraction
from pathlib import Path

from ..core.atomic import atomic_dir
from ..core.config import upstream_commit
from ..core.errors import UserError
from ..core.options import as_dict
from ..core.paths import absolute, ensure_not_inside
from ..core.rundir import RunContext, describe_path, fingerprint
from ..core.stage_cli import RunOptions
from ..core.stage_cli import main as stage_main
from ..mask.options import SAM2_DEFAULT, MaskOptions, check_ready, sam2_checkpoint
from ..mask.step import LABEL, contour_step, worker_argv
from ..media.probe import VideoInfo, check_image, probe_input
from ..upstream.wan import preprocess as wan_preprocess
from ..upstream.wan.preprocess import PreprocessOptions, validate

STAGE = "preprocess"


def run(opts: PreprocessOptions, mask: MaskOptions, run_opts: RunOptions, *, ctx: RunContext,
        resume: bool = False, planned: VideoInfo | None = None) -> Path:
    """Run the official preprocessing into `save_path` (atomically) and check its outputs. With `resume`,
    a finished run of the same inputs and options in this run directory is kept instead; `planned` stands in
    for a driving video that an earlier stage of a dry-run pipeline has not written yet (refine)."""
    validate(opts)
    video = probe_input(opts.video_path, dry_run=ctx.dry_run, planned=planned)
    check_image(opts.refer_path)
    wan22, ckpt = absolute(opts.wan22_dir), absolute(opts.ckpt_dir)
    video_path, refer_path, save_path = absolute(opts.video_path), absolute(opts.refer_path), absolute(opts.save_path)
    ensure_not_inside(save_path, [video_path, refer_path])
    contour = opts.replace and mask.mask_mode == "contour"
    sam2 = None
    try:
        wan_preprocess.check_wan22(wan22)
        process_checkpoint = wan_preprocess.check_process_checkpoint(ckpt, replace=opts.replace, use_flux=opts.use_flux)
        if contour:
            check_ready(mask)
            sam2 = sam2_checkpoint(mask, ckpt)
    except UserError as exc:
        if not ctx.dry_run:
            raise
        ctx.say(f"warning: {exc}")
        process_checkpoint = ckpt / "process_checkpoint"
    inputs = {"video_path": describe_path(video_path), "refer_path": describe_path(refer_path)}
    upstream = {"Wan2.2": {"path": str(wan22), "commit": upstream_commit(wan22)}, "checkpoint": str(ckpt)}
    options = {**as_dict(opts), **({"mask": as_dict(mask)} if opts.replace else {})}
    fp = fingerprint([options, inputs, upstream])
    if resume and ctx.is_done(STAGE, fp):
        ctx.say(f"preprocess: up to date, keeping {save_path}")
        return save_path
    if save_path.exists() and any(save_path.iterdir()) and not (run_opts.overwrite or ctx.owns(STAGE, save_path)):
        raise UserError(f"{save_path} already holds results; choose another --save_path or pass --overwrite")

    fps = video.fps if opts.fps == -1 else Fraction(opts.fps)
    resolved = dataclasses.replace(opts, wan22_dir=str(wan22), ckpt_dir=str(ckpt), video_path=str(video_path),
                                   refer_path=str(refer_path), save_path=str(save_path))
    call = wan_preprocess.PreprocessCall.from_options(resolved, process_checkpoint=process_checkpoint)
    if ctx.dry_run:
        ctx.step("preprocess (official preprocess_data.py)", call.argv(), stage=STAGE)
        if contour:
            ctx.step(LABEL, worker_argv(
                save_path, video_path, mask, checkpoint=sam2 or ckpt / SAM2_DEFAULT, resolution=opts.resolution,
                fps=opts.fps), stage=STAGE)
        return save_path

    with ctx.running(STAGE, options=options, inputs=inputs, upstream=upstream, fp=fp, outputs=[save_path]):
        with atomic_dir(save_path) as tmp:
            tmp_call = call.writing_to(tmp)
            ctx.step("preprocess (official preprocess_data.py)", tmp_call.argv(), stage=STAGE,
                     expected_outputs=tmp_call.expected_outputs(), cwd=ctx.scratch(STAGE))
            if contour:
                assert sam2 is not None
                contour_step(ctx, stage=STAGE, folder=tmp, video=video_path, mask=mask, checkpoint=sam2,
                             resolution=opts.resolution, fps=opts.fps)
            frames = wan_preprocess.check_outputs(tmp, replace=opts.replace)
            wan_preprocess.write_record(tmp, video=video.path.resolve(), has_audio=video.has_audio, fps=fps,
                                        frames=frames, opts=opts, mask_mode=mask.mask_mode if opts.replace else None)
    ctx.say(f"preprocessing done: {save_path} ({frames} frames at {fps} fps)")
    return save_path


def main(argv: list[str] | None = None) -> int:
    return stage_main(description="Stage 1: Wan2.2-Animate preprocessing (official preprocess_data.py).",
                      option_classes=[PreprocessOptions, MaskOptions, RunOptions], run=run, argv=argv, stage=STAGE)


if __name__ == "__main__":
    sys.exit(main())
