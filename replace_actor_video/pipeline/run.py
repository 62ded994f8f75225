"""All stages in one command, in one run directory, resumable: preprocess → generate.

Each stage keeps its own option dataclass; the pipeline's parser and config are derived from them, so an
option added to a stage shows up here (and in the UI) without being written again."""

from __future__ import annotations

import argparse
import sys
import threading
import tomllib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

from ..core.cli import report_errors
from ..core.errors import UserError
from ..core.options import add_to_parser, build, option
from ..core.rundir import RunContext
from ..media.probe import probe_video
from ..stages import generate, mask, preprocess
from ..stages.common import RunOptions, absolute

# Options the pipeline wires from one stage to the next instead of asking for them.
WIRED = {"src_root_path", "save_file", "audio_from"}


@dataclass(kw_only=True)
class PipelineOptions:
    """Pipeline"""

    output_path: str = option("output_wanimate.mp4", help="the final video", group="outputs")
    run_dir: str | None = option(None, help="run directory to create or resume (manifest, logs, intermediate "
                                 "files); default: <runs_dir>/<output file name>", widget="dir", group="run")
    force: bool = option(False, help="rerun every stage even when its results are up to date", group="run")


STAGE_OPTIONS = (PipelineOptions, preprocess.PreprocessOptions, mask.MaskOptions, generate.GenerateOptions,
                 RunOptions)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Wan2.2-Animate pipeline: preprocess → generate, resumable. `--doctor` checks the set-up.")
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
    preprocess: preprocess.PreprocessOptions
    mask: mask.MaskOptions
    generate: generate.GenerateOptions
    run: RunOptions


def config_from(values: dict[str, Any]) -> PipelineConfig:
    """Stage options from one flat dict (CLI namespace or UI form), with the pipeline's wiring applied."""
    pipe = build(PipelineOptions, values)
    run_opts = build(RunOptions, values)
    run_dir = absolute(pipe.run_dir) if pipe.run_dir else absolute(run_opts.runs_dir) / Path(pipe.output_path).stem
    pipe.run_dir = str(run_dir)
    values = {**values, "save_path": values.get("save_path") or str(run_dir / "preprocess")}
    pre = build(preprocess.PreprocessOptions, values)
    gen = build(generate.GenerateOptions, {**values, "src_root_path": pre.save_path,
                                           "save_file": pipe.output_path})
    return PipelineConfig(pipe, pre, build(mask.MaskOptions, values), gen, run_opts)


def run(cfg: PipelineConfig, *, ctx: RunContext) -> Path:
    resume = not cfg.pipeline.force
    total = 2
    ctx.say(f"run directory: {ctx.run_dir}")
    ctx.say(f"step 1/{total}: preprocess")
    preprocess.run(cfg.preprocess, cfg.mask, cfg.run, ctx=ctx, resume=resume)
    ctx.say(f"step 2/{total}: generate")
    planned = _planned_record(cfg.preprocess) if ctx.dry_run else None
    out = generate.run(cfg.generate, cfg.run, ctx=ctx, resume=resume, planned=planned)
    ctx.manifest["result"] = str(out)
    ctx.save()
    ctx.say(f"done: {out}" if not ctx.dry_run else "dry run: nothing was run")
    return out


def _planned_record(opts: preprocess.PreprocessOptions) -> dict[str, Any]:
    """The preprocessing record a real run would write (to describe later steps in a dry run)."""
    video = probe_video(opts.video_path)
    fps = video.fps if opts.fps == -1 else Fraction(opts.fps)
    return {"video_path": str(absolute(opts.video_path)), "has_audio": video.has_audio, "fps": str(fps),
            "frames": int(video.frames / video.fps * fps)}


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
