"""Paths as the stages take them: absolute, never an output that would replace or contain an input, and outputs
checked before any work (a folder we can write to, not a file where a folder goes, not an existing result)."""

from __future__ import annotations

import tempfile
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


def _writable(folder: Path) -> None:
    """Try it: a nameless temporary file in `folder` (gone when closed), so a read-only mount, missing
    permissions or a full quota show up now and not after the GPU work."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UserError(f"{folder}: cannot write there ({exc.strerror}); choose another folder") from None


def _existing_ancestor(path: Path) -> Path:
    return next(p for p in (path, *path.parents) if p.exists())


def check_output_file(
    path: Path, *, inputs: Sequence[Path] = (), may_replace: bool = False, run_dir: Path | None = None
) -> None:
    """What an output file must be before any work: not a folder, not an input (nor a folder holding one), in an
    existing folder we can write to (inside `run_dir`, which the run creates, in one that can be made), and new
    unless it may be replaced (--overwrite, or this run wrote it). The messages name the path, not the flag: the
    pipeline checks its --output_path, and the last stage the same file as its own output."""
    if path.is_dir():
        raise UserError(f"{path}: this is a folder; pass a file path such as {path / 'out.mp4'}")
    ensure_not_inside(path, inputs)
    if run_dir is not None and run_dir in path.parents:
        check_output_dir(path.parent, flag="the run directory")
    elif not path.parent.is_dir():
        raise UserError(f"{path}: the folder {path.parent} does not exist; create it or choose another output path")
    else:
        _writable(path.parent)
    if path.exists() and not may_replace:
        raise UserError(f"{path}: the file exists; choose another output path or pass --overwrite")


def check_output_dir(path: Path, *, flag: str, inputs: Sequence[Path] = (), may_replace: bool = True) -> None:
    """What an output folder (a run directory, a preprocessing folder) must be: not a file, not an input, and
    creatable where it is; with `may_replace` False it must not hold results yet."""
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path}: this is a file, not a folder; pass a folder path")
    ensure_not_inside(path, inputs)
    ancestor = _existing_ancestor(path)
    if not ancestor.is_dir():
        raise UserError(f"{flag} {path}: {ancestor} is a file, not a folder; pass a folder path")
    _writable(ancestor)
    try:
        holds = path.is_dir() and any(path.iterdir())
    except OSError as exc:
        raise UserError(f"{flag} {path}: cannot read it ({exc.strerror}); choose another folder") from None
    if holds and not may_replace:
        raise UserError(f"{flag} {path}: it already holds results; choose another folder or pass --overwrite")
