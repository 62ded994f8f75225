"""The contour mask for replace mode (SAM2 by points → grow → blockify, as ComfyUI users know it):
inside run_preprocessing.py (`--mask_mode contour`, the default in replace mode) or on its own on an
existing preprocessing folder (run_mask.py), so a user can re-mask without redoing the pose."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import UserError
from ..core.options import as_dict
from ..core.paths import absolute
from ..core.planning import Plan, Problems
from ..core.rundir import RunContext, describe_path, fingerprint
from ..core.stage_cli import RunOptions, plan_stage
from ..core.stage_cli import main as stage_main
from ..mask.options import MaskOptions, MaskStageOptions, check_ready, sam2_checkpoint
from ..mask.step import LABEL, OUTPUTS, check_points, contour_step, worker_argv
from ..media.probe import probe_video
from ..upstream.wan.preprocess import read_record

STAGE = "mask"
OPTION_CLASSES = (MaskStageOptions, MaskOptions, RunOptions)


@dataclass(frozen=True)
class Checked:
    """The folder, the driving video, the preprocessing's --resolution and --fps, the SAM2 checkpoint."""

    folder: Path
    video: Path
    resolution: tuple[int, int]
    fps: int | None
    checkpoint: Path
    resolved: dict[str, Any] = dataclasses.field(default_factory=dict)

    def facts(self) -> dict[str, Any]:
        return {"resolution": self.resolution, "fps": self.fps, "sam2_checkpoint": str(self.checkpoint)}


def check(
    opts: MaskStageOptions, mask: MaskOptions, run_opts: RunOptions, problems: Problems, *, ctx: RunContext
) -> Checked | None:
    """Every problem re-masking `src_root_path` would meet, added to `problems`; what it resolved when none."""
    before = len(problems)
    folder = absolute(opts.src_root_path)
    record = read_record(folder) or {}
    video = absolute(opts.video_path) if opts.video_path else Path(record.get("video_path", ""))
    if not opts.video_path and not record:
        problems.add(
            f"{folder}: no rav_preprocess.json; pass --video_path (and --resolution/--fps used)",
            option="src_root_path",
            stage=STAGE,
        )
    elif not video.is_file():
        problems.add(f"{video}: driving video not found; pass --video_path", option="video_path", stage=STAGE)
    with problems.check(option="points", stage=STAGE):
        check_ready(mask)
    checkpoint = None
    with problems.check(option="sam2_checkpoint", stage=STAGE):
        checkpoint = sam2_checkpoint(mask, absolute(opts.ckpt_dir))
    if mask.points != "auto" and not problems.about("points"):
        with problems.check(option="points", stage=STAGE):
            background = folder / "official_mask" / "src_bg.mp4"
            bg = probe_video(background if background.is_file() else folder / "src_bg.mp4", count_frames=True)
            check_points(mask.points, bg.width, bg.height, bg.frames)
    if len(problems) > before:
        return None
    resolution = opts.resolution or tuple(record.get("resolution", (1280, 720)))
    fps = opts.fps if opts.fps is not None else record.get("fps_option")
    return Checked(folder, video, resolution, fps, checkpoint)


def run(opts: MaskStageOptions, mask: MaskOptions, run_opts: RunOptions, *, ctx: RunContext) -> Path:
    """Re-mask `src_root_path` in place: our pair replaces src_mask/src_bg, the official pair is kept in
    official_mask/ (the first time), mask_preview.mp4 shows the result."""
    problems = Problems()
    checked = check(opts, mask, run_opts, problems, ctx=ctx)
    if checked is None:
        raise UserError(problems.items[0].message)
    folder, video = checked.folder, checked.video
    argv = worker_argv(
        folder, video, mask, checkpoint=checked.checkpoint, resolution=checked.resolution, fps=checked.fps
    )
    if ctx.dry_run:
        ctx.step(LABEL, argv, stage=STAGE, inputs=[folder, video], expected_outputs=[folder / n for n in OUTPUTS])
        return folder
    inputs = {"src_root_path": describe_path(folder), "video_path": describe_path(video)}
    with ctx.running(
        STAGE,
        options={**as_dict(opts), **as_dict(mask)},
        inputs=inputs,
        upstream={"sam2_checkpoint": str(checked.checkpoint)},
        fp=fingerprint([as_dict(mask), inputs]),
        outputs=[folder / name for name in OUTPUTS],
    ):
        contour_step(
            ctx,
            stage=STAGE,
            folder=folder,
            video=video,
            mask=mask,
            checkpoint=checked.checkpoint,
            resolution=checked.resolution,
            fps=checked.fps,
        )
    ctx.say(f"contour mask done: {folder / 'src_mask.mp4'} (preview: {folder / 'mask_preview.mp4'})")
    return folder


def plan(values: Mapping[str, Any]) -> Plan:
    """The plan of `run_mask.py` with these option values (core/stage_cli.plan_stage)."""
    return plan_stage(STAGE, OPTION_CLASSES, values, check=check, run=run)


def main(argv: list[str] | None = None) -> int:
    return stage_main(
        description="Contour mask for a replace-mode preprocessing folder (SAM2 by points → grow → blockify).",
        option_classes=OPTION_CLASSES,
        plan=plan,
        run=run,
        argv=argv,
        stage=STAGE,
    )


if __name__ == "__main__":
    sys.exit(main())
