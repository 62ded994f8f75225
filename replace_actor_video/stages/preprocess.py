"""Stage 1: official Wan2.2 preprocessing (pose, face, reference; replace mode adds background and mask)."""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ..adapters import wan_preprocess
from ..core.atomic import atomic_dir
from ..core.errors import StageFailed, UserError
from ..core.options import as_dict, option
from ..core.config import upstream_commit
from ..core.rundir import RunContext, describe_path, fingerprint
from ..core.values import parse_resolution
from ..media.probe import VideoInfo, check_image, probe_video
from .common import RunOptions, absolute, ckpt_option, ensure_not_inside, probe_input, wan22_option
from .common import main as stage_main
from .mask import SAM2_DEFAULT, MaskOptions, contour_step, sam2_checkpoint, worker_argv
from .mask import check_ready as check_mask_ready

STAGE = "preprocess"
RECORD = "rav_preprocess.json"  # what generation needs later: fps, frame count, source video (for audio)


@dataclass(kw_only=True)
class PreprocessOptions:
    """Preprocessing (official preprocess_data.py)"""

    video_path: str = option(label="Driving video", help="driving video", widget="video", group="inputs")
    refer_path: str = option(label="Character image",
                             help="reference image of the character", widget="image", group="inputs")
    save_path: str = option("process_results", label="Preprocessing folder",
                            help="folder for the preprocessing results", widget="dir",
                            group="outputs")
    resolution: tuple[int, int] = option((1280, 720), parse=parse_resolution, nargs="+",
                                         help="target area 'W H' or WxH; the video's aspect ratio is kept")
    fps: int = option(30, label="Frame rate",
                      help="frames per second to sample the driving video at; -1 keeps the source fps")
    replace: bool = option(False, label="Mode", switch=("Animate", "Replace"),
                           help="replace mode: put the character into the video's scene "
                           "(adds src_bg.mp4 and src_mask.mp4)", group="mode")
    retarget: bool = option(True, label="Fit the pose to the character",
                            help="animate mode: retarget the driving pose to the reference's body "
                            "proportions (--no-retarget to keep the raw pose)", group="mode")
    use_flux: bool = option(False, label="Normalise poses with FLUX",
                            help="animate mode with --retarget: normalise poses with FLUX.1 Kontext "
                            "(needs process_checkpoint/FLUX.1-Kontext-dev)", group="mode")
    iterations: int = option(3, label="Official mask: dilation passes",
                             help="replace mode, official mask: dilation iterations", group="mask")
    k: int = option(7, label="Official mask: dilation kernel",
                    help="replace mode, official mask: dilation kernel size", group="mask")
    w_len: int = option(1, label="Official mask: grid columns",
                        help="replace mode, official mask: grid cells across the mask box (1 = rectangle)",
                        group="mask")
    h_len: int = option(1, label="Official mask: grid rows",
                        help="replace mode, official mask: grid cells down the mask box (1 = rectangle)",
                        group="mask")
    wan22_dir: str = wan22_option()
    ckpt_dir: str = ckpt_option()


def validate(opts: PreprocessOptions) -> None:
    if opts.fps != -1 and not 1 <= opts.fps <= 120:
        raise UserError(f"--fps {opts.fps}: use a value from 1 to 120, or -1 for the source fps")
    if opts.use_flux and (opts.replace or not opts.retarget):
        raise UserError("--use_flux only works in animate mode with --retarget; drop --use_flux or --replace")
    for name in ("iterations", "k", "w_len", "h_len"):
        minimum = 0 if name == "iterations" else 1
        if getattr(opts, name) < minimum:
            raise UserError(f"--{name} {getattr(opts, name)}: must be at least {minimum}")


