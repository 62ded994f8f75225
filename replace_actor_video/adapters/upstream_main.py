"""Shared by the small launchers that run an upstream script as `__main__` after in-memory shims
(practical_rife_launcher.py, realesrgan_launcher.py). They are started as files, so this module is
imported as a sibling, before the launcher hands sys.path[0] to the upstream clone."""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path
from typing import Callable


def run_upstream_script(clone_flag: str, script_name: str, tag: str, shims: Callable[[], None]) -> None:
    """`launcher.py --<clone_flag> CLONE -- <upstream args>`: apply `shims`, then run CLONE/script_name as
    `python script_name` would (the clone first on sys.path, our adapters folder off it, so an adapter module
    such as realesrgan.py cannot shadow the clone's package)."""
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(description=f"run {script_name} with the shims of {tag}")
    parser.add_argument(f"--{clone_flag}", required=True, help="the upstream clone")
    clone = Path(getattr(parser.parse_args(argv[:cut]), clone_flag)).resolve()
    script = clone / script_name
    if not script.is_file():
        sys.exit(f"{tag} {script} not found")
    sys.path[0] = str(clone)
    shims()
    sys.argv = [str(script), *argv[cut + 1:]]
    runpy.run_path(str(script), run_name="__main__")
