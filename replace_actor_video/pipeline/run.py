"""All stages in one command, in one run directory, resumable:
preprocess → generate → [refine] → [postprocess] → [upscale].

Each stage keeps its own option dataclass; the pipeline's parser and config are derived from them, so an
option added to a stage shows up here (and in the UI) without being written again."""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser from PyPI (requirements.txt)
    import tomli as tomllib

from ..core.cli import report_errors
from ..core.errors import UserError
from ..core.options import BadValue, OptionSpec, add_to_parser, coerce, expected, option, specs
from ..core.paths import absolute, check_output_dir
from ..core.planning import Plan, PlanContext, Problems
from ..core.rundir import MANIFEST, RunContext
from ..core.stage_cli import RunOptions, build_all, refuse
from ..mask.options import MaskOptions
from ..media.ffmpeg import check_output_video
from ..media.interpolate import target_frames
from ..media.probe import VideoInfo
from ..stages import generate, postprocess, preprocess, upscale
from ..upstream.wan.generate import GenerateOptions
from ..upstream.wan.preprocess import PreprocessOptions
from . import refine

# Options the pipeline wires from one stage to the next instead of asking for them; `backend` is asked
# for twice (interpolation, upscaling), so the pipeline names them --interp_backend and --upscale.
WIRED = {"src_root_path", "save_file", "audio_from", "input", "output", "backend", "fallback_ffmpeg"}


@dataclass(kw_only=True)
class PipelineOptions:
    """Pipeline"""

    output_path: str = option("output_wanimate.mp4", label="Output video", help="the final video", group="outputs")
    run_dir: str | None = option(
        None,
        help="run directory to create or resume (manifest, logs, intermediate "
        "files); default: <runs_dir>/<output file name>",
        widget="dir",
        group="run",
    )
    force: bool = option(False, help="rerun every stage even when its results are up to date", group="run")
    refine: bool = option(
        False,
        label="Refine (second replace pass)",
        help="after generation, a second replace pass over the result (replace mode)",
        group="finishing",
    )
    target_fps: float | None = option(
        None,
        label="Interpolate to fps",
        help="after generation (and refine), interpolate to this fps, e.g. 30",
        group="finishing",
    )
    interp_backend: str = option(
        "auto",
        choices=("auto", "ncnn", "cuda", "ffmpeg"),
        label="Interpolation backend",
        help="interpolation backend (run_postprocess.py --backend)",
        group="finishing",
    )
    upscale: str = option(
        "none",
        choices=("none", "seedvr", "realesrgan"),
        label="Upscale with",
        help="last, upscale with this backend",
        group="finishing",
    )
    upscale_seed: int = option(
        666, label="Upscale seed (SeedVR2)", help="SeedVR2 seed (run_upscale.py --seed)", group="finishing"
    )


STAGE_OPTIONS = (
    PipelineOptions,
    PreprocessOptions,
    MaskOptions,
    GenerateOptions,
    refine.RefineOptions,
    postprocess.PostprocessOptions,
    upscale.UpscaleOptions,
    RunOptions,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Wan2.2-Animate pipeline: preprocess → generate → [refine] → [postprocess] → [upscale], "
        "resumable. `--doctor` checks the set-up."
    )
    parser.add_argument(
        "--doctor",
        action="store_true",
        help="check GPU, ffmpeg, upstream clones, checkpoint and Python packages, then exit",
    )
    parser.add_argument(
        "--config",
        help="TOML file with values for any option below (keys = option names without "
        "the dashes, optionally under [tables]; checked like the command line); the command line wins",
    )
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

    @property
    def run_dir(self) -> Path:
        return Path(self.pipeline.run_dir)

    def outputs(self) -> dict[str, Path]:
        """Every stage's output: a file in the run directory, the last one --output_path."""
        stages = {
            "generate": self.generate.save_file,
            "refine": self.refine and self.refine.save_file,
            "postprocess": self.postprocess and self.postprocess.output,
            "upscale": self.upscale and self.upscale.output,
        }
        return {name: absolute(path) for name, path in stages.items() if path}


