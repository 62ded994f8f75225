"""Outputs appear under their final name only when complete, so a rerun can trust what it finds.

Temp names carry the writer's PID (`.<stem>.partial-<pid><suffix>`, `.<name>.old-<pid>`): a run that was
killed leaves them behind, and the next run removes exactly those whose writer is dead."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import psutil

from .errors import UserError

# Hidden names only, so a user's own "notes.partial-3.txt" is never taken for ours.
_LEFTOVER = re.compile(r"^\..+\.(?:partial|old)-(?P<pid>\d+)(?:\.[A-Za-z0-9]+)?$")


def partial_name(final: Path) -> Path:
    """A sibling temp name that keeps the suffix (ffmpeg picks the muxer from it) and is gitignored."""
    return final.with_name(f".{final.stem}.partial-{os.getpid()}{final.suffix}")


def leftover_pid(name: str) -> int | None:
    """The writer's PID when `name` is one of our temp names, else None."""
    match = _LEFTOVER.match(name)
    return int(match["pid"]) if match else None


def _dead(pid: int) -> bool:
    return pid > 0 and not psutil.pid_exists(pid)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove_dead_leftovers(root: Path) -> list[Path]:
    """Remove the temp files and folders under `root` whose writer process is gone; a live writer's are
    kept (another program, such as the Web UI, may be writing next to us). Returns what was removed."""
    removed = []
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            pid = leftover_pid(name)
            if pid is not None and _dead(pid):
                _remove(Path(folder) / name)
                removed.append(Path(folder) / name)
        dirs[:] = [d for d in dirs if (Path(folder) / d).is_dir()]  # do not walk into what was removed
    return removed


def _remove_dead_siblings(final: Path) -> None:
    """Temp versions of `final` left by killed writers (a rerun writes the same output again)."""
    pattern = re.compile(
        rf"^\.(?:{re.escape(final.stem)}\.partial-(\d+){re.escape(final.suffix)}"
        rf"|{re.escape(final.name)}\.old-(\d+))$"
    )
    with contextlib.suppress(OSError):
        for sibling in final.parent.iterdir():
            match = pattern.match(sibling.name)
            if match and _dead(int(match[1] or match[2])):
                _remove(sibling)


def refuse_overwrite(path: Path, overwrite: bool, flag: str = "--overwrite") -> None:
    if path.exists() and not overwrite:
        raise UserError(f"{path} already exists; choose another output path or pass {flag} to replace it")


def write_text_atomic(final: str | Path, text: str) -> None:
    """Write `text` to `final` through a synced temp file and one rename: `final` is either the old or the
    new content, never a torn or empty file, and a failed write (disk full) leaves no temp file behind."""
    final = Path(final)
    tmp = partial_name(final)
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_file(final: str | Path) -> Iterator[Path]:
    """Yield a temp path; on success it is renamed to `final`, on failure it is removed."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_siblings(final)
    tmp = partial_name(final)
    tmp.unlink(missing_ok=True)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"{tmp} was not written")
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Yield an empty temp directory; on success it replaces `final` (the old one removed only after
    the new one is in place), on failure it is removed and `final` is untouched."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_siblings(final)
    tmp = partial_name(final)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        old = None
        if final.exists():
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
