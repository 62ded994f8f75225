"""What the server decides and a browser never does: where the upstream clones, interpreters, binaries and
checkpoints are (options marked `server="location"` in their spec), and which folders hold the weights a
browser may pick from (options marked `server="weights"`: LoRA files, SAM2 checkpoints).

They come from app_ui.py's command line (one flag per marked option, derived from the specs), a TOML file
read at start (`--config`), or the environment (the options' own defaults, e.g. WAN22_DIR). A browser can
only choose a file name from the weight folders' listings; every job's command is checked against these
settings before it starts (`check_args`), whatever a request carried. No gradio."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser from PyPI (requirements.txt)
    import tomli as tomllib

from ..core.errors import UserError
from ..core.options import OptionSpec, specs
from ..mask.options import SAM2_DEFAULT
from ..pipeline.registry import STAGES
from ..pipeline.run import STAGE_OPTIONS

LOCATION, WEIGHTS = "location", "weights"
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".ckpt", ".bin")
# Options the UI sets itself for each job (its folder), inside the runs folder: never a browser's choice.
JOB_FOLDERS = frozenset({"runs_dir", "run_dir"})


def ui_option_classes() -> tuple[type, ...]:
    """Every option class a UI form is built from (the stages' and the pipeline's), each once."""
    seen: dict[type, None] = {}
    for cls in (*STAGE_OPTIONS, *(c for entry in STAGES for c in entry.options)):
        seen.setdefault(cls, None)
    return tuple(seen)


def server_specs(kind: str) -> list[OptionSpec]:
    """The options of `kind` (location or weights) of every UI form, one spec per option name."""
    found: dict[str, OptionSpec] = {}
    for cls in ui_option_classes():
        for spec in specs(cls):
            if spec.meta.server == kind:
                found.setdefault(spec.name, spec)
    return list(found.values())


def weights_flag(name: str) -> str:
    return f"{name}_dir"


def add_server_flags(parser: argparse.ArgumentParser) -> None:
    """One app_ui.py flag per server option: `--wan22_dir ...` (same name as the stage CLIs), and
    `--lora_dir`, `--sam2_checkpoint_dir` (repeatable) for the folders a browser may pick weights from."""
    group = parser.add_argument_group("server settings (a browser can never set these; see docs/UI.md)")
    for spec in server_specs(LOCATION):
        if spec.name in JOB_FOLDERS:
            continue  # the UI's own --runs_dir decides where jobs go
        default = f" (default: {spec.default})" if spec.default is not None else ""
        group.add_argument(f"--{spec.name}", default=None, help=f"{spec.meta.help}{default}")
    for spec in server_specs(WEIGHTS):
        flag = weights_flag(spec.name)
        env = f"RAV_{flag.upper()}"
        group.add_argument(
            f"--{flag}",
            action="append",
            default=None,
            help=f"a folder whose {spec.meta.label or spec.name} files the UI offers (repeatable; "
            f"env {env}, several separated by '{os.pathsep}')",
        )


def read_config(path: str, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """app_ui.py settings from a TOML file: keys are the flags' names (wan22_dir = "/srv/Wan2.2",
    lora_dir = ["/srv/loras"], port = 7860). Unknown keys and wrong types are refused by name."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise UserError(f"--config {path}: cannot read it ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"--config {path}: not valid TOML ({exc})") from None
    actions = {a.dest: a for a in parser._actions if a.dest not in ("help", "config")}
    out: dict[str, Any] = {}
    for key, value in data.items():
        action = actions.get(key)
        if action is None:
            raise UserError(f"{path}:{key}: unknown setting; use one of {', '.join(sorted(actions))}")
        if isinstance(action, argparse._AppendAction):
            value = [value] if isinstance(value, str) else value
            if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                raise UserError(f"{path}:{key}: {value!r} is not a folder or a list of folders")
        elif isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            if not isinstance(value, bool):
                raise UserError(f"{path}:{key}: {value!r} is not true or false")
        elif action.type is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise UserError(f"{path}:{key}: {value!r} is not a whole number")
        elif not isinstance(value, str):
            raise UserError(f"{path}:{key}: {value!r} is not text; write it in quotes")
        out[key] = value
    return out


def _absolute(text: str, base: Path) -> str:
    path = Path(text).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


