"""run_batch.py: many pipeline runs from a CSV or TOML list of jobs, on Ray (a local instance by default,
a cluster with --address). Every job is checked before anything is scheduled; each is one Ray task asking
for the GPUs it needs, running pipeline.py in its own run directory, so a rerun skips finished jobs and
resumes half-done ones."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..cluster import engine
from ..cluster.board import Board
from ..core.cli import report_errors
from ..core.errors import StageFailed, UserError
from ..core.options import add_to_parser, build, option
from ..core.paths import absolute
from ..core.process import format_argv
from ..core.stage_cli import RunOptions
from . import jobs as jobs_mod
from .task import PIPELINE, finished, run_job


@dataclass(kw_only=True)
class BatchOptions:
    """Batch"""

    config: str | None = option(
        None,
        help="TOML file with defaults for every job (pipeline.py --config format); a job's own cells win",
        widget="file",
        group="batch",
    )
    skip_bad: bool = option(
        False,
        help="run the jobs that pass the plan check even when some rows do not "
        "(default: a bad row stops the batch before anything runs)",
        group="batch",
    )
    summary: str | None = option(
        None,
        help="where to write batch_summary.json (default: <runs_dir>/batch-<jobs file name>/batch_summary.json)",
        group="batch",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Run pipeline.py once per job of a CSV or TOML list, on Ray: a local instance, or a cluster "
        "with --address. Columns are pipeline.py options. See docs/SCALE.md."
    )
    parser.add_argument(
        "jobs", help="CSV (header of pipeline.py option names, one job per row) or TOML ([[job]] tables)"
    )
    seen: set[str] = set()
    for cls in (BatchOptions, engine.EngineOptions, RunOptions):
        add_to_parser(parser, cls, seen=seen)
    return parser


def job_defaults(batch: BatchOptions, run_opts: RunOptions) -> dict[str, Any]:
    """--config's values, then the pipeline options given on run_batch.py's own command line (only those
    given: an untouched --runs_dir must not hide the config's)."""
    untouched = RunOptions()
    cli = {
        name: getattr(run_opts, name)
        for name in ("runs_dir", "overwrite")
        if getattr(run_opts, name) != getattr(untouched, name)
    }
    return jobs_mod.defaults(batch.config, cli)


def report_bad(path: Path, checked: list[jobs_mod.Checked]) -> list[jobs_mod.Checked]:
    bad = [c for c in checked if c.job is None]
    for item in bad:
        for problem in item.problems:
            print(f"error: {path} {item.row.label}: {problem}", file=sys.stderr)
    return bad


def describe(checked: list[jobs_mod.Checked]) -> None:
    """--dry-run: each good job's plan, the command it will run and what it will ask Ray for."""
    for item in checked:
        job = item.job
        if job is None:
            print(f"[batch] {item.row.label}: BAD, will not run ({'; '.join(item.problems)})")
            continue
        state = "finished earlier, will be skipped" if finished(job) else f"will ask Ray for {job.gpus} GPU(s)"
        print(f"[batch] {job.label}: {state}; run directory {job.run_dir}")
        print(f"[batch]   python {format_argv([str(PIPELINE), *job.argv])}")
        for line in item.plan.describe().rstrip().splitlines():
            print(f"    {line}")


def run(path: Path, batch: BatchOptions, eng: engine.EngineOptions, run_opts: RunOptions) -> None:
    engine.validate(eng)
    base = job_defaults(batch, run_opts)
    checked = jobs_mod.check(jobs_mod.read_rows(path), base, Path.cwd())
    bad = report_bad(path, checked)
    if run_opts.dry_run:
        describe(checked)
        if bad and not batch.skip_bad:
            raise UserError(
                f"{len(bad)} of {len(checked)} job(s) in {path} fail the plan check (listed above); "
                "fix them, or pass --skip_bad to run the others"
            )
        print("[batch] dry run: nothing was started")
        return
    if bad and not batch.skip_bad:
        raise UserError(
            f"{len(bad)} of {len(checked)} job(s) in {path} fail the plan check (listed above); nothing "
            "was started; fix them, or pass --skip_bad to run the others"
        )
    good = [c.job for c in checked if c.job is not None]
    summary = (
        Path(batch.summary)
        if batch.summary
        else absolute(base.get("runs_dir", run_opts.runs_dir)) / f"batch-{path.stem}" / "batch_summary.json"
    )
    board = Board(
        [(job.label, job.label) for job in good],
        title=f"batch {path.name}",
        summary_path=summary,
        extra={
            "jobs_file": str(path.resolve()),
            "bad_rows": [{"row": c.row.number, "problems": c.problems} for c in bad],
        },
    )
    todo = []
    for job in good:
        if finished(job) and "--force" not in job.argv:
            board.skipped(job.label, "finished earlier, skipped", {"status": "done", "output": job.output})
        else:
            todo.append(job)
    try:
        if todo:
            engine.connect(eng)
            try:
                engine.run_tasks(
                    run_job,
                    [engine.Task(job.label, job.label, (job,), num_gpus=job.gpus) for job in todo],
                    opts=eng,
                    on_event=board.event,
                )
            finally:
                engine.shutdown()
    finally:
        board.close()
    failed = [j for j in board.jobs.values() if j.status == "failed"]
    if failed or bad:
        what = ", ".join(
            text
            for count, text in (
                (len(failed), f"{len(failed)} job(s) failed"),
                (len(bad), f"{len(bad)} bad row(s) were not run"),
            )
            if count
        )
        raise StageFailed(
            f"{what} (listed above and in {summary}); fix and rerun the same command: finished jobs "
            "are skipped, half-done ones resume"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    values: dict[str, Any] = vars(parser.parse_args(argv))

    def body() -> None:
        run(
            absolute(values["jobs"]),
            build(BatchOptions, values),
            build(engine.EngineOptions, values),
            build(RunOptions, values),
        )

    return report_errors(body)
