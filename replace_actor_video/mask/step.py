"""The contour step as a child process of the runner (logged, cancellable, its GPU memory freed when it ends,
like every upstream tool): `python -m replace_actor_video.mask` with the same options run_mask.py takes,
resolved by the stage (absolute paths, the checkpoint found, the preprocessing's resolution and fps), so the
worker parses them with the same specs, once."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from ..core.options import to_argv
from ..core.process import own_module_env
from ..core.rundir import RunContext
from .options import MaskOptions, MaskStageOptions

OUTPUTS = ("src_mask.mp4", "src_bg.mp4", "mask_preview.mp4", "mask_points.json")
LABEL = "contour mask (SAM2 → grow → blockify)"


def worker_argv(
    folder: Path, video: Path, mask: MaskOptions, *, checkpoint: Path, resolution: tuple[int, int], fps: int | None
) -> list[str]:
    where = MaskStageOptions(src_root_path=str(folder), video_path=str(video), resolution=resolution, fps=fps)
    points = mask.points if mask.points == "auto" else str(Path(mask.points).expanduser().resolve())
    mask = dataclasses.replace(mask, sam2_checkpoint=str(checkpoint), points=points)
    return [sys.executable, "-m", "replace_actor_video.mask", *to_argv(where), *to_argv(mask)]


def contour_step(
    ctx: RunContext,
    *,
    stage: str,
    folder: Path,
    video: Path,
    mask: MaskOptions,
    checkpoint: Path,
    resolution: tuple[int, int],
    fps: int | None,
) -> None:
    ctx.step(
        LABEL,
        worker_argv(folder, video, mask, checkpoint=checkpoint, resolution=resolution, fps=fps),
        stage=stage,
        expected_outputs=[folder / name for name in OUTPUTS],
        cwd=ctx.scratch(stage),
        env=own_module_env(),
    )


def check_points(path: str, width: int, height: int, frames: int) -> None:
    """A points JSON must parse and name only frames and pixels the preprocessing folder has (UserError)."""
    from .points import load_points, resolve_points  # numpy + scipy: only when a points file is given

    resolve_points(load_points(path), width, height, frames)