def collect_config(values: Mapping[str, Any], problems: Problems) -> PipelineConfig | None:
    """Stage options from one flat mapping (CLI namespace, TOML config, UI form), every value through the option
    specs (each bad one a problem), with the pipeline's wiring applied: each finishing stage reads the previous
    stage's output, the last one writes --output_path, and the intermediate files stay in the run directory."""
    base = build_all((PipelineOptions, RunOptions), values, problems)
    if base is None:
        return None
    pipe, run_opts = base
    run_dir = absolute(pipe.run_dir) if pipe.run_dir else absolute(run_opts.runs_dir) / Path(pipe.output_path).stem
    pipe = dataclasses.replace(pipe, run_dir=str(run_dir))
    if pipe.refine and not values.get("replace"):
        problems.add("--refine is a second replace pass; add --replace or drop --refine", option="refine")
    values = {**values, "save_path": values.get("save_path") or str(run_dir / "preprocess")}
    finishing = [
        name
        for name, on in (
            ("refine", pipe.refine),
            ("postprocess", pipe.target_fps is not None),
            ("upscale", pipe.upscale != "none"),
        )
        if on
    ]
    outputs = {name: str(run_dir / f"{name}.mp4") for name in ("generate", *finishing)}
    outputs[(["generate", *finishing])[-1]] = pipe.output_path
    wiring: list[tuple[type, dict[str, Any]]] = [
        (PreprocessOptions, {}),
        (MaskOptions, {}),
        (GenerateOptions, {"src_root_path": values["save_path"], "save_file": outputs["generate"]}),
    ]
    previous = outputs["generate"]
    if pipe.refine:
        wiring.append(
            (
                refine.RefineOptions,
                {
                    "input": previous,
                    "save_path": str(run_dir / "refine_process"),
                    "save_file": outputs["refine"],
                    "fps": -1,
                    "audio_from": None,
                },
            )
        )
        previous = outputs["refine"]
    if pipe.target_fps is not None:
        # generation already matched the clips' colours in its loop (--color_match): not again after the fact
        wiring.append(
            (
                postprocess.PostprocessOptions,
                {
                    "input": previous,
                    "output": outputs["postprocess"],
                    "backend": pipe.interp_backend,
                    "color_match": "off",
                },
            )
        )
        previous = outputs["postprocess"]
    if pipe.upscale != "none":
        wiring.append(
            (
                upscale.UpscaleOptions,
                {"input": previous, "output": outputs["upscale"], "backend": pipe.upscale, "seed": pipe.upscale_seed},
            )
        )
    built = {
        cls: objs[0] for cls, wired in wiring if (objs := build_all((cls,), {**values, **wired}, problems)) is not None
    }
    if len(built) < len(wiring) or len(problems):
        return None
    return PipelineConfig(
        pipe,
        built[PreprocessOptions],
        built[MaskOptions],
        built[GenerateOptions],
        built.get(refine.RefineOptions),
        built.get(postprocess.PostprocessOptions),
        built.get(upscale.UpscaleOptions),
        run_opts,
    )


def config_from(values: Mapping[str, Any]) -> PipelineConfig:
    """`collect_config`, raising the first problem as a UserError."""
    problems = Problems()
    cfg = collect_config(values, problems)
    if cfg is None:
        raise UserError(problems.items[0].message)
    return cfg


@dataclass(frozen=True)
class Planned:
    """What the checks worked out for the files of steps that have not run yet, so a dry run can describe the
    steps that read them: the preprocessing record, then the video each stage writes."""

    record: dict[str, Any]
    generated: VideoInfo
    interpolated: VideoInfo | None
    facts: dict[str, Any]  # generation's: seed, fps, frames, size, GPUs, clips


