"""Stage 3 (optional): frame interpolation to a higher, exact frame rate (16 → 30 fps) with
rife-ncnn-vulkan (Vulkan), Practical-RIFE (CUDA) or ffmpeg minterpolate, keeping the source audio; before it,
optionally, a colour match across the clips of a video generated elsewhere (`--color_match`; our generation
stage already does it inside its clip loop).

Whatever the backend, the result has round(frames × target / source) frames at exactly the target rate
(so it lasts as long as the input within one frame), H.264 yuv420p, and the input's audio."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..core import config
from ..core.atomic import atomic_file, refuse_overwrite
from ..core.config import upstream_commit
from ..core.errors import StageFailed, UserError
from ..core.gpu import visible_gpus
from ..core.options import as_dict, option, same_as
from ..core.paths import absolute
from ..core.planning import Plan, Problems
from ..core.rundir import RunContext, describe_path, fingerprint
from ..core.stage_cli import RunOptions, plan_stage
from ..core.stage_cli import main as stage_main
from ..media.ffmpeg import check_output_video, mux_audio_argv
from ..media.frames import iter_frames, write_video
from ..media.interpolate import (
    check_result,
    count_files,
    extract_frames_argv,
    fps_fraction,
    frames_to_video_argv,
    pad_frames,
    resample_argv,
    target_frames,
)
from ..media.probe import VideoInfo, probe_input, probe_video
from ..upstream.ffmpeg import minterpolate as ffmpeg_interpolate
from ..upstream.rife import ncnn as rife_ncnn
from ..upstream.rife import practical as practical_rife
from ..upstream.wan.color_drift import summary as drift_summary
from ..upstream.wan.color_drift import video_drift
from ..upstream.wan.generate import GenerateOptions
from ..upstream.wan.runtime import color_match

STAGE = "postprocess"
BACKENDS = ("auto", "ncnn", "cuda", "ffmpeg")
MAX_TARGET_FPS = 240  # --target_fps: at most this (README "Limits")


@dataclass(kw_only=True)
class PostprocessOptions:
    """Post-processing: frame interpolation (RIFE or ffmpeg)"""

    input: str = option(label="Video", help="video to interpolate", widget="video", group="inputs")
    output: str = option(
        label="Output video", help="interpolated video (H.264 yuv420p, the input's audio kept)", group="outputs"
    )
    target_fps: float = option(
        30.0,
        label="Target frame rate",
        help="output frame rate; any ratio works (16 → 30 gives exactly 30 fps); 0 = keep "
        "the input's rate (only --color_match)",
    )
    # The generation's colour-match options (methods, strength, anchor), here in Python on a finished video: off by
    # default, and no launcher to pass them to.
    color_match: str = same_as(
        GenerateOptions,
        "color_match",
        default="off",
        upstream=None,
        help="first colour-match the clips of a Wan-Animate video made elsewhere (clips of "
        "--frame_num frames, --refert_num overlap); mkl, mvgd, reinhard, hm as "
        "run_generation.py --color_match, which does it inside the clip loop",
    )
    color_match_strength: float = same_as(GenerateOptions, "color_match_strength", upstream=None)
    color_match_anchor: str = same_as(
        GenerateOptions,
        "color_match_anchor",
        upstream=None,
        help="join = each clip matched across its join to the frame before it; first = to the whole first clip",
    )
    frame_num: int = option(
        77,
        label="Frames per clip",
        help="frames per clip the video was generated with (where its clips join)",
        group="quality",
    )
    refert_num: int = option(
        1, label="Frames carried between clips", help="frames each clip overlapped the previous one by", group="quality"
    )
    backend: str = option(
        "auto",
        choices=BACKENDS,
        label="Interpolation backend",
        help="ncnn = rife-ncnn-vulkan (Vulkan GPU), cuda = Practical-RIFE (PyTorch), "
        "ffmpeg = minterpolate (no extra install, slower, lower quality); auto = the first "
        "that works, in that order",
    )
    fallback_ffmpeg: bool = option(False, label="Use ffmpeg", help="same as --backend ffmpeg")
    rife_bin: str | None = option(
        None,
        help=f"rife-ncnn-vulkan binary (default: ${rife_ncnn.ENV}, PATH, ./{rife_ncnn.INSTALL_DIR}/)",
        widget="file",
        group="paths",
        server="location",
    )
    rife_model: str = option(
        rife_ncnn.DEFAULT_MODEL,
        help="rife-ncnn-vulkan model: a folder, or the name of one next to the binary; must be a rife-v4 model",
        group="paths",
        server="location",
    )
    rife_pytorch_dir: str = config.PRACTICAL_RIFE.option(help="Practical-RIFE clone with the model in train_log/")


OPTION_CLASSES = (PostprocessOptions, RunOptions)


def validate(opts: PostprocessOptions) -> Fraction | None:
    """The target rate as a fraction (None: no interpolation); UserError for a bad rate, contradictory backend
    flags or nothing to do."""
    if opts.fallback_ffmpeg and opts.backend not in ("auto", "ffmpeg"):
        raise UserError(f"--fallback_ffmpeg contradicts --backend {opts.backend}; pass only one of them")
    if not 0.0 <= opts.color_match_strength <= 1.0:
        raise UserError(f"--color_match_strength {opts.color_match_strength:g}: must be between 0 and 1")
    if opts.color_match != "off" and (opts.refert_num < 1 or opts.frame_num <= opts.refert_num):
        raise UserError(
            f"--frame_num {opts.frame_num} / --refert_num {opts.refert_num}: a clip must be longer "
            "than its overlap (Wan-Animate: 77 and 1)"
        )
    if opts.target_fps == 0:
        if opts.color_match == "off":
            raise UserError("--target_fps 0 with --color_match off: nothing to do; give a target rate or a method")
        return None
    target = fps_fraction(opts.target_fps)
    if target > MAX_TARGET_FPS:
        raise UserError(f"--target_fps {opts.target_fps:g}: at most {MAX_TARGET_FPS} fps")
    return target


@dataclass(frozen=True)
class Choice:
    backend: str
    reason: str
    ncnn: rife_ncnn.NcnnSetup | None = None
    rife_dir: Path | None = None

    def upstream(self) -> dict:
        if self.ncnn is not None:
            return {"rife-ncnn-vulkan": {"binary": str(self.ncnn.binary), "model": str(self.ncnn.model)}}
        if self.rife_dir is not None:
            return {"Practical-RIFE": {"path": str(self.rife_dir), "commit": upstream_commit(self.rife_dir)}}
        return {}


def _ncnn(opts: PostprocessOptions, *, requested: bool, probe_device: bool = True) -> Choice:
    setup = rife_ncnn.locate(opts.rife_bin, opts.rife_model)
    if not probe_device:  # planning runs no program: the run probes the Vulkan device before it commits to ncnn
        return Choice("ncnn", "rife-ncnn-vulkan found (its Vulkan device is probed when the stage runs)", ncnn=setup)
    probe = rife_ncnn.probe(setup)
    if probe.problem:
        raise UserError(probe.problem)
    if probe.software:
        if not requested:
            raise UserError(f"only a software Vulkan device ({probe.device}), which would run on the CPU")
        return Choice("ncnn", f"requested; warning: {probe.device} is a software Vulkan device (CPU, slow)", ncnn=setup)
    return Choice("ncnn", f"rife-ncnn-vulkan on {probe.device}", ncnn=setup)


def _cuda(opts: PostprocessOptions, *, requested: bool, probe_device: bool = True) -> Choice:
    rife_dir = absolute(opts.rife_pytorch_dir)
    practical_rife.check_clone(rife_dir)
    practical_rife.check_python()
    gpus = visible_gpus()
    if gpus:
        return Choice("cuda", f"Practical-RIFE on {gpus[0].name}", rife_dir=rife_dir)
    if not requested:
        raise UserError("no NVIDIA GPU visible (nvidia-smi)")
    return Choice(
        "cuda", "requested; warning: no NVIDIA GPU visible, Practical-RIFE runs on the CPU (slow)", rife_dir=rife_dir
    )


def choose_backend(opts: PostprocessOptions, *, probe_device: bool = True) -> Choice:
    """The backend to use and why. A requested backend that cannot run is a UserError; `auto` tries ncnn, then
    cuda, then falls back to ffmpeg, saying what each lacked. Without `probe_device` (planning) rife-ncnn-vulkan
    is not started to find its Vulkan device."""
    backend = "ffmpeg" if opts.fallback_ffmpeg else opts.backend
    if backend == "ffmpeg":
        return Choice("ffmpeg", "requested")
    if backend in ("ncnn", "cuda"):
        try:
            return (_ncnn if backend == "ncnn" else _cuda)(opts, requested=True, probe_device=probe_device)
        except UserError as exc:
            raise UserError(f"--backend {backend}: {exc}") from None
    lacks = []
    for name, attempt in (("ncnn", _ncnn), ("cuda", _cuda)):
        try:
            return attempt(opts, requested=False, probe_device=probe_device)
        except UserError as exc:
            lacks.append(f"{name}: {exc}")
    return Choice("ffmpeg", "auto fallback; " + "; ".join(lacks))


@dataclass
class Step:
    label: str
    argv: list[str]
    expected: list[Path]
    cwd: Path | None = None
    fresh_dirs: tuple[Path, ...] = ()  # emptied (or made) before the step
    check: Callable[[], None] | None = None  # raises StageFailed when the step's result is wrong


def backend_steps(
    choice: Choice, source: VideoInfo, *, target: Fraction, frames: int, out: Path, work: Path
) -> list[Step]:
    """The commands that turn `source` into `out` with the chosen backend (scratch files under `work`)."""
    audio = source.path.resolve() if source.has_audio else None
    pad = pad_frames(source.fps, target)
    if choice.backend == "ffmpeg":
        return [
            Step(
                "interpolate with ffmpeg minterpolate (single-threaded: slow at high resolution)",
                ffmpeg_interpolate.argv(
                    source.path.resolve(), out, fps=target, frames=frames, pad=pad, audio=source.has_audio
                ),
                [out],
            )
        ]
    if choice.backend == "ncnn":
        frames_in, frames_out = work / "frames_in", work / "frames_out"
        call = rife_ncnn.NcnnCall(choice.ncnn, frames_in, frames_out, frames)
        return [
            Step(
                "extract frames",
                extract_frames_argv(source.path.resolve(), frames_in),
                [frames_in],
                fresh_dirs=(frames_in,),
                check=lambda: _expect_files(frames_in, source.frames, "frame extraction"),
            ),
            Step(
                f"interpolate with rife-ncnn-vulkan to {frames} frames",
                call.argv(),
                [frames_out],
                cwd=call.cwd,
                fresh_dirs=(frames_out,),
                check=lambda: _expect_files(frames_out, frames, "rife-ncnn-vulkan"),
            ),
            Step(
                f"encode at {target} fps{' with the source audio' if audio else ''}",
                frames_to_video_argv(frames_out, out, fps=target, frames=frames, audio_from=audio),
                [out],
            ),
        ]
    multi = practical_rife.multi_for(source.fps, target)
    rife_out = work / "rife_out.mp4"
    call = practical_rife.RifeCall(choice.rife_dir, source.path.resolve(), rife_out, multi)
    cwd = work / "rife_cwd"  # upstream deletes and recreates ./temp in its cwd
    return [
        Step(
            f"interpolate with Practical-RIFE ×{multi}",
            call.argv(),
            [rife_out],
            cwd=cwd,
            fresh_dirs=(cwd,),
            check=lambda: _expect_rife_frames(rife_out, call.expected_frames(source.frames)),
        ),
        Step(
            f"resample to exactly {target} fps, encode{', mux the source audio' if audio else ''}",
            resample_argv(
                rife_out, out, rate_in=source.fps * multi, fps=target, frames=frames, pad=pad, audio_from=audio
            ),
            [out],
        ),
    ]


def _expect_files(folder: Path, count: int, what: str) -> None:
    found = count_files(folder)
    if found != count:
        raise StageFailed(f"{what} wrote {found} frames to {folder}, expected {count}; see the postprocess log")


def _expect_rife_frames(video: Path, expected: int) -> None:
    # Upstream stops its writer thread by polling an empty queue, which can drop the very last frame.
    found = probe_video(video, count_frames=True).frames
    if found < expected - 1:
        raise StageFailed(f"Practical-RIFE wrote {found} frames, expected {expected}; see the postprocess log")


@dataclass(frozen=True)
class Checked:
    """The target rate (None: the colour match alone), the input's facts and the output's frame count."""

    target: Fraction | None
    source: VideoInfo
    frames: int
    resolved: dict = field(default_factory=dict)

    def facts(self) -> dict:
        return {"source_fps": self.source.fps, "target_fps": self.target, "frames": self.frames}


def check(
    opts: PostprocessOptions,
    run_opts: RunOptions,
    problems: Problems,
    *,
    ctx: RunContext,
    planned: VideoInfo | None = None,
) -> Checked | None:
    """Every problem interpolating `input` would meet, added to `problems`; what it resolved when none."""
    before = len(problems)
    target = source = None
    with problems.check(option="target_fps", stage=STAGE):
        target = validate(opts)
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
    if opts.target_fps != 0:
        with problems.check(option="backend", stage=STAGE):
            choose_backend(opts, probe_device=False)
    if source is None or len(problems) > before:
        return None
    if target is None:  # --target_fps 0: the colour match alone, at the input's rate
        return Checked(None, source, source.frames)
    if target <= source.fps:
        problems.add(
            f"--target_fps {opts.target_fps:g}: {input_path.name} already has {float(source.fps):g} fps; "
            "interpolation needs a higher target rate",
            option="target_fps",
            stage=STAGE,
        )
    if source.frames < 2:
        problems.add(f"{input_path}: a single frame cannot be interpolated; pass a video", option="input", stage=STAGE)
    if len(problems) > before:
        return None
    return Checked(target, source, target_frames(source.frames, source.fps, target))


def run(
    opts: PostprocessOptions,
    run_opts: RunOptions,
    *,
    ctx: RunContext,
    resume: bool = False,
    planned: VideoInfo | None = None,
) -> Path:
    """Interpolate `input` into `output`. With `resume`, a finished run of the same input and options in
    this run directory is kept; `planned` stands in for a not yet written input in a dry run."""
    problems = Problems()
    checked = check(opts, run_opts, problems, ctx=ctx, planned=planned)
    if checked is None:
        raise UserError(problems.items[0].message)
    target, source, frames = checked.target, checked.source, checked.frames
    input_path, output = absolute(opts.input), absolute(opts.output)
    inputs = {"input": describe_path(input_path)}
    if target is None:
        return _color_match_only(opts, run_opts, source, output, inputs, ctx=ctx, resume=resume)
    duration = source.frames / float(source.fps)
    choice = choose_backend(opts, probe_device=not ctx.dry_run)
    ctx.say(f"postprocess backend: {choice.backend} ({choice.reason})")
    upstream = choice.upstream()
    fp = fingerprint([as_dict(opts), inputs, upstream, choice.backend])
    if resume and not ctx.dry_run and ctx.is_done(STAGE, fp):
        ctx.say(f"postprocess: up to date, keeping {output}")
        return output
    refuse_overwrite(output, run_opts.overwrite or ctx.owns(STAGE, output))

    work = ctx.scratch(STAGE)
    if ctx.dry_run:
        if opts.color_match != "off":
            ctx.say(f"[dry-run] colour match the clips of {input_path} ({opts.color_match}), in Python")
        steps = backend_steps(choice, source, target=target, frames=frames, out=output, work=work)
        read = [input_path]
        for step in steps:
            ctx.step(step.label, step.argv, stage=STAGE, inputs=read, expected_outputs=step.expected)
            read = step.expected
        return output

    resolved = {
        **as_dict(opts),
        "backend_used": choice.backend,
        "backend_reason": choice.reason,
        "source_fps": str(source.fps),
        "source_frames": source.frames,
        "frames": frames,
    }
    try:
        with ctx.running(STAGE, options=resolved, inputs=inputs, upstream=upstream, fp=fp, outputs=[output]):
            with atomic_file(output) as tmp:
                if opts.color_match != "off":
                    source = probe_video(
                        color_match_video(opts, source, work / "color_matched.mp4", ctx=ctx), count_frames=True
                    )
                steps = backend_steps(choice, source, target=target, frames=frames, out=tmp, work=work)
                for n, step in enumerate(steps, 1):
                    ctx.say(f"postprocess {n}/{len(steps)}: {step.label}")
                    for folder in step.fresh_dirs:
                        shutil.rmtree(folder, ignore_errors=True)
                        folder.mkdir(parents=True)
                    ctx.step(step.label, step.argv, stage=STAGE, expected_outputs=step.expected, cwd=step.cwd)
                    if step.check:
                        step.check()
                check_result(
                    tmp,
                    frames=frames,
                    fps=target,
                    audio=source.has_audio,
                    duration=duration,
                    what=f"the interpolated video ({choice.backend})",
                )
    finally:
        ctx.remove_scratch(STAGE)
    ctx.say(
        f"postprocess done: {output} ({frames} frames at {target} fps via {choice.backend}"
        f"{', with audio' if source.has_audio else ''})"
    )
    return output


def color_match_video(opts: PostprocessOptions, source: VideoInfo, out: Path, *, ctx: RunContext) -> Path:
    """`source` with every clip colour-matched to the first one, written to `out` with the source's audio; the
    drift metric before and after goes to the manifest and the log."""
    clips = {"clip_len": opts.frame_num, "refert_num": opts.refert_num}
    starts = color_match.clip_starts(source.frames, opts.frame_num, opts.refert_num)
    ctx.say(
        f"postprocess: colour match ({opts.color_match}, strength {opts.color_match_strength:g}) over "
        f"{len(starts)} clips of {opts.frame_num} frames"
    )
    silent = out.with_name(f"{out.stem}.video{out.suffix}")
    write_video(
        silent,
        color_match.match_video(
            iter_frames(source.path),
            starts,
            opts.color_match,
            opts.color_match_strength,
            opts.color_match_anchor,
            log=lambda line: ctx.note(STAGE, f"colour match: {line}"),
        ),
        source.fps,
    )
    if source.has_audio:
        ctx.step(
            "put the audio back",
            mux_audio_argv(silent, source.path.resolve(), out, duration=source.frames / float(source.fps)),
            stage=STAGE,
            expected_outputs=[out],
        )
        silent.unlink()
    else:
        silent.replace(out)
    report = {
        "before": video_drift(source.path, **clips),
        "after": video_drift(out, **clips),
        "color_match": {
            "method": opts.color_match,
            "strength": opts.color_match_strength,
            "anchor": opts.color_match_anchor,
        },
    }
    ctx.stage_record(STAGE)["color_drift"] = report
    ctx.save()
    for when in ("before", "after"):
        ctx.note(STAGE, f"postprocess: {when} the colour match, {drift_summary(report[when])}")
    return out


def _color_match_only(
    opts: PostprocessOptions,
    run_opts: RunOptions,
    source: VideoInfo,
    output: Path,
    inputs: dict,
    *,
    ctx: RunContext,
    resume: bool,
) -> Path:
    """--target_fps 0: the colour match alone, at the input's rate."""
    fp = fingerprint([as_dict(opts), inputs])
    if resume and not ctx.dry_run and ctx.is_done(STAGE, fp):
        ctx.say(f"postprocess: up to date, keeping {output}")
        return output
    refuse_overwrite(output, run_opts.overwrite or ctx.owns(STAGE, output))
    if ctx.dry_run:
        ctx.say(f"[dry-run] colour match the clips of {source.path} ({opts.color_match}) into {output}, in Python")
        return output
    work = ctx.scratch(STAGE)
    resolved = {**as_dict(opts), "source_fps": str(source.fps), "source_frames": source.frames}
    try:
        with (
            ctx.running(STAGE, options=resolved, inputs=inputs, upstream={}, fp=fp, outputs=[output]),
            atomic_file(output) as tmp,
        ):
            color_match_video(opts, source, work / "color_matched.mp4", ctx=ctx).replace(tmp)
            check_result(
                tmp,
                frames=source.frames,
                fps=source.fps,
                audio=source.has_audio,
                duration=source.frames / float(source.fps),
                what="the colour-matched video",
            )
    finally:
        ctx.remove_scratch(STAGE)
    ctx.say(f"postprocess done: {output} (colour-matched, {source.frames} frames at {source.fps} fps)")
    return output


def plan(values: Mapping[str, Any]) -> Plan:
    """The plan of `run_postprocess.py` with these option values (core/stage_cli.plan_stage)."""
    return plan_stage(STAGE, OPTION_CLASSES, values, check=check, run=run)


def main(argv: list[str] | None = None) -> int:
    return stage_main(
        description="Stage 3 (optional): frame interpolation to an exact higher fps "
        "(rife-ncnn-vulkan, Practical-RIFE or ffmpeg), audio kept.",
        option_classes=OPTION_CLASSES,
        plan=plan,
        run=run,
        argv=argv,
        stage=STAGE,
    )


if __name__ == "__main__":
    sys.exit(main())
