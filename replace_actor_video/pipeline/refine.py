"""Refine (optional): a second replace pass over an already generated video, to clean up what the first
pass left (clothing remnants, mask borders). It is the preprocess and generate stages run back to back
in replace mode, with the generated video as the driving video and the same reference image; the
source audio the generated video carries goes through to the result. Composing two stages, it lives with
the pipeline (stages never import each other).

Its options are the two stages' own declarations (same help, parsing and defaults), taken whole: an option
added to PreprocessOptions or GenerateOptions is a refine option too, with no edit here. Only --input is new,
and refine sets the driving video, the preprocessing folder and replace mode itself."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.atomic import refuse_overwrite
from ..core.errors import UserError
from ..core.options import as_dict, build, combined, option, same_as
from ..core.paths import absolute
from ..core.planning import Plan, Problems
from ..core.rundir import RunContext, describe_path, fingerprint
from ..core.stage_cli import RunOptions, plan_stage
from ..core.stage_cli import main as stage_main
from ..mask.options import MaskOptions
from ..media.probe import VideoInfo
from ..stages import generate, preprocess
from ..upstream.wan.generate import GenerateOptions
from ..upstream.wan.preprocess import PreprocessOptions

STAGE = "refine"
SUB_RUN = "refine"  # the inner preprocess/generate records live in <run dir>/refine/, apart from a first pass
SET_HERE = {"video_path", "src_root_path", "replace", "retarget", "use_flux"}  # refine's own wiring


@dataclass(kw_only=True)
class RefineOwnOptions:
    """Refine (second replace pass over a generated video)"""

    input: str = option(
        label="Generated video",
        help="the generated video to refine (output of run_generation.py --replace)",
        widget="video",
        group="inputs",
    )
    refer_path: str = same_as(PreprocessOptions, "refer_path", help="the reference image of the first pass")
    save_path: str = same_as(
        PreprocessOptions,
        "save_path",
        default="refine_process",
        help="folder for the refine pass's preprocessing results",
    )
    save_file: str = same_as(GenerateOptions, "save_file", default="refined.mp4", aliases=())
    fps: int = same_as(
        PreprocessOptions,
        "fps",
        default=-1,
        help="frames per second to sample the input at; -1 keeps the generated video's fps",
    )
    audio_from: str | None = same_as(
        GenerateOptions,
        "audio_from",
        help="take the audio from this file (e.g. the original source video) instead of the input",
    )


# The contour mask's options come with MaskOptions (OPTION_CLASSES); iterations/k/w_len/h_len shape the official one.
RefineOptions = combined("RefineOptions", RefineOwnOptions, PreprocessOptions, GenerateOptions, drop=SET_HERE)
OPTION_CLASSES = [RefineOptions, MaskOptions, RunOptions]


def stage_options(opts: RefineOptions) -> tuple[PreprocessOptions, GenerateOptions]:
    """The two stages' options for a replace pass over `opts.input`."""
    values = vars(opts)
    pre = build(
        PreprocessOptions, {**values, "video_path": opts.input, "replace": True, "retarget": False, "use_flux": False}
    )
    gen = build(GenerateOptions, {**values, "src_root_path": opts.save_path, "replace": True})
    return pre, gen


@dataclass(frozen=True)
class Checked:
    """The two inner stages' resolved facts."""

    pre: preprocess.Checked
    gen: generate.Checked

    @property
    def resolved(self) -> dict[str, Any]:
        return self.gen.resolved

    def facts(self) -> dict[str, Any]:
        return {**self.gen.facts(), "refine_of": str(self.pre.video.path)}


def check(
    opts: RefineOptions,
    mask: MaskOptions,
    run_opts: RunOptions,
    problems: Problems,
    *,
    ctx: RunContext,
    planned: VideoInfo | None = None,
) -> Checked | None:
    """Every problem the refine pass would meet: its two stages' checks on the options refine gives them, with the
    inner run directory where their records go; `planned` stands in for an input an earlier step writes."""
    pre, gen = stage_options(opts)
    inner = ctx.nested(SUB_RUN)
    if absolute(opts.save_file) == absolute(opts.input):
        problems.add(
            f"{absolute(opts.save_file)}: --save_file is the input; choose another output path",
            option="save_file",
            stage=STAGE,
        )
    pre_checked = preprocess.check(pre, mask, run_opts, problems, ctx=inner, planned=planned)
    planned_record = pre_checked.planned if pre_checked else None
    if planned_record is None:
        return None
    gen_checked = generate.check(gen, run_opts, problems, ctx=inner, planned=planned_record, creates=ctx.run_dir)
    return Checked(pre_checked, gen_checked) if gen_checked else None


def run(
    opts: RefineOptions,
    mask: MaskOptions,
    run_opts: RunOptions,
    *,
    ctx: RunContext,
    resume: bool = False,
    planned: VideoInfo | None = None,
) -> Path:
    """Preprocess `input` in replace mode into `save_path`, generate into `save_file`. With `resume`, a
    finished refine of the same input and options in this run directory is kept."""
    problems = Problems()
    checked = check(opts, mask, run_opts, problems, ctx=ctx, planned=planned)
    if checked is None:
        raise UserError(problems.items[0].message)
    pre, gen = stage_options(opts)
    gen = dataclasses.replace(gen, seed=checked.gen.opts.seed)  # the seed the checks drew, not a second one
    input_path, save_file = absolute(opts.input), absolute(opts.save_file)
    inputs = {"input": describe_path(input_path), "refer_path": describe_path(absolute(opts.refer_path))}
    fp = fingerprint([as_dict(opts), as_dict(mask), inputs])
    if resume and not ctx.dry_run and ctx.is_done(STAGE, fp):
        ctx.say(f"refine: up to date, keeping {save_file}")
        return save_file
    refuse_overwrite(save_file, run_opts.overwrite or ctx.owns(STAGE, save_file))

    # The inner stages keep their own manifest and logs in <run dir>/refine, so a pipeline's first
    # preprocess/generate records are not replaced by the refine pass's.
    inner = ctx.nested(SUB_RUN)
    if ctx.dry_run:
        preprocess.run(pre, mask, run_opts, ctx=inner, resume=resume, planned=planned)
        return generate.run(gen, run_opts, ctx=inner, resume=resume, planned=checked.pre.planned, creates=ctx.run_dir)

    with ctx.running(
        STAGE,
        options={**as_dict(opts), "mask": as_dict(mask)},
        inputs=inputs,
        upstream={"run_dir": str(inner.run_dir)},
        fp=fp,
        outputs=[save_file],
    ):
        ctx.say("refine 1/2: preprocess the generated video (replace mode)")
        preprocess.run(pre, mask, run_opts, ctx=inner, resume=resume)
        ctx.say("refine 2/2: generate (replace mode)")
        out = generate.run(gen, run_opts, ctx=inner, resume=resume, creates=ctx.run_dir)
    ctx.say(f"refine done: {out}")
    return out


def plan(values: Mapping[str, Any]) -> Plan:
    """The plan of `run_refine.py` with these option values (core/stage_cli.plan_stage)."""
    return plan_stage(STAGE, OPTION_CLASSES, values, check=check, run=run)


def main(argv: list[str] | None = None) -> int:
    return stage_main(
        description="Refine (optional): a second replace pass (preprocess + generation) over a "
        "generated video, to reduce artifacts.",
        option_classes=OPTION_CLASSES,
        plan=plan,
        run=run,
        argv=argv,
        stage=STAGE,
    )


if __name__ == "__main__":
    sys.exit(main())
