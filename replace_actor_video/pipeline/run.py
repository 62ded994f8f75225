"""All stages in one command, in one run directory, resumable:
preprocess → generate → [refine] → [postprocess] → [upscale].

Each stage keeps its own option dataclass; the pipeline's parser and config are derived from them, so an
option added to a stage shows up here (and in the UI) without being written again."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser from PyPI (requirements.txt)
    import tomli as tomllib

from ..core.cli import report_errors
from ..core.errors import UserError
from ..core.options import add_to_parser, build, option
from ..core.paths import absolute
from ..core.rundir import RunContext
from ..core.stage_cli import RunOptions
from ..mask.options import MaskOptions
from ..media.probe import VideoInfo, check_image, probe_video
from ..stages import generate, postprocess, preprocess, upscale
from ..upstream.wan.generate import GenerateOptions
from ..upstream.wan.preprocess import PreprocessOptions, upstream_size
from . import refine

# Options the pipeline wires from one stage to the next instead of asking for them; `backend` is asked
# for twice (interpolation, upscaling), so the pipeline names them --interp_backend and --upscale.
WIRED = {"src_root_path", "save_file", "audio_from", "input", "output", "backend", "fallback_ffmpeg"}


@dataclass(kw_only=True)
class PipelineOptions:
    """Pipeline"""

    output_path: str = option("output_wanimate.mp4", label="Output video", help="the final video", group="outputs")
    run_dir: str | None = option(None, help="run directory to create or resume (manifest, logs, intermediate "
                                 "files); default: <runs_dir>/<output file name>", widget="dir", group="run")
    force: bool = option(False, help="rerun every stage even when its results are up to date", group="run")
    refine: bool = option(False, label="Refine (second replace pass)",
                          help="after generation, a second replace pass over the result (replace mode)",
                          group="finishing")
    target_fps: float | None = option(None, label="Interpolate to fps",
                                      help="after generation (and refine), interpolate to this fps, e.g. 30",
                                      group="finishing")
    interp_backend: str = option("auto", choices=("auto", "ncnn", "cuda", "ffmpeg"),
                                 label="Interpolation backend",
                                 help="interpolation backend (run_postprocess.py --backend)", group="finishing")
    upscale: str = option("none", choices=("none", "seedvr", "realesrgan"), label="Upscale with",
                          help="last, upscale with this backend",
                          group="finishing")
    upscale_seed: int = option(666, label="Upscale seed (SeedVR2)",
                               help="SeedVR2 seed (run_upscale.py --seed)", group="finishing")


STAGE_OPTIONS = (PipelineOptions, PreprocessOptions, MaskOptions, GenerateOptions,
                 refine.RefineOptions, postprocess.PostprocessOptions, upscale.UpscaleOptions, RunOptions)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Wan2.2-Animate pipeline: preprocess → generate → [refine] → [postprocess] → [upscale], "
                    "resumable. `--doctor` checks the set-up.")
    parser.add_argument("--doctor", action="store_true", help="check GPU, ffmpeg, upstream clones, checkpoint "
                        "and Python packages, then exit")
    parser.add_argument("--config", help="TOML file with defaults for any option below (keys = option names, "
                        "optionally under [tables]); the command line wins")
    seen: set[str] = set()
    for cls in STAGE_OPTIONS:
        add_to_parser(parser, cls, seen=seen, skip=WIRED)
    # The preprocessing folder defaults to the run directory, not ./process_results.
    parser.set_defaults(save_path=None)
    return parser


@dataclass
class PipelineConfig:
    pipeline: PipelineOptions
    preprocess: PreprocessOptions
    mask: MaskOptions
    generate: GenerateOptions
    refine: refine.RefineOptions | None
    postprocess: postprocess.PostprocessOptions | None
    upscale: upscale.UpscaleOptions | None
    run: RunOptions


def config_from(values: dict[str, Any]) -> PipelineConfig:
    """Stage options from one flat dict (CLI namespace or UI form), with the pipeline's wiring applied: each
    finishing stage reads the previous stage's output, the last one writes --output_path, and the
    intermediate files stay in the run directory."""
    pipe = build(PipelineOptions, values)
    run_opts = build(RunOptions, values)
    run_dir = absolute(pipe.run_dir) if pipe.run_dir else absolute(run_opts.runs_dir) / Path(pipe.output_path).stem
    pipe.run_dir = str(run_dir)
    if pipe.refine and not values.get("replace"):
        raise UserError("--refine is a second replace pass; add --replace or drop --refine")
    values = {**values, "save_path": values.get("save_path") or str(run_dir / "preprocess")}
    finishing = [name for name, on in (("refine", pipe.refine), ("postprocess", pipe.target_fps is not None),
                                       ("upscale", pipe.upscale != "none")) if on]
    outputs = {name: str(run_dir / f"{name}.mp4") for name in ("generate", *finishing)}
    outputs[(["generate", *finishing])[-1]] = pipe.output_path
    pre = build(PreprocessOptions, values)
    gen = build(GenerateOptions, {**values, "src_root_path": pre.save_path, "save_file": outputs["generate"]})
    previous = outputs["generate"]
    ref = pp = up = None
    if pipe.refine:
        ref = build(refine.RefineOptions, {**values, "input": previous, "save_path": str(run_dir / "refine_process"),
                                           "save_file": outputs["refine"], "fps": -1, "audio_from": None})
        previous = outputs["refine"]
    if pipe.target_fps is not None:
        source_fps = probe_video(pre.video_path).fps if pre.fps == -1 else pre.fps
        if pipe.target_fps <= source_fps:
            raise UserError(f"--target_fps {pipe.target_fps:g} is not above the preprocessing fps ({float(source_fps):g}); "
                            "preprocess at a lower --fps (e.g. 16) or drop --target_fps")
        # generation already matched the clips' colours in its loop (--color_match): not again after the fact
        pp = build(postprocess.PostprocessOptions, {**values, "input": previous, "output": outputs["postprocess"],
                                                    "backend": pipe.interp_backend, "color_match": "off"})
        previous = outputs["postprocess"]
    if pipe.upscale != "none":
        up = build(upscale.UpscaleOptions, {**values, "input": previous, "output": outputs["upscale"],
                                            "backend": pipe.upscale, "seed": pipe.upscale_seed})
    return PipelineConfig(pipe, pre, build(MaskOptions, values), gen, ref, pp, up, run_opts)


def run(cfg: PipelineConfig, *, ctx: RunContext) -> Path:
    resume = not cfg.pipeline.force
    steps = ["preprocess", "generate"] + [name for name in ("refine", "postprocess", "upscale") if getattr(cfg, name)]
    ctx.say(f"run directory: {ctx.run_dir}")

    def step(name: str) -> None:
        ctx.say(f"step {steps.index(name) + 1}/{len(steps)}: {name}")

    step("preprocess")
    generate.prefetch_checkpoint(cfg.generate, ctx)  # its disk reads overlap the preprocessing
    preprocess.run(cfg.preprocess, cfg.mask, cfg.run, ctx=ctx, resume=resume)
    step("generate")
    record = _planned_record(cfg.preprocess) if ctx.dry_run else None
    out = generate.run(cfg.generate, cfg.run, ctx=ctx, resume=resume, planned=record)
    planned = _planned_video(cfg.preprocess, Path(out), record) if ctx.dry_run else None
    if cfg.refine:
        step("refine")
        out = refine.run(cfg.refine, cfg.mask, cfg.run, ctx=ctx, resume=resume, planned=planned)
    if cfg.postprocess:
        step("postprocess")
        out = postprocess.run(cfg.postprocess, cfg.run, ctx=ctx, resume=resume, planned=planned)
        if planned is not None:
            target = Fraction(cfg.postprocess.target_fps).limit_denominator(1001)
            planned = dataclasses.replace(planned, fps=target, frames=round(planned.frames * target / planned.fps))
    if cfg.upscale:
        step("upscale")
        out = upscale.run(cfg.upscale, cfg.run, ctx=ctx, resume=resume, planned=planned)
    ctx.manifest["result"] = str(out)
    ctx.save()
    ctx.say(f"done: {out}" if not ctx.dry_run else "dry run: nothing was run")
    return out


def _planned_record(opts: PreprocessOptions) -> dict[str, Any]:
    """The preprocessing record a real run would write (to describe later steps in a dry run)."""
    video = probe_video(opts.video_path)
    fps = video.fps if opts.fps == -1 else Fraction(opts.fps)
    return {"video_path": str(absolute(opts.video_path)), "has_audio": video.has_audio, "fps": str(fps),
            "frames": int(video.frames / video.fps * fps)}


def _planned_video(opts: PreprocessOptions, path: Path, record: dict[str, Any]) -> VideoInfo:
    """What generation will write, for describing the finishing stages in a dry run: the preprocessing
    size (the video's aspect in replace mode, the reference's in animate mode), fps and frame count."""
    area = opts.resolution[0] * opts.resolution[1]
    if opts.replace:
        video = probe_video(opts.video_path)
        width, height = upstream_size(video.width, video.height, area)
    else:
        width, height = upstream_size(*check_image(opts.refer_path), area)
    fps = Fraction(record["fps"])
    return VideoInfo(path=path, width=width, height=height, fps=fps, frames=record["frames"],
                     duration=record["frames"] / fps, has_audio=record["has_audio"], codec="h264", pix_fmt="yuv420p")


def config_file_defaults(path: str, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """Flatten a TOML file's keys (top level or under any table) and check each names an option."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"--config {path}: cannot read it ({exc})") from None
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(value if isinstance(value, dict) else {key: value})
    known = {a.dest for a in parser._actions}
    unknown = sorted(set(flat) - known)
    if unknown:
        raise UserError(f"--config {path}: unknown option(s) {', '.join(unknown)}; see python pipeline.py --help")
    return flat


def apply_config_file(path: str, parser: argparse.ArgumentParser) -> None:
    defaults = config_file_defaults(path, parser)
    for action in parser._actions:
        if action.dest in defaults:
            action.required = False  # the file provides it
    parser.set_defaults(**defaults)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--doctor" in argv:
        from ..doctor import main as doctor_main

        return doctor_main([a for a in argv if a != "--doctor"])
    parser = build_parser()
    config_only = argparse.ArgumentParser(add_help=False)
    config_only.add_argument("--config")
    config_path = config_only.parse_known_args(argv)[0].config
    if config_path:
        status = report_errors(lambda: apply_config_file(config_path, parser))
        if status:
            return status
    values = vars(parser.parse_args(argv))

    def body() -> None:
        cfg = config_from(values)
        ctx = RunContext.open(cfg.pipeline.run_dir, dry_run=cfg.run.dry_run, cancel=threading.Event())
        run(cfg, ctx=ctx)

    return report_errors(body)
