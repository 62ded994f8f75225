"""The plan check, one function for every front end (docs/ARCHITECTURE.md, "The plan"):
`check_stage` for one stage CLI's options, `check_pipeline` for pipeline.py's. Each builds the whole run's plan
(every step's command, inputs and outputs; the facts the run will use: seed, fps, frames, clips, sizes, GPUs, run
directory) and finds every problem at once, before anything runs: it writes nothing, creates no run directory and
starts no program but ffprobe (and nvidia-smi for the GPU count), and never raises for bad input.

`values` is a flat mapping of option name → value as a front end has it: argparse's namespace, a TOML config's
keys, a form's values (text is parsed through the option specs, so a bad value is a Problem naming its option).
Missing keys take the declared defaults. A run starts only when `plan.ok`; running with the same values plus
`plan.facts["seed"]` runs exactly the printed commands.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .core.planning import Plan, PlannedStep, Problem
from .pipeline import refine
from .pipeline import run as pipeline
from .stages import generate, mask, postprocess, preprocess, upscale

__all__ = ["Plan", "PlannedStep", "Problem", "check_pipeline", "check_stage"]

STAGE_PLANS: dict[str, Callable[[Mapping[str, Any]], Plan]] = {
    "preprocess": preprocess.plan,
    "mask": mask.plan,
    "generate": generate.plan,
    "refine": refine.plan,
    "postprocess": postprocess.plan,
    "upscale": upscale.plan,
}


def check_stage(stage: str, values: Mapping[str, Any]) -> Plan:
    """The plan of one stage CLI (`run_<stage>.py`) with these option values."""
    if stage not in STAGE_PLANS:
        return Plan([], [Problem(f"unknown stage {stage!r}; one of {', '.join(STAGE_PLANS)}")], {})
    return STAGE_PLANS[stage](values)


def check_pipeline(values: Mapping[str, Any]) -> Plan:
    """The plan of pipeline.py with these option values."""
    return pipeline.plan(values)
