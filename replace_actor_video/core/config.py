"""Where things live: upstream clones, checkpoints and run directories.

Each location resolves as: the CLI flag (e.g. --wan22_dir), else its environment variable, else a folder
of that name in the current directory (the layout install.sh creates)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .options import option


@dataclass(frozen=True)
class Location:
    flag: str
    env: str
    default: str
    what: str

    def default_value(self) -> str:
        return os.environ.get(self.env) or self.default

    def option(self, help: str | None = None, **meta: Any) -> Any:
        """The stage option that names this location (declared here once for every stage that needs it):
        its default is the environment variable, else the folder in the current directory."""
        return option(
            self.default_value(),
            help=f"{help or self.what} (env {self.env})",
            widget="dir",
            group="paths",
            server="location",
            **meta,
        )


WAN22 = Location("--wan22_dir", "WAN22_DIR", "Wan2.2", "Wan2.2 clone")
CHECKPOINT = Location("--ckpt_dir", "WAN_ANIMATE_CKPT", "Wan2.2-Animate-14B", "Wan2.2-Animate-14B checkpoint")
PRACTICAL_RIFE = Location("--rife_pytorch_dir", "PRACTICAL_RIFE_DIR", "Practical-RIFE", "Practical-RIFE clone")
REALESRGAN = Location("--realesrgan_dir", "REALESRGAN_DIR", "Real-ESRGAN", "Real-ESRGAN clone")
SEEDVR = Location("--seedvr_dir", "SEEDVR_DIR", "SeedVR", "SeedVR clone")
DIFFSYNTH = Location("--diffsynth_dir", "DIFFSYNTH_DIR", "DiffSynth-Studio", "DiffSynth-Studio clone")
RUNS = Location("--runs_dir", "RAV_RUNS_DIR", "runs", "run directories")

ALL_UPSTREAMS = (WAN22, CHECKPOINT, PRACTICAL_RIFE, REALESRGAN, SEEDVR, DIFFSYNTH)


def upstream_commit(path: str | Path) -> str:
    """The commit of an upstream clone: git if it is a clone, else the `.rav-commit` file install.sh
    writes for exported trees, else 'unknown'."""
    path = Path(path)
    if (path / ".git").exists():
        proc = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True)
        if proc.returncode == 0:
            return proc.stdout.strip()
    marker = path / ".rav-commit"
    if marker.is_file():
        return marker.read_text().strip()
    return "unknown"


def main(argv: list[str] | None = None) -> int:
    """`python config.py`: where each upstream clone, checkpoint and the runs folder resolve from here."""
    for location in (*ALL_UPSTREAMS, RUNS):
        print(f"{location.what:32} {location.flag:20} ${location.env:20} -> {location.default_value()}")
    return 0
