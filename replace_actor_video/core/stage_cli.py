"""What every stage CLI shares: the run-control options, the run directory and the error → exit-code mapping."""

from __future__ import annotations

import argparse
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from . import config
from .cli import report_errors
from .options import add_to_parser, build, option
from .rundir import RunContext


@dataclass(kw_only=True)
class RunOptions:
    """Run control"""

    runs_dir: str = option(config.RUNS.default_value(), help="where run directories (manifest, logs) go "
                           f"(env {config.RUNS.env})", widget="dir", group="paths", cli=True, server="location")
    overwrite: bool = option(False, help="replace an existing output instead of refusing", group="run")
    dry_run: bool = option(False, aliases=("--dry-run",), help="print every upstream command and run nothing",
                           group="run")


def main(*, description: str, option_classes: Sequence[type], run: Callable[..., Any],
         argv: Sequence[str] | None = None, stage: str) -> int:
    """Parse the stage's options (derived from its dataclasses), run it in a fresh run directory, and map
    failures to one line on stderr and an exit code: 2 bad input, 1 upstream failure, 130 cancelled."""
    parser = argparse.ArgumentParser(description=description)
    seen: set[str] = set()
    for cls in option_classes:
        add_to_parser(parser, cls, seen=seen)
    values = vars(parser.parse_args(argv))

    def body() -> None:
        opts = [build(cls, values) for cls in option_classes]
        run_opts = next(o for o in opts if isinstance(o, RunOptions))
        ctx = RunContext.create(run_opts.runs_dir, stage, dry_run=run_opts.dry_run, cancel=threading.Event())
        run(*opts, ctx=ctx)

    return report_errors(body)
