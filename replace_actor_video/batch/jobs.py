"""A batch's jobs: rows of a CSV or [[job]] tables of a TOML file, each one pipeline.py run.

A column (or key) is any option pipeline.py takes, by its name in `python pipeline.py --help` without the
dashes. Values for a job come, weakest first, from the options' declared defaults, `--config FILE.toml`,
run_batch.py's own command line (--runs_dir, --overwrite) and the job's row; an empty CSV cell means "not
set here". Each job is checked with the plan check before anything is scheduled; a bad one is reported with
its row number: the spreadsheet row of a CSV (the header is row 1), the N-th [[job]] of a TOML file."""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser from PyPI (requirements.txt)
    import tomli as tomllib

from ..core.errors import UserError
from ..core.options import OptionSpec, format_value, specs
from ..core.rundir import fingerprint
from ..pipeline import run as pipeline
from ..plan import Plan, check_pipeline

# Options a job may not set: they belong to the batch (run_batch.py --dry-run) or make no sense per job.
NOT_PER_JOB = {"dry_run": "--dry-run is a batch option: run_batch.py JOBS --dry-run", "doctor": None, "config": None}
TRUE, FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def option_specs() -> dict[str, OptionSpec]:
    """Every option pipeline.py accepts, by name (each owned by the first class declaring it, as the
    parser does)."""
    accepted = {a.dest for a in pipeline.build_parser()._actions}
    out: dict[str, OptionSpec] = {}
    for cls in pipeline.STAGE_OPTIONS:
        for spec in specs(cls):
            if spec.name in accepted and spec.name not in out:
                out[spec.name] = spec
    return out


def typed(spec: OptionSpec, value: Any, *, text: bool) -> Any:
    """A value as the option's type. A CSV cell is `text` and is read as the command line would read it
    (yes/no options also take true/false, yes/no, on/off, 1/0); a TOML value must already have the type
    (a string for a yes/no option is refused, as for --config). Options with their own parser (--resolution,
    --lora) keep their text: that parser reads it. Raises ValueError."""
    if spec.meta.parse or spec.type is str:
        if isinstance(value, str) or (isinstance(value, list) and not text):
            return value
        raise ValueError(f"{value!r} is not text")
    if isinstance(value, str) and text:
        word = value.strip().lower()
        if spec.type is bool and word in TRUE + FALSE:
            return word in TRUE
        if spec.type is int and word.lstrip("-").isdigit():
            return int(word)
        if spec.type is float:
            try:
                return float(word)
            except ValueError:
                pass
    elif isinstance(value, bool) == (spec.type is bool) and isinstance(value, spec.type):
        return value  # the TOML type is the option's (True is an int to Python, never to us)
    elif spec.type is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    kind = {bool: "true or false", int: "a whole number", float: "a number"}.get(spec.type, spec.type.__name__)
    raise ValueError(f"{value!r} is not {kind}")


@dataclass
class Row:
    number: int
    values: dict[str, Any]  # the options this row sets, typed
    problems: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"row {self.number}"


def _row(number: int, cells: Mapping[str, Any], known: dict[str, OptionSpec], *, text: bool) -> Row:
    row = Row(number, {})
    for name, value in cells.items():
        if text and (value is None or not str(value).strip()):
            continue  # an empty cell: not set by this row
        if name in NOT_PER_JOB or name not in known:
            row.problems.append(
                NOT_PER_JOB.get(name)
                or f"unknown option {name!r} (columns are pipeline.py "
                "option names without dashes; see python pipeline.py --help)"
            )
            continue
        try:
            row.values[name] = typed(known[name], value.strip() if isinstance(value, str) else value, text=text)
        except ValueError as exc:
            row.problems.append(f"{name}: {exc}")
    return row


def read_rows(path: Path) -> list[Row]:
    """The rows of a jobs file (problems in a row are kept with it; a file that cannot be read at all is a
    UserError)."""
    known = option_specs()
    if not path.is_file():
        raise UserError(f"{path}: no such jobs file; pass a .csv or .toml list of jobs")
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames:
                raise UserError(
                    f"{path}: empty; write a header of option names, e.g. video_path,refer_path,output_path"
                )
            rows = []
            for number, cells in enumerate(reader, start=2):
                extra = cells.pop(None, None)  # cells beyond the header's columns
                if not extra and not any((v or "").strip() for v in cells.values()):
                    continue  # a line of empty cells
                row = _row(number, cells, known, text=True)
                if extra:
                    row.problems.append(f"{len(extra)} cell(s) more than the header has columns")
                rows.append(row)
    elif path.suffix.lower() == ".toml":
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise UserError(f"{path}: cannot read it ({exc})") from None
        tables = data.get("job")
        if not isinstance(tables, list) or set(data) - {"job"}:
            raise UserError(f"{path}: write each job as a [[job]] table (defaults go in --config)")
        rows = [_row(number, table, known, text=False) for number, table in enumerate(tables, start=1)]
    else:
        raise UserError(f"{path}: a jobs file is .csv or .toml")
    if not rows:
        raise UserError(f"{path}: no jobs in it")
    return rows


