"""Paths as the stages take them: absolute, and never an output that would replace or contain an input."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .errors import UserError


def absolute(path: str | Path) -> Path:
    return Path(path).expanduser().resolve()


def ensure_not_inside(output: Path, inputs: Sequence[Path]) -> None:
    """Refuse an output location that would replace or contain an input (we never overwrite inputs)."""
    for inp in inputs:
        if inp == output or output in inp.parents:
            raise UserError(f"{output}: this output location holds the input {inp}; choose another output path")
