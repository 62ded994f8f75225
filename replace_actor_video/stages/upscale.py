"""Stage 4 (optional): upscaling with SeedVR2 (one-step diffusion restoration, heavy) or Real-ESRGAN
(per-frame GAN, light), keeping every frame, the frame rate and the source audio. The user gets exactly
--output, H.264 yuv420p, whatever the upstream writes and wherever it writes it."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import config
from ..core.atomic import atomic_file, refuse_overwrite
from ..core.config import upstream_commit
from ..core.errors import StageFailed, UserError
from ..core.gpu import visible_gpus
from ..core.options import as_dict, option
from ..core.paths import absolute
from ..core.planning import Plan, Problems
from ..core.rundir import RunContext, describe_path, fingerprint
from ..core.stage_cli import RunOptions, plan_stage
from ..core.stage_cli import main as stage_main
from ..media.ffmpeg import check_output_video, ffmpeg_bin
from ..media.interpolate import check_result, finish_upscaled_argv, video_only_argv
from ..media.probe import VideoInfo, probe_input, probe_video
from ..upstream.realesrgan import video as realesrgan
from ..upstream.seedvr import inference as seedvr

STAGE = "upscale"


@dataclass(kw_only=True)
class UpscaleOptions:
    """Upscale (SeedVR2 or Real-ESRGAN)"""

    input: str = option(label="Video", help="video to upscale", widget="video", group="inputs")
    output: str = option(
        label="Output video", help="upscaled video (H.264 yuv420p, the input's audio kept)", group="outputs"
    )
    backend: str = option(
        "seedvr",
        choices=("seedvr", "realesrgan"),
        label="Upscaler",
        help="seedvr = SeedVR2 (best quality, H100-class GPU), realesrgan = Real-ESRGAN (2x/4x, one ordinary GPU)",
    )
    no_audio: bool = option(False, help="leave the audio out")
    res_h: int = option(
        720,
        label="SeedVR2: output height",
        help="SeedVR2: output height; with --res_w it sets the pixel area (aspect kept, then "
        "cropped to multiples of 16)",
        group="seedvr",
    )
    res_w: int = option(1280, label="SeedVR2: output width", help="SeedVR2: output width (see --res_h)", group="seedvr")
    model: str = option("3b", choices=seedvr.MODELS, label="SeedVR2 model", help="SeedVR2 model size", group="seedvr")
    num_gpus: int = option(1, label="SeedVR2: GPUs", help="SeedVR2: GPUs (torchrun processes)", group="seedvr")
    sp_size: int = option(
        0,
        label="SeedVR2: sequence-parallel size",
        help="SeedVR2: sequence-parallel size; 0 = --num_gpus (all GPUs on the one video)",
        group="seedvr",
    )
    seed: int = option(666, label="SeedVR2: seed", help="SeedVR2: seed (upstream default 666)", group="seedvr")
    seedvr_dir: str = config.SEEDVR.option(help="SeedVR clone with ckpts/")
    seedvr_python: str | None = option(
        None,
        help="Python of SeedVR's own environment (env SEEDVR_PYTHON; default: the Python running this)",
        widget="file",
        group="paths",
        server="location",
    )
    model_name: str = option(
        "realesr-general-x4v3",
        choices=realesrgan.MODEL_NAMES,
        label="Real-ESRGAN model",
        help="Real-ESRGAN model",
        group="realesrgan",
    )
    outscale: int = option(
        2, choices=(2, 4), label="Real-ESRGAN: scale", help="Real-ESRGAN: scale factor", group="realesrgan"
    )
    tile: int = option(
        0,
        label="Real-ESRGAN: tile size",
        help="Real-ESRGAN: tile size (e.g. 512) to save GPU memory; 0 = whole frames",
        group="realesrgan",
    )
    face_enhance: bool = option(
        False,
        label="Real-ESRGAN: restore faces",
        help="Real-ESRGAN: restore faces with GFPGAN (downloads its weights; not with anime models)",
        group="realesrgan",
    )
    fp32: bool = option(
        False,
        label="Real-ESRGAN: full precision",
        help="Real-ESRGAN: fp32 instead of fp16 (slower; the video script runs on a GPU only)",
        group="realesrgan",
    )
    realesrgan_dir: str = config.REALESRGAN.option()


OPTION_CLASSES = (UpscaleOptions, RunOptions)


MAX_SEEDVR_SIDE = 8192  # px: past 8K, a value is a typo (e.g. 72000) that would fail only after the model loads


def validate(opts: UpscaleOptions) -> None:
    for name in ("res_h", "res_w"):
        if not 16 <= getattr(opts, name) <= MAX_SEEDVR_SIDE:
            raise UserError(f"--{name} {getattr(opts, name)}: use 16 to {MAX_SEEDVR_SIDE} px")
    seedvr.sp_size_for(opts.num_gpus, opts.sp_size)
    if opts.tile < 0:
        raise UserError(f"--tile {opts.tile}: must be 0 (no tiling) or a tile size such as 512")


@dataclass
class Job:
    """One upstream run: its argv, where it runs, the file it writes, and the size it must have."""

    label: str
    argv: list[str]
    cwd: Path
    env: dict[str, str] | None
    output: Path
    size: tuple[int, int] | None  # exact output size when known in advance


UPSTREAM_NAMES = {"seedvr": "SeedVR", "realesrgan": "Real-ESRGAN"}


def check_backend(opts: UpscaleOptions, ctx: RunContext) -> Path:
    """Check the chosen upstream (clone, checkpoints, Python packages, GPUs) and return its clone; the
    UserError names what is missing and the fix."""
    if opts.backend == "seedvr":
        clone = absolute(opts.seedvr_dir)
        seedvr.check_clone(clone, opts.model)
        seedvr.check_python(seedvr_python(opts))
        gpus = visible_gpus()
        if gpus and opts.num_gpus > len(gpus):
            raise UserError(f"--num_gpus {opts.num_gpus}: only {len(gpus)} GPU(s) visible")
        return clone
    clone = absolute(opts.realesrgan_dir)
    realesrgan.check_clone(clone)
    realesrgan.check_python(face_enhance=opts.face_enhance)
    return clone


def notes(opts: UpscaleOptions, clone: Path, ctx: RunContext) -> None:
    """What may surprise about the chosen backend without stopping it."""
    if opts.backend != "realesrgan":
        return
    if opts.face_enhance and "anime" in opts.model_name:
        ctx.say(f"warning: --face_enhance does nothing with {opts.model_name} (upstream turns it off)")
    missing = realesrgan.missing_weights(clone, opts.model_name)
    if missing:
        ctx.say(
            f"note: {', '.join(p.name for p in missing)} not in {clone / 'weights'}; Real-ESRGAN downloads them "
            "on its first run (needs internet)"
        )
    if not visible_gpus():
        ctx.say("warning: no NVIDIA GPU visible; Real-ESRGAN's video script has no CPU path")


@dataclass(frozen=True)
class Checked:
    source: VideoInfo
    clone: Path
    resolved: dict = field(default_factory=dict)

    def facts(self) -> dict:
        return {"input_size": (self.source.width, self.source.height), "frames": self.source.frames}


def check(
    opts: UpscaleOptions, run_opts: RunOptions, problems: Problems, *, ctx: RunContext, planned: VideoInfo | None = None
) -> Checked | None:
    """Every problem upscaling `input` would meet, added to `problems`; what it resolved when none."""
    before = len(problems)
    with problems.check(stage=STAGE):
        validate(opts)
    source = clone = None
    with problems.check(option="input", stage=STAGE):
        source = probe_input(opts.input, dry_run=ctx.dry_run, planned=planned)
    input_path, output = absolute(opts.input), absolute(opts.output)
    with problems.check(option="output", stage=STAGE):
        if not problems.mentions(str(output)):
            check_output_video(
                output,
                inputs=[input_path],
                may_replace=run_opts.overwrite or ctx.owns(STAGE, output),
                run_dir=ctx.run_dir,
            )
    with problems.check(option=f"{opts.backend}_dir", stage=STAGE):
        clone = check_backend(opts, ctx)
    if len(problems) > before or source is None or clone is None:
        return None
    return Checked(source, clone)


def build_job(opts: UpscaleOptions, source: VideoInfo, clone: Path, *, feed: Path, out_dir: Path) -> Job:
    """The upstream command reading the folder/file `feed` lives in, writing into `out_dir`."""
    if opts.backend == "seedvr":
        call = seedvr.SeedVrCall(
            clone,
            opts.model,
            feed.parent,
            out_dir,
            opts.seed,
            opts.res_h,
            opts.res_w,
            opts.num_gpus,
            seedvr.sp_size_for(opts.num_gpus, opts.sp_size),
            seedvr_python(opts),
        )
        return Job(
            f"upscale with SeedVR2-{opts.model.upper()} on {opts.num_gpus} GPU(s)",
            call.argv(),
            clone,
            call.env(),
            call.output,
            None,
        )
    call = realesrgan.RealEsrganCall(
        clone, feed, out_dir, opts.model_name, opts.outscale, opts.tile, opts.face_enhance, opts.fp32, ffmpeg_bin()
    )
    return Job(
        f"upscale with Real-ESRGAN {opts.model_name} x{opts.outscale}",
        call.argv(),
        clone,
        realesrgan.single_gpu_env(),
        call.output,
        (int(source.width * opts.outscale), int(source.height * opts.outscale)),
    )


def check_upscaled(path: Path, source: VideoInfo, size: tuple[int, int] | None, backend: str) -> VideoInfo:
    try:
        info = probe_video(path, count_frames=True)
    except UserError as exc:
        raise StageFailed(f"{backend} exited 0 but its video is unreadable ({exc}); see the upscale log") from None
    if info.frames != source.frames:
        hint = (
            " (it skips frames that fail, e.g. on CUDA out of memory: try --tile 512)"
            if backend == "realesrgan"
            else ""
        )
        raise StageFailed(f"{backend} wrote {info.frames} frames, expected {source.frames}{hint}; see the upscale log")
    if size and (info.width, info.height) != size:
        raise StageFailed(f"{backend} wrote {info.width}x{info.height}, expected {size[0]}x{size[1]}")
    if abs(float(info.fps) - float(source.fps)) > 0.01:
        raise StageFailed(f"{backend} wrote {info.fps} fps, expected {source.fps}")
    return info


def seedvr_python(opts: UpscaleOptions) -> str:
    return opts.seedvr_python or os.environ.get("SEEDVR_PYTHON") or sys.executable


def run(
    opts: UpscaleOptions,
    run_opts: RunOptions,
    *,
    ctx: RunContext,
    resume: bool = False,
    planned: VideoInfo | None = None,
) -> Path:
    """Upscale `input` into `output`. With `resume`, a finished run of the same input and options in this
    run directory is kept; `planned` stands in for a not yet written input in a dry run."""
    problems = Problems()
    checked = check(opts, run_opts, problems, ctx=ctx, planned=planned)
    if checked is None:
        raise UserError(problems.items[0].message)
    source, clone = checked.source, checked.clone
    notes(opts, clone, ctx)
    input_path, output = absolute(opts.input), absolute(opts.output)
    inputs = {"input": describe_path(input_path)}
    upstream = {UPSTREAM_NAMES[opts.backend]: {"path": str(clone), "commit": upstream_commit(clone)}}
    fp = fingerprint([as_dict(opts), inputs, upstream])
    if resume and not ctx.dry_run and ctx.is_done(STAGE, fp):
        ctx.say(f"upscale: up to date, keeping {output}")
        return output
    refuse_overwrite(output, run_opts.overwrite or ctx.owns(STAGE, output))
    audio = input_path if source.has_audio and not opts.no_audio else None
    duration = source.frames / float(source.fps)
    work = ctx.scratch(STAGE)
    feed = work / "in" / realesrgan.INPUT_NAME  # the same name for both backends (SeedVR reads its folder)
    job = build_job(opts, source, clone, feed=feed, out_dir=work / "out")
    if ctx.dry_run:
        ctx.step(
            "video-only copy for the upscaler",
            video_only_argv(input_path, feed),
            stage=STAGE,
            inputs=[input_path],
            expected_outputs=[feed],
        )
        ctx.step(job.label, job.argv, stage=STAGE, inputs=[feed], expected_outputs=[job.output])
        ctx.step(
            f"H.264{' + source audio' if audio else ''} into {output.name}",
            finish_upscaled_argv(job.output, output, copy=True, audio_from=audio, duration=duration),
            stage=STAGE,
            inputs=[job.output, *([audio] if audio else [])],
            expected_outputs=[output],
        )
        return output

    try:
        with ctx.running(STAGE, options=as_dict(opts), inputs=inputs, upstream=upstream, fp=fp, outputs=[output]):
            for folder in (work / "in", work / "out"):
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir(parents=True)
            ctx.step(
                "video-only copy for the upscaler",
                video_only_argv(input_path, feed),
                stage=STAGE,
                expected_outputs=[feed],
            )
            ctx.step(job.label, job.argv, stage=STAGE, expected_outputs=[job.output], cwd=job.cwd, env=job.env)
            upscaled = check_upscaled(job.output, source, job.size, opts.backend)
            with atomic_file(output) as tmp:
                copy = (upscaled.codec, upscaled.pix_fmt) == ("h264", "yuv420p")
                ctx.step(
                    f"H.264{' + source audio' if audio else ''}",
                    finish_upscaled_argv(job.output, tmp, copy=copy, audio_from=audio, duration=duration),
                    stage=STAGE,
                    expected_outputs=[tmp],
                )
                check_result(
                    tmp,
                    frames=source.frames,
                    fps=upscaled.fps,
                    audio=audio is not None,
                    duration=duration,
                    what="the upscaled video",
                )
    finally:
        ctx.remove_scratch(STAGE)
    ctx.say(
        f"upscale done: {output} ({upscaled.width}x{upscaled.height}, {source.frames} frames"
        f"{', with audio' if audio else ''})"
    )
    return output


def plan(values: Mapping[str, Any]) -> Plan:
    """The plan of `run_upscale.py` with these option values (core/stage_cli.plan_stage)."""
    return plan_stage(STAGE, OPTION_CLASSES, values, check=check, run=run)


def main(argv: list[str] | None = None) -> int:
    return stage_main(
        description="Stage 4 (optional): upscale with SeedVR2 or Real-ESRGAN, audio kept.",
        option_classes=OPTION_CLASSES,
        plan=plan,
        run=run,
        argv=argv,
        stage=STAGE,
    )


if __name__ == "__main__":
    sys.exit(main())
