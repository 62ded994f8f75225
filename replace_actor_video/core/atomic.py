"""Outputs appear under their final name only when complete, so a rerun can trust what it finds."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterator

from .errors import UserError


def partial_name(final: Path) -> Path:
    """A sibling temp name that keeps the suffix (ffmpeg picks the muxer from it) and is gitignored."""
    return final.with_name(f".{final.stem}.partial-{os.getpid()}{final.suffix}")


def refuse_overwrite(path: Path, overwrite: bool, flag: str = "--overwrite") -> None:
    if path.exists() and not overwrite:
        raise UserError(f"{path} already exists; choose another output path or pass {flag} to replace it")


@contextlib.contextmanager
def atomic_file(final: str | Path) -> Iterator[Path]:
    """Yield a temp path; on success it is renamed to `final`, on failure it is removed."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
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