@dataclass(frozen=True)
class ServerSettings:
    """The resolved server settings: absolute locations, and the weight folders per weights option."""

    locations: Mapping[str, str | None]  # option name → absolute path, or None: the stage's own default
    weight_dirs: Mapping[str, tuple[Path, ...]] = field(default_factory=dict)
    runs_dir: Path = Path("runs")

    @classmethod
    def from_args(cls, args: argparse.Namespace, *, base: Path, runs_dir: Path) -> ServerSettings:
        """From app_ui.py's parsed flags; relative paths start at `base` (where app_ui.py was started), as
        they would for a stage CLI started there."""
        locations: dict[str, str | None] = {}
        for spec in server_specs(LOCATION):
            if spec.name in JOB_FOLDERS:
                continue
            value = getattr(args, spec.name, None)
            value = value if value is not None else spec.default
            locations[spec.name] = _absolute(value, base) if isinstance(value, str) and value else None
        dirs: dict[str, tuple[Path, ...]] = {}
        for spec in server_specs(WEIGHTS):
            flag = weights_flag(spec.name)
            given = getattr(args, flag, None) or [
                p for p in os.environ.get(f"RAV_{flag.upper()}", "").split(os.pathsep) if p
            ]
            if not given and spec.name == "sam2_checkpoint" and locations.get("ckpt_dir"):
                given = [str(Path(locations["ckpt_dir"]) / SAM2_DEFAULT.parent)]  # where the stages look
            dirs[spec.name] = tuple(Path(_absolute(p, base)) for p in given)
        return cls(locations, dirs, runs_dir.resolve())

    # -- weights a browser may pick ------------------------------------------------------------------
    def weight_files(self, name: str) -> dict[str, Path]:
        """Display name → file, for every weights file in the option's folders (a name found in two
        folders is shown with its folder's name in front)."""
        found: dict[str, Path] = {}
        for folder in self.weight_dirs.get(name, ()):
            if not folder.is_dir():
                continue
            for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in WEIGHT_SUFFIXES):
                shown = str(path.relative_to(folder))
                if shown in found:
                    shown = f"{folder.name}/{shown}"
                found.setdefault(shown, path)
        return found

    def resolve_weights(self, name: str, picks: Iterable[str]) -> list[str]:
        """Picked names (`NAME` or `NAME:SUFFIX`, e.g. a LoRA weight) → the files' paths (suffix kept)."""
        files = self.weight_files(name)
        out = []
        for pick in picks:
            pick = str(pick).strip()
            if not pick:
                continue
            base, sep, suffix = pick.rpartition(":")
            if pick in files:
                out.append(str(files[pick]))
            elif sep and base in files:
                out.append(f"{files[base]}:{suffix}")
            else:
                folders = ", ".join(map(str, self.weight_dirs.get(name, ()))) or "none configured"
                raise UserError(
                    f"{pick!r} is not one of the files the server offers (folders: {folders}); pick one from the list"
                )
        return out

    def _allowed_weight(self, name: str, path: str) -> bool:
        target = Path(path)
        if not target.is_absolute():
            return False
        target = target.resolve()
        return any(target == p.resolve() for p in self.weight_files(name).values())

    # -- the defence: a job's command names only what the server chose --------------------------------
    def check_args(self, parsed: Mapping[str, Any], server_options: Sequence[OptionSpec]) -> None:
        """`parsed`: a job's arguments as its CLI parser reads them. Every server option in it must hold
        the server's value (a location), a file of the server's weight folders (weights), or a folder inside
        the runs folder (the job's own); anything else is refused, naming the option."""
        for spec in server_options:
            value = parsed.get(spec.name)
            if value is None or value == spec.default:
                continue
            if spec.name in JOB_FOLDERS:
                path = Path(str(value)).resolve()
                if path == self.runs_dir or self.runs_dir in path.parents:
                    continue
            elif spec.meta.server == WEIGHTS:
                # Each word is a file of the weight folders, or one with a suffix (a LoRA's ':WEIGHT').
                if all(
                    self._allowed_weight(spec.name, word) or self._allowed_weight(spec.name, word.rpartition(":")[0])
                    for word in str(value).split()
                ):
                    continue
            elif value == self.locations.get(spec.name):
                continue
            raise UserError(
                f"--{spec.name} {value}: set on the server only (app_ui.py --{spec.name} or its config "
                "file), never by a job request; refused"
            )

    def describe(self) -> list[tuple[str, str]]:
        """(option, value) for the settings page: what every job will use."""
        rows = [(name, value or "(the stage's default)") for name, value in sorted(self.locations.items())]
        rows += [(weights_flag(n), ", ".join(map(str, d)) or "(none)") for n, d in sorted(self.weight_dirs.items())]
        return rows
