"""What every stage CLI shares: the run-control options, the plan checked before any work, the run directory and
the error → exit-code mapping."""

from __future__ import annotations

import argparse
import dataclasses
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import config
from .cli import report_errors
from .errors import UserError
from .options import add_to_parser, build, collect, option
from .paths import absolute, check_output_dir
from .planning import Plan, PlanContext, Problems
from .rundir import RunContext, new_run_dir

# Facts of a plan that the run must take over as option values, so it runs exactly the printed commands.
RESOLVED_OPTIONS = ("seed",)


@dataclass(kw_only=True)
class RunOptions:
    """Run control"""

    runs_dir: str = option(
        config.RUNS.default_value(),
        help=f"where run directories (manifest, logs) go (env {config.RUNS.env})",
        widget="dir",
        group="paths",
        cli=True,
        server="location",
    )
    overwrite: bool = option(False, help="replace an existing output instead of refusing", group="run")
    dry_run: bool = option(
        False, aliases=("--dry-run",), help="print every upstream command and run nothing", group="run"
    )


def build_all(
    option_classes: Sequence[type], values: Mapping[str, Any], problems: Problems, stage: str | None = None
) -> list[Any] | None:
    """Each class built from `values` through the option specs; every bad value becomes a problem."""
    built = []
    for cls in option_classes:
        obj, bad = collect(cls, values)
        for name, message in bad:
            problems.add(message, option=name, stage=stage)
        built.append(obj)
    return None if any(obj is None for obj in built) else built


def plan_stage(
    stage: str,
    option_classes: Sequence[type],
    values: Mapping[str, Any],
    *,
    check: Callable[..., Any],
    run: Callable[..., Any],
    run_dir: Path | None = None,
) -> Plan:
    """The plan of one stage CLI: its options built from `values`, the stage's `check(*options, problems, ctx=)`
    (every problem at once), then its `run` as a dry run that records the steps. Writes nothing and starts no
    program but ffprobe (and nvidia-smi for the GPU count). `run_dir` defaults to a fresh one under --runs_dir."""
    problems = Problems()
    facts: dict[str, Any] = {}
    objs = build_all(option_classes, values, problems, stage)
    if objs is None:
        return Plan([], problems.items, facts)
    run_opts = next(o for o in objs if isinstance(o, RunOptions))
    with problems.check(option="runs_dir"):
        check_output_dir(absolute(run_opts.runs_dir), flag="--runs_dir")
    run_dir = run_dir or new_run_dir(run_opts.runs_dir, stage)
    ctx = PlanContext.at(run_dir)
    checked = check(*objs, problems, ctx=ctx)
    if checked is not None and not problems:
        resolved = getattr(checked, "resolved", {})
        objs = [
            dataclasses.replace(o, **{k: v for k, v in resolved.items() if k in o.__dataclass_fields__}) for o in objs
        ]
        facts.update(getattr(checked, "facts", dict)())
        with problems.check(stage=stage):
            run(*objs, ctx=ctx)
    facts["run_dir"] = str(run_dir)
    if ctx.notes:
        facts["notes"] = list(ctx.notes)
    return Plan(ctx.steps if not problems else [], problems.items, facts)


def refuse(plan: Plan) -> None:
    """UserError with every problem of `plan`, one line each (report_errors prints 'error: ' before the first)."""
    if not plan.ok:
        raise UserError("\nerror: ".join(problem.message for problem in plan.problems))


def main(
    *,
    description: str,
    option_classes: Sequence[type],
    run: Callable[..., Any],
    plan: Callable[[Mapping[str, Any]], Plan] | None = None,
    argv: Sequence[str] | None = None,
    stage: str,
) -> int:
    """Parse the stage's options (derived from its dataclasses), check the whole plan before any work (a dry run
    prints it), run it in the plan's run directory, and map failures to one line on stderr and an exit code:
    2 bad input, 1 upstream failure, 130 cancelled. Without `plan` (a CLI that is no stage of the pipeline, such
    as run_training.py, which checks and prints its own dry run) the options go straight to `run`."""
    parser = argparse.ArgumentParser(description=description)
    seen: set[str] = set()
    for cls in option_classes:
        add_to_parser(parser, cls, seen=seen)
    values = vars(parser.parse_args(argv))

    def body() -> None:
        if plan is None:
            opts = [build(cls, values) for cls in option_classes]
            run_opts = next(o for o in opts if isinstance(o, RunOptions))
            run(
                *opts,
                ctx=RunContext.create(run_opts.runs_dir, stage, dry_run=run_opts.dry_run, cancel=threading.Event()),
            )
            return
        checked = plan(values)
        refuse(checked)
        if values.get("dry_run"):
            print(checked.describe())
            return
        resolved = {**values, **{k: checked.facts[k] for k in RESOLVED_OPTIONS if k in checked.facts}}
        opts = [build(cls, resolved) for cls in option_classes]
        ctx = RunContext.open(checked.facts["run_dir"], cancel=threading.Event())
        run(*opts, ctx=ctx)

    return report_errors(body)