def seeded(values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` with the generation seed drawn once when it is -1 (the default), so the printed commands, both
    passes of a refine and the run itself all use one seed."""
    spec = next(s for s in specs(GenerateOptions) if s.name == "seed")
    try:
        seed = coerce(spec, values.get("seed", spec.default))
    except BadValue:
        return dict(values)  # reported with the other bad values
    return {**values, "seed": random.randint(0, 2**31 - 1) if seed is None or seed < 0 else seed}


def intermediates(cfg: PipelineConfig) -> list[Path]:
    """What the run keeps in its run directory, none of which --output_path may be: its folders, its manifest and
    every stage's intermediate video (also of the stages this run leaves out: a rerun with them writes there)."""
    run_dir = cfg.run_dir
    return [
        absolute(cfg.preprocess.save_path),
        run_dir / "work",
        run_dir / "logs",
        run_dir / refine.SUB_RUN,
        run_dir / "refine_process",
        run_dir / MANIFEST,
        *(run_dir / f"{name}.mp4" for name in ("generate", "refine", "postprocess", "upscale")),
    ]


def check(cfg: PipelineConfig, problems: Problems, *, ctx: RunContext) -> Planned | None:
    """Every problem of the whole run, added to `problems`: each stage's checks on the options the pipeline gives
    it (a later stage's input described by what the earlier one will write), the run directory and the final
    output. Returns what the dry run needs to describe the later steps."""
    inputs = [absolute(cfg.preprocess.video_path), absolute(cfg.preprocess.refer_path)]
    if cfg.generate.audio_from:
        inputs.append(absolute(cfg.generate.audio_from))
    with problems.check(option="run_dir"):
        check_output_dir(cfg.run_dir, flag="--run_dir", inputs=inputs)
    output = absolute(cfg.pipeline.output_path)
    last = [name for name, path in cfg.outputs().items() if path == output][0]
    with problems.check(option="output_path"):
        for path in intermediates(cfg):
            if output == path or path in output.parents:
                raise UserError(
                    f"--output_path {output}: the run keeps its own {path.name} there; choose an output "
                    "path outside the run's files (e.g. out/final.mp4)"
                )
        check_output_video(output, inputs=inputs, may_replace=cfg.run.overwrite or ctx.owns(last, output))
    pre = preprocess.check(cfg.preprocess, cfg.mask, cfg.run, problems, ctx=ctx)
    if pre is None:  # generation cannot be checked against a preprocessing that is not planned: its options can
        for option_name, message in generate.wan_generate.validation(cfg.generate):
            problems.add(message, option=option_name, stage=generate.STAGE)
        return None
    gen = generate.check(cfg.generate, cfg.run, problems, ctx=ctx, planned=pre.planned)
    if gen is None:
        return None
    outputs = cfg.outputs()
    record = pre.planned
    generated = VideoInfo(
        path=outputs["generate"],
        width=record["width"],
        height=record["height"],
        fps=gen.fps,
        frames=gen.frames,
        duration=gen.frames / gen.fps,
        has_audio=gen.audio is not None,
        codec="h264",
        pix_fmt="yuv420p",
    )
    video = generated
    if cfg.refine:
        refine.check(cfg.refine, cfg.mask, cfg.run, problems, ctx=ctx, planned=video)
        video = dataclasses.replace(video, path=outputs["refine"])
    interpolated = None
    if cfg.postprocess and cfg.pipeline.target_fps is not None and cfg.pipeline.target_fps <= gen.fps:
        problems.add(
            f"--target_fps {cfg.pipeline.target_fps:g} is not above the preprocessing fps "
            f"({float(gen.fps):g}); preprocess at a lower --fps or drop --target_fps",
            option="target_fps",
        )
    elif cfg.postprocess:
        checked = postprocess.check(cfg.postprocess, cfg.run, problems, ctx=ctx, planned=video)
        if checked is not None:
            interpolated = dataclasses.replace(
                video,
                path=outputs["postprocess"],
                fps=checked.target,
                frames=target_frames(video.frames, video.fps, checked.target),
            )
            video = interpolated
    if cfg.upscale:
        upscale.check(cfg.upscale, cfg.run, problems, ctx=ctx, planned=video)
    return Planned(record, generated, interpolated, gen.facts())


def plan(values: Mapping[str, Any]) -> Plan:
    """The whole run's plan: every stage's steps and the facts they use (seed, fps, frames, clips, sizes, GPUs, run
    directory), and every problem at once. Writes nothing and starts no program but ffprobe (and nvidia-smi for
    the GPU count)."""
    problems = Problems()
    values = seeded(values)
    cfg = collect_config(values, problems)
    if cfg is None:
        # Still check everything else, with the bad values left at their defaults: every problem at once.
        rest = collect_config({k: v for k, v in values.items() if not problems.about(k)}, Problems())
        if rest is not None:
            check(rest, problems, ctx=PlanContext.at(rest.run_dir))
        return Plan([], problems.items, {})
    ctx = PlanContext.at(cfg.run_dir)
    planned = check(cfg, problems, ctx=ctx)
    facts: dict[str, Any] = {
        "run_dir": str(cfg.run_dir),
        "output": str(absolute(cfg.pipeline.output_path)),
        "seed": cfg.generate.seed,
    }
    if planned is not None and not problems:
        facts.update(planned.facts)
        if planned.interpolated is not None:
            facts.update(target_fps=planned.interpolated.fps, final_frames=planned.interpolated.frames)
        with problems.check():
            run(cfg, ctx=ctx, planned=planned)
    if ctx.notes:
        facts["notes"] = list(ctx.notes)
    return Plan(ctx.steps if not problems else [], problems.items, facts)


def run(cfg: PipelineConfig, *, ctx: RunContext, planned: Planned | None = None) -> Path:
    """Run every stage in `ctx`'s run directory, each resumable. A dry run (the plan) gets `planned`: what the
    earlier steps will write, so the later ones can be described before they exist."""
    resume = not cfg.pipeline.force
    steps = ["preprocess", "generate"] + [name for name in ("refine", "postprocess", "upscale") if getattr(cfg, name)]
    progress = (lambda _text: None) if ctx.dry_run else ctx.say  # the plan lists the steps itself
    progress(f"run directory: {ctx.run_dir}")

    def step(name: str) -> None:
        progress(f"step {steps.index(name) + 1}/{len(steps)}: {name}")

    step("preprocess")
    generate.prefetch_checkpoint(cfg.generate, ctx)  # its disk reads overlap the preprocessing
    preprocess.run(cfg.preprocess, cfg.mask, cfg.run, ctx=ctx, resume=resume)
    step("generate")
    out = generate.run(cfg.generate, cfg.run, ctx=ctx, resume=resume, planned=planned and planned.record)
    video = planned and planned.generated
    if cfg.refine:
        step("refine")
        out = refine.run(cfg.refine, cfg.mask, cfg.run, ctx=ctx, resume=resume, planned=video)
        video = video and dataclasses.replace(video, path=Path(out))
    if cfg.postprocess:
        step("postprocess")
        out = postprocess.run(cfg.postprocess, cfg.run, ctx=ctx, resume=resume, planned=video)
        video = planned and planned.interpolated
    if cfg.upscale:
        step("upscale")
        out = upscale.run(cfg.upscale, cfg.run, ctx=ctx, resume=resume, planned=video)
    ctx.manifest["result"] = str(out)
    ctx.save()
    progress(f"done: {out}")
    return out


# ---- --config FILE.toml -------------------------------------------------------------------------------------------


def option_specs(parser: argparse.ArgumentParser) -> dict[str, OptionSpec]:
    """Every option pipeline.py takes, by name, as the class that owns its flag declares it."""
    accepted = {a.dest for a in parser._actions}
    owned: dict[str, OptionSpec] = {}
    for cls in STAGE_OPTIONS:
        for spec in specs(cls):
            if spec.name in accepted and spec.name not in owned:
                owned[spec.name] = spec
    return owned


def _toml(value: Any) -> str:
    """A value as it is written in the file (close enough to TOML for messages)."""
    return json.dumps(value, ensure_ascii=False) if not isinstance(value, float) else repr(value)


def config_file_defaults(path: str, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """A TOML file's option values (keys at the top level or under any table), each through the same option spec as
    the command line: UserError listing every bad key as `FILE:key = value: expected ...`, one per line."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--config {path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"--config {path}: not valid TOML ({exc})") from None
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(value if isinstance(value, dict) else {key: value})
    known = option_specs(parser)
    values, bad = {}, []
    for key, value in flat.items():
        spec = known.get(key)
        if spec is None:
            bad.append(
                f"{path}:{key}: unknown option; keys are pipeline.py option names without the dashes "
                "(python pipeline.py --help)"
            )
            continue
        try:
            values[key] = coerce(spec, value)
        except BadValue as exc:
            reason = str(exc) if spec.meta.parse is not None else f"expected {expected(spec)}"
            bad.append(f"{path}:{key} = {_toml(value)}: {reason}")
    if bad:
        raise UserError("\nerror: ".join(bad))
    return values


def _given(argv: Sequence[str]) -> set[str]:
    """The options the command line gives itself (they win over the config file)."""
    parser = build_parser()
    for action in parser._actions:
        action.default, action.required = argparse.SUPPRESS, False
    return set(vars(parser.parse_known_args(argv)[0]))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--doctor" in argv:
        from ..doctor import main as doctor_main

        return doctor_main([a for a in argv if a != "--doctor"])
    parser = build_parser()
    config_only = argparse.ArgumentParser(add_help=False)
    config_only.add_argument("--config")
    config_path = config_only.parse_known_args(argv)[0].config
    config: dict[str, Any] = {}
    if config_path:
        status = report_errors(lambda: config.update(config_file_defaults(config_path, parser)))
        if status:
            return status
        for action in parser._actions:
            if action.dest in config:
                action.required = False  # the file provides it
    values = vars(parser.parse_args(argv))
    given = _given(argv)
    values.update({key: value for key, value in config.items() if key not in given})

    def body() -> None:
        checked = plan(values)
        refuse(checked)
        if values.get("dry_run"):
            print(checked.describe())
            return
        cfg = config_from({**values, "seed": checked.facts["seed"]})
        ctx = RunContext.open(cfg.run_dir, cancel=threading.Event())
        run(cfg, ctx=ctx)

    return report_errors(body)
