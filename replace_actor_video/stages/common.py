"""What every stage CLI shares: location options, the run directory and the error → exit-code mapping."""

from __future__ import annotations

import argparse
import dataclasses
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ..core import config
from ..core.cli import report_errors
from ..core.errors import UserError
from ..core.options import add_to_parser, build, option
from ..core.rundir import RunContext
from ..media.probe import VideoInfo, probe_video


@dataclass(kw_only=True)
class RunOptions:
    """Run control"""

    runs_dir: str = option(config.RUNS.default_value(), help="where run directories (manifest, logs) go "
                           f"(env {config.RUNS.env})", widget="dir", group="paths", cli=True, server="location")
    overwrite: bool = option(False, help="replace an existing output instead of refusing", group="run")
    dry_run: bool = option(False, aliases=("--dry-run",), help="print every upstream command and run nothing",
                           group="run")


def wan22_option() -> Any:
    return option(config.WAN22.default_value(), help=f"Wan2.2 clone (env {config.WAN22.env})",
                  widget="dir", group="paths", server="location")


def ckpt_option() -> Any:
    return option(config.CHECKPOINT.default_value(),
                  help=f"Wan2.2-Animate-14B checkpoint folder (env {config.CHECKPOINT.env})",
                  widget="dir", group="paths", server="location")


def probe_input(path: str | Path, ctx: RunContext, planned: VideoInfo | None) -> VideoInfo:
    """Facts about a stage's input video. In a dry-run pipeline the input of a later stage does not exist
    yet: `planned` describes what the earlier stage will write, so the command can still be printed."""
    if ctx.dry_run and planned is not None and not Path(path).exists():
        return dataclasses.replace(planned, path=Path(path))
    return probe_video(path, count_frames=True)


def absolute(path: str | Path) -> Path:
    return Path(path).expanduser().resolve()


def ensure_not_inside(output: Path, inputs: Sequence[Path]) -> None:
    """Refuse an output location that would replace or contain an input (we never overwrite inputs)."""
    for inp in inputs:
        if inp == output or output in inp.parents:
            raise UserError(f"{output}: this output location holds the input {inp}; choose another output path")


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
