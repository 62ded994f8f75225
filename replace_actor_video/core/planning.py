"""The plan of a run, checked before any work: every step's command, inputs and outputs, the facts the run will
use (seed, fps, frames, clips, sizes, GPUs, run directory) and every problem found, all at once.

`replace_actor_video/plan.py` is the interface the front ends call (`check_stage`, `check_pipeline`); this module
holds what the stages and the pipeline build it with: the data classes, a collector that turns the one-line
UserErrors of the existing checks into Problems instead of stopping at the first, and a run context that records
the steps of a dry run instead of printing them.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from .errors import UserError
from .process import format_argv
from .rundir import MANIFEST, RunContext


@dataclass(frozen=True)
class Problem:
    message: str  # one line: what is wrong and how to fix it (what the CLI prints after "error: ")
    option: str | None = None  # the option (dataclass field name) it is about, so a form can show it there
    stage: str | None = None  # "preprocess", "generate", ... when it belongs to one stage


@dataclass(frozen=True)
class PlannedStep:
    stage: str  # "preprocess", "mask", "generate", "refine", "postprocess", "upscale"
    label: str  # e.g. "generate (official generate.py via launcher)"
    argv: list[str]  # the exact command that will run (display only, never given to a shell)
    inputs: list[str]  # absolute paths read by this step (may not exist yet: written by an earlier step)
    outputs: list[str]  # absolute paths written by this step


@dataclass
class Plan:
    steps: list[PlannedStep]
    problems: list[Problem]
    facts: dict[str, Any]

    @property
    def ok(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        """What --dry-run prints: the resolved facts, then every command (shell-quoted, copy-pasteable)."""
        lines = [
            f"[plan] {name}: {_fact_text(value)}"
            for name, value in self.facts.items()
            if name != "notes" and value is not None
        ]
        lines += [f"[plan] note: {note}" for note in self.facts.get("notes", ())]
        lines += [f"[dry-run] {step.label}: {format_argv(step.argv)}" for step in self.steps]
        lines += [f"error: {problem.message}" for problem in self.problems]
        return "\n".join(lines)


def _fact_text(value: Any) -> str:
    if isinstance(value, Fraction):
        return str(value) if value.denominator == 1 else f"{value} ({float(value):.3f})"
    if isinstance(value, (list, tuple)):
        return "x".join(map(str, value)) if all(isinstance(v, int) for v in value) else ", ".join(map(str, value))
    return str(value)


class Problems:
    """Problems found so far; `check()` turns a UserError raised inside it into one, so the existing checks (which
    raise the one-line errors the CLIs print) can all run and report at once."""

    def __init__(self) -> None:
        self.items: list[Problem] = []

    def add(self, message: str, *, option: str | None = None, stage: str | None = None) -> None:
        if not any(p.message == message for p in self.items):  # the same input checked for two stages: once
            self.items.append(Problem(message, option, stage))

    @contextlib.contextmanager
    def check(self, *, option: str | None = None, stage: str | None = None) -> Iterator[None]:
        try:
            yield
        except UserError as exc:
            self.add(str(exc), option=option, stage=stage)

    def mentions(self, text: str) -> bool:
        """Whether a problem already names `text` (a path: one refusal per file, not one per stage reading it)."""
        return any(text in p.message for p in self.items)

    def about(self, option: str) -> bool:
        """Whether a problem names `option` already (later checks that need its value are skipped)."""
        return any(p.option == option for p in self.items)

    def __len__(self) -> int:
        return len(self.items)


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """The manifest of an existing run directory (to know which outputs an earlier run here owns), or {}."""
    try:
        return json.loads((run_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}


@dataclass
class PlanContext(RunContext):
    """A dry run that records each step instead of printing it and never touches the disk: no run directory, no
    manifest, no lock. Messages the stages say go to `notes`."""

    steps: list[PlannedStep] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stage_name: str | None = None  # set for a nested run (refine): its inner steps belong to that stage

    @classmethod
    def at(cls, run_dir: Path) -> PlanContext:
        run_dir = Path(run_dir).resolve()
        return cls(run_dir=run_dir, dry_run=True, echo=None, manifest=read_manifest(run_dir))

    def nested(self, name: str) -> PlanContext:
        inner = PlanContext.at(self.run_dir / name)
        inner.steps, inner.notes, inner.stage_name = self.steps, self.notes, self.stage_name or name
        return inner

    def step(
        self,
        label: str,
        argv: Sequence[str],
        *,
        stage: str,
        expected_outputs: Sequence[Path] = (),
        inputs: Sequence[Path] = (),
        **_how: Any,
    ) -> float:
        """Record the step; `**_how` (cwd, env, runner) decide how it runs, not what."""
        self.steps.append(
            PlannedStep(
                self.stage_name or stage,
                label,
                [str(a) for a in argv],
                [str(Path(p)) for p in inputs],
                [str(Path(p)) for p in expected_outputs],
            )
        )
        return 0.0

    def say(self, text: str) -> None:
        self.notes.append(text)

    def save(self) -> None:
        """Nothing is written while planning."""