def defaults(config: str | None, cli: Mapping[str, Any]) -> dict[str, Any]:
    """What every job starts from: --config's values (checked like a row), then run_batch.py's own
    command-line values for pipeline options."""
    known = option_specs()
    values: dict[str, Any] = {}
    if config:  # checked through the option specs, every bad key named (FILE:key = value: expected ...)
        values.update(pipeline.config_file_defaults(config, pipeline.build_parser()))
    values.update({k: v for k, v in cli.items() if k in known})
    return values


@dataclass(frozen=True)
class Job:
    """One checked job, ready for a node: everything the task needs travels with it."""

    row: int
    label: str
    argv: list[str]  # pipeline.py's arguments
    cwd: str  # relative paths in the row resolve against it, on every node
    run_dir: str
    output: str
    gpus: int
    inputs: tuple[str, ...]  # files and folders the job reads that exist now: each node must see them too
    key: str  # what "the same job" means for skipping a finished one


def pipeline_argv(values: Mapping[str, Any]) -> list[str]:
    """The pipeline.py arguments that reproduce `values` (defaults left out; booleans as the parser spells
    them), so each job is exactly a command a user could type."""
    parser = pipeline.build_parser()
    argv: list[str] = []
    for action in parser._actions:
        if action.dest not in values or action.dest in NOT_PER_JOB or not action.option_strings:
            continue
        value = values[action.dest]
        if value is None or value == parser.get_default(action.dest):
            continue
        if isinstance(action, argparse.BooleanOptionalAction):
            argv.append(f"--{action.dest}" if value else f"--no-{action.dest}")
        elif isinstance(action, argparse._StoreTrueAction):
            if value:
                argv.append(action.option_strings[0])
        elif isinstance(value, list):
            argv += [action.option_strings[0], *map(str, value)]
        else:
            argv += [action.option_strings[0], format_value(value)]
    return argv


def gpus_needed(values: Mapping[str, Any]) -> int:
    """GPUs Ray reserves for a job: the torchrun processes of --multi_gpu generation (and refine), or of
    SeedVR2 upscaling, else one."""
    need = 1
    if values.get("multi_gpu"):
        nproc = int(values.get("nproc_per_node") or 0)
        if nproc < 2:
            raise UserError(
                "--multi_gpu in a batch needs --nproc_per_node N (2 or more): Ray reserves N GPUs for "
                "the job, so 'every visible GPU' cannot be known before it is placed"
            )
        need = nproc
    if values.get("upscale") == "seedvr":
        need = max(need, int(values.get("num_gpus") or 1))
    return need


@dataclass
class Checked:
    row: Row
    plan: Plan
    job: Job | None

    @property
    def problems(self) -> list[str]:
        return self.row.problems + [p.message for p in self.plan.problems]


def check(rows: list[Row], base: Mapping[str, Any], cwd: Path) -> list[Checked]:
    """The plan check of every row (all problems at once), and the Job of each good one."""
    checked: list[Checked] = []
    owners: dict[str, int] = {}
    for row in rows:
        values = {**base, **row.values}
        gpus = 1
        try:
            gpus = gpus_needed(values)
        except UserError as exc:
            row.problems.append(str(exc))
        plan = check_pipeline(values)
        job = _job(row, values, plan, cwd, gpus) if plan.ok and not row.problems else None
        if job is not None:
            for path in (job.run_dir, job.output):
                if path in owners:
                    row.problems.append(
                        f"{path} is also used by row {owners[path]}; give each job its own output_path (or run_dir)"
                    )
                    job = None
                    break
            else:
                owners.update({job.run_dir: row.number, job.output: row.number})
        checked.append(Checked(row, plan, job))
    return checked


def _job(row: Row, values: Mapping[str, Any], plan: Plan, cwd: Path, gpus: int) -> Job:
    run_dir = str(plan.facts["run_dir"])
    argv = pipeline_argv(values)
    output = str((cwd / str(values.get("output_path") or pipeline.PipelineOptions().output_path)).resolve())
    inside = Path(run_dir)
    inputs = sorted(
        {
            p
            for step in plan.steps
            for p in step.inputs
            if os.path.exists(p) and inside not in Path(p).parents and Path(p) != inside
        }
    )
    return Job(
        row.number,
        f"row {row.number} ({Path(output).name})",
        argv,
        str(cwd),
        run_dir,
        output,
        gpus,
        tuple(inputs),
        fingerprint([argv, str(cwd)]),
    )