def run(opts: PreprocessOptions, mask: MaskOptions, run_opts: RunOptions, *, ctx: RunContext,
        resume: bool = False, planned: VideoInfo | None = None) -> Path:
    """Run the official preprocessing into `save_path` (atomically) and check its outputs. With `resume`,
    a finished run of the same inputs and options in this run directory is kept instead; `planned` stands in
    for a driving video that an earlier stage of a dry-run pipeline has not written yet (refine)."""
    validate(opts)
    video = probe_input(opts.video_path, ctx, planned)
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
            check_mask_ready(mask)
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
    call = wan_preprocess.PreprocessCall(
        wan22_dir=wan22, process_checkpoint=process_checkpoint, video_path=video_path, refer_path=refer_path,
        save_path=save_path, resolution=opts.resolution, fps=opts.fps, replace=opts.replace,
        retarget=opts.retarget, use_flux=opts.use_flux, iterations=opts.iterations, k=opts.k,
        w_len=opts.w_len, h_len=opts.h_len)
    if ctx.dry_run:
        ctx.step("preprocess (official preprocess_data.py)", call.argv(), stage=STAGE)
        if contour:
            ctx.step("contour mask (SAM2 → grow → blockify)", worker_argv(
                save_path, video_path, mask, checkpoint=sam2 or ckpt / SAM2_DEFAULT, resolution=opts.resolution,
                fps=opts.fps), stage=STAGE)
        return save_path

    with ctx.running(STAGE, options=options, inputs=inputs, upstream=upstream, fp=fp, outputs=[save_path]):
        with atomic_dir(save_path) as tmp:
            tmp_call = dataclasses.replace(call, save_path=tmp)
            ctx.step("preprocess (official preprocess_data.py)", tmp_call.argv(), stage=STAGE,
                     expected_outputs=tmp_call.expected_outputs(), cwd=ctx.scratch(STAGE))
            if contour:
                assert sam2 is not None
                contour_step(ctx, stage=STAGE, folder=tmp, video=video_path, mask=mask, checkpoint=sam2,
                             resolution=opts.resolution, fps=opts.fps)
            frames = check_outputs(tmp, replace=opts.replace)
            write_record(tmp, video=video.path.resolve(), has_audio=video.has_audio, fps=fps, frames=frames,
                         opts=opts, mask_mode=mask.mask_mode if opts.replace else None)
    ctx.say(f"preprocessing done: {save_path} ({frames} frames at {fps} fps)")
    return save_path


def check_outputs(folder: Path, *, replace: bool) -> int:
    """All videos of the mode must exist and agree in frame count; returns that count."""
    names = [n for n in (wan_preprocess.REPLACE_OUTPUTS if replace else wan_preprocess.ANIMATE_OUTPUTS)
             if n.endswith(".mp4")]
    counts = {}
    for name in names:
        try:
            counts[name] = probe_video(folder / name, count_frames=True).frames
        except UserError as exc:
            raise StageFailed(f"preprocessing wrote an unreadable {name}: {exc}") from None
    check_image(folder / "src_ref.png")
    if len(set(counts.values())) != 1:
        raise StageFailed(f"preprocessing outputs disagree in frame count: {counts}")
    return counts[names[0]]


def write_record(folder: Path, *, video: Path, has_audio: bool, fps: Fraction, frames: int,
                 opts: PreprocessOptions, mask_mode: str | None) -> None:
    """What later steps need: the fps and frame count (retiming), the source video (audio, re-masking) and
    the options that fixed the frame size and sampling (run_mask.py reproduces them)."""
    record = {"video_path": str(video), "has_audio": has_audio, "fps": str(fps), "frames": frames,
              "mode": "replace" if opts.replace else "animate", "mask_mode": mask_mode,
              "resolution": list(opts.resolution), "fps_option": opts.fps}
    (folder / RECORD).write_text(json.dumps(record, indent=2))


def read_record(folder: Path) -> dict | None:
    path = folder / RECORD
    return json.loads(path.read_text()) if path.is_file() else None


def main(argv: list[str] | None = None) -> int:
    return stage_main(description="Stage 1: Wan2.2-Animate preprocessing (official preprocess_data.py).",
                      option_classes=[PreprocessOptions, MaskOptions, RunOptions], run=run, argv=argv, stage=STAGE)


if __name__ == "__main__":
    sys.exit(main())
