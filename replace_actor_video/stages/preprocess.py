"""Stage 1: official Wan2.2 preprocessing (pose, face, reference; replace mode adds background and mask)."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..core.atomic import atomic_dir
from ..core.config import upstream_commit
from ..core.errors import UserError
from ..core.options import as_dict
from ..core.paths import absolute, check_output_dir
from ..core.planning import Plan, Problems
from ..core.rundir import RunContext, describe_path, fingerprint
from ..core.stage_cli import RunOptions, plan_stage
from ..core.stage_cli import main as stage_main
from ..mask.options import SAM2_DEFAULT, MaskOptions, check_ready, sam2_checkpoint
from ..mask.step import LABEL, OUTPUTS, check_points, contour_step, worker_argv
from ..media.probe import VideoInfo, check_image, check_size, probe_input
from ..upstream.wan import preprocess as wan_preprocess
from ..upstream.wan.preprocess import PreprocessOptions

STAGE = "preprocess"
OPTION_CLASSES = (PreprocessOptions, MaskOptions, RunOptions)


@dataclass(frozen=True)
class Checked:
    """What the checks resolved: the video, the planned preprocessing (what its record will say) and the models."""

    video: VideoInfo
    planned: dict[str, Any]  # rav_preprocess.json as the run will write it, plus the frame size
    process_checkpoint: Path
    sam2: Path | None  # the SAM2 checkpoint of the contour mask (replace mode, --mask_mode contour)
    resolved: dict[str, Any] = dataclasses.field(default_factory=dict)  # no option value is decided here

    def facts(self) -> dict[str, Any]:
        return {
            "fps": Fraction(self.planned["fps"]),
            "frames": self.planned["frames"],
            "size": (self.planned["width"], self.planned["height"]),
        }


def check(
    opts: PreprocessOptions,
    mask: MaskOptions,
    run_opts: RunOptions,
    problems: Problems,
    *,
    ctx: RunContext,
    planned: VideoInfo | None = None,
) -> Checked | None:
    """Every problem preprocessing `opts` would meet, added to `problems` (none is raised); what it resolved when
    there is none. `planned` describes a driving video an earlier step writes (refine's input)."""
    before = len(problems)
    for option, message in wan_preprocess.validation(opts):
        problems.add(message, option=option, stage=STAGE)
    video = reference = None
    with problems.check(option="video_path", stage=STAGE):
        video = probe_input(opts.video_path, dry_run=ctx.dry_run, planned=planned)
        check_size(opts.video_path, video.width, video.height, "video")
    with problems.check(option="refer_path", stage=STAGE):
        reference = check_image(opts.refer_path)
    video_path, refer_path, save_path = absolute(opts.video_path), absolute(opts.refer_path), absolute(opts.save_path)
    with problems.check(option="save_path", stage=STAGE):
        if not problems.mentions(str(save_path.parent)):  # its folder refused already (a --run_dir that is a file)
            check_output_dir(
                save_path,
                flag="--save_path",
                inputs=[video_path, refer_path],
                may_replace=run_opts.overwrite or ctx.owns(STAGE, save_path),
            )
    wan22, ckpt = absolute(opts.wan22_dir), absolute(opts.ckpt_dir)
    process_checkpoint = ckpt / "process_checkpoint"
    with problems.check(option="wan22_dir", stage=STAGE):
        wan_preprocess.check_wan22(wan22)
    with problems.check(option="ckpt_dir", stage=STAGE):
        wan_preprocess.check_process_checkpoint(
            ckpt, replace=opts.replace, use_flux=opts.use_flux and not problems.about("use_flux")
        )
    sam2 = None
    if opts.replace and mask.mask_mode == "contour":
        with problems.check(option="points", stage=STAGE):
            check_ready(mask)
        with problems.check(option="sam2_checkpoint", stage=STAGE):
            sam2 = sam2_checkpoint(mask, ckpt)
    if video is None or reference is None or problems.about("resolution") or problems.about("fps"):
        return None
    width = height = frames = 0
    record = None
    with problems.check(option="resolution", stage=STAGE):
        width, height = wan_preprocess.frame_size(opts, video=(video.width, video.height), reference=reference)
        fps, frames = wan_preprocess.sampled_frames(video.frames, video.fps, opts.fps, video.duration)
        record = {
            "video_path": str(video.path.resolve()),
            "has_audio": video.has_audio,
            "fps": str(fps),
            "frames": frames,
            "width": width,
            "height": height,
        }
    if record is None:
        return None
    if frames < 2:
        problems.add(
            f"{video_path}: sampled at {float(fps):g} fps it gives {frames} frame(s); a video needs at least "
            "2 (pass a longer video or a higher --fps)",
            option="video_path",
            stage=STAGE,
        )
    if sam2 is not None and mask.points != "auto" and not problems.about("points"):
        with problems.check(option="points", stage=STAGE):
            check_points(mask.points, width, height, frames)
    return Checked(video, record, process_checkpoint, sam2) if len(problems) == before else None


def run(
    opts: PreprocessOptions,
    mask: MaskOptions,
    run_opts: RunOptions,
    *,
    ctx: RunContext,
    resume: bool = False,
    planned: VideoInfo | None = None,
) -> Path:
    """Run the official preprocessing into `save_path` (atomically) and check its outputs. With `resume`,
    a finished run of the same inputs and options in this run directory is kept instead; `planned` stands in
    for a driving video that an earlier stage of a dry-run pipeline has not written yet (refine)."""
    problems = Problems()
    checked = check(opts, mask, run_opts, problems, ctx=ctx, planned=planned)
    if checked is None:
        raise UserError(problems.items[0].message)
    wan22, ckpt = absolute(opts.wan22_dir), absolute(opts.ckpt_dir)
    video_path, refer_path, save_path = absolute(opts.video_path), absolute(opts.refer_path), absolute(opts.save_path)
    inputs = {"video_path": describe_path(video_path), "refer_path": describe_path(refer_path)}
    upstream = {"Wan2.2": {"path": str(wan22), "commit": upstream_commit(wan22)}, "checkpoint": str(ckpt)}
    options = {**as_dict(opts), **({"mask": as_dict(mask)} if opts.replace else {})}
    fp = fingerprint([options, inputs, upstream])
    if resume and not ctx.dry_run and ctx.is_done(STAGE, fp):
        ctx.say(f"preprocess: up to date, keeping {save_path}")
        return save_path

    video, fps = checked.video, Fraction(checked.planned["fps"])
    resolved = dataclasses.replace(
        opts,
        wan22_dir=str(wan22),
        ckpt_dir=str(ckpt),
        video_path=str(video_path),
        refer_path=str(refer_path),
        save_path=str(save_path),
    )
    call = wan_preprocess.PreprocessCall.from_options(resolved, process_checkpoint=checked.process_checkpoint)
    contour = checked.sam2 is not None
    if ctx.dry_run:
        ctx.step(
            "preprocess (official preprocess_data.py)",
            call.argv(),
            stage=STAGE,
            inputs=[video_path, refer_path],
            expected_outputs=call.expected_outputs(),
        )
        if contour:
            ctx.step(
                LABEL,
                worker_argv(
                    save_path,
                    video_path,
                    mask,
                    checkpoint=checked.sam2 or ckpt / SAM2_DEFAULT,
                    resolution=opts.resolution,
                    fps=opts.fps,
                ),
                stage=STAGE,
                inputs=[video_path, save_path / "src_bg.mp4"],
                expected_outputs=[save_path / n for n in OUTPUTS],
            )
        return save_path

    with ctx.running(STAGE, options=options, inputs=inputs, upstream=upstream, fp=fp, outputs=[save_path]):
        with atomic_dir(save_path) as tmp:
            tmp_call = call.writing_to(tmp)
            ctx.step(
                "preprocess (official preprocess_data.py)",
                tmp_call.argv(),
                stage=STAGE,
                expected_outputs=tmp_call.expected_outputs(),
                cwd=ctx.scratch(STAGE),
            )
            if contour:
                contour_step(
                    ctx,
                    stage=STAGE,
                    folder=tmp,
                    video=video_path,
                    mask=mask,
                    checkpoint=checked.sam2,
                    resolution=opts.resolution,
                    fps=opts.fps,
                )
            frames = wan_preprocess.check_outputs(tmp, replace=opts.replace)
            wan_preprocess.write_record(
                tmp,
                video=video.path.resolve(),
                has_audio=video.has_audio,
                fps=fps,
                frames=frames,
                opts=opts,
                mask_mode=mask.mask_mode if opts.replace else None,
            )
    ctx.say(f"preprocessing done: {save_path} ({frames} frames at {fps} fps)")
    return save_path


def plan(values: Mapping[str, Any]) -> Plan:
    """The plan of `run_preprocessing.py` with these option values (core/stage_cli.plan_stage)."""
    return plan_stage(STAGE, OPTION_CLASSES, values, check=check, run=run)


def main(argv: list[str] | None = None) -> int:
    return stage_main(
        description="Stage 1: Wan2.2-Animate preprocessing (official preprocess_data.py).",
        option_classes=OPTION_CLASSES,
        plan=plan,
        run=run,
        argv=argv,
        stage=STAGE,
    )


if __name__ == "__main__":
    sys.exit(main())
