"""TEMPORARY stand-in for `replace_actor_video.plan` (PLAN_API.md) until branch a-structure delivers it; deleted
then. Same names and shapes; it checks only what the option specs and the media inputs tell, and it plans
no upstream steps."""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import UserError
from ..core.options import specs
from ..core.stage_cli import RunOptions
from ..media.probe import check_image, probe_video
from ..pipeline import run as pipeline
from ..pipeline.registry import STAGES


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

    @property
    def ok(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        return "\n".join(f"# {s.label}\n{shlex.join(s.argv)}" for s in self.steps)


def _check(stage: str, classes: tuple[type, ...], values: Mapping[str, Any], wired: Iterable[str] = ()) -> Plan:
    problems: list[Problem] = []
    seen: set[str] = set(wired)
    for cls in classes:
        for spec in specs(cls):
            if spec.name in seen:
                continue
            seen.add(spec.name)
            value = values.get(spec.name)
            if spec.required and value in (None, ""):
                problems.append(Problem(f"--{spec.name} is required", spec.name, stage))
                continue
            if value in (None, "") or not spec.meta.cli:
                continue
            try:
                if spec.meta.parse and isinstance(value, str):
                    spec.meta.parse(value)
                elif spec.meta.widget == "video":
                    probe_video(value)
                elif spec.meta.widget == "image":
                    check_image(value)
            except (UserError, ValueError) as exc:
                problems.append(Problem(f"--{spec.name}: {exc}", spec.name, stage))
    return Plan([], problems, {})


def check_stage(stage: str, values: Mapping[str, Any]) -> Plan:
    entry = next(e for e in STAGES if e.name == stage)
    return _check(stage, (*entry.options, RunOptions), values)


def check_pipeline(values: Mapping[str, Any]) -> Plan:
    return _check("pipeline", pipeline.STAGE_OPTIONS, values, pipeline.WIRED)
