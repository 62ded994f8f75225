"""Runs inside the upstream tool's interpreter. Shared by the small launchers that run an upstream script as
`__main__` after in-memory shims (rife/runtime/launcher.py, realesrgan/runtime/launcher.py). They are started
as files and put this folder on sys.path to import it (`launcher_path`), before the clone takes sys.path[0]."""

from __future__ import annotations

import argparse
import runpy
import sys
from collections.abc import Callable
from pathlib import Path

OURS = Path(__file__).resolve().parents[1]  # upstream/: this folder and every launcher's runtime/ folder


def _ours(entry: str) -> bool:
    path = Path(entry or ".").resolve()
    return path == OURS or OURS in path.parents


def run_upstream_script(clone_flag: str, script_name: str, tag: str, shims: Callable[[], None]) -> None:
    """`launcher.py --<clone_flag> CLONE -- <upstream args>`: apply `shims`, then run CLONE/script_name as
    `python script_name` would: the clone first on sys.path and our folders off it, so a module of ours cannot
    shadow one of the clone's packages."""
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(description=f"run {script_name} with the shims of {tag}")
    parser.add_argument(f"--{clone_flag}", required=True, help="the upstream clone")
    clone = Path(getattr(parser.parse_args(argv[:cut]), clone_flag)).resolve()
    script = clone / script_name
    if not script.is_file():
        sys.exit(f"{tag} {script} not found")
    sys.path[:] = [str(clone)] + [p for p in sys.path if not _ours(p)]
    shims()
    sys.argv = [str(script), *argv[cut + 1 :]]
    runpy.run_path(str(script), run_name="__main__")
