"""TEMPORARY stand-in for `replace_actor_video.plan` (PLAN_API.md), built by engineer A on `a-structure`.
Deleted when the real plan check reaches main; until then it gives the batch the agreed interface by
running pipeline.py's own dry run on the values (which checks what pipeline.py checks today)."""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import StageFailed, UserError
from ..core.rundir import RunContext
from ..pipeline import run as pipeline


@dataclass(frozen=True)
class Problem:
    message: str
    option: str | None = None
    stage: str | None = None


@dataclass(frozen=True)
class PlannedStep:
    stage: str
    label: str
    argv: list[str]
    inputs: list[str]
    outputs: list[str]


@dataclass
class Plan:
    steps: list[PlannedStep]
    problems: list[Problem]
    facts: dict[str, Any] = field(default_factory=dict)
    text: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        return self.text


def check_pipeline(values: Mapping[str, Any]) -> Plan:
    parser = pipeline.build_parser()
    full = {a.dest: parser.get_default(a.dest) for a in parser._actions if a.dest != "help"}
    full.update(values)
    missing = [name for name in ("video_path", "refer_path") if not full.get(name)]
    if missing:
        return Plan([], [Problem(f"--{name} is required", option=name) for name in missing])
    text = io.StringIO()
    try:
        cfg = pipeline.config_from(full)
        ctx = RunContext.open(cfg.pipeline.run_dir, dry_run=True, cancel=threading.Event(), echo=text)
        with contextlib.redirect_stdout(text):
            pipeline.run(cfg, ctx=ctx)
    except (UserError, StageFailed, TypeError, ValueError) as exc:
        return Plan([], [Problem(str(exc))])
    inputs = [
        str(p)
        for p in (
            cfg.preprocess.video_path,
            cfg.preprocess.refer_path,
            cfg.preprocess.ckpt_dir,
            cfg.preprocess.wan22_dir,
        )
    ]
    steps = [
        PlannedStep(
            "pipeline",
            "pipeline",
            [],
            [str(pipeline.absolute(p)) for p in inputs],
            [str(pipeline.absolute(cfg.pipeline.output_path))],
        )
    ]
    return Plan(steps, [], {"run_dir": cfg.pipeline.run_dir}, text.getvalue())
