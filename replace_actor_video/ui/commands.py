"""From a form to a stage CLI's argument list, derived from the option specs (nothing listed again).

A form is the set of options the CLI's own parser accepts, in the parser's order, each owned by the first
option class that declares it (as the parsers do). Values become an argv list through
`options.to_argv(options.build(cls, values))`; paths are resolved against the workspace and refused outside
it, and uploads are copied into the job folder so a job never depends on the upload cache. No gradio."""

from __future__ import annotations

import argparse
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..core.errors import UserError
from ..core.options import OptionSpec, add_to_parser, build, format_value, specs, to_argv
from ..pipeline import run as pipeline
from ..core.stage_cli import RunOptions
from ..pipeline.registry import STAGES, StageEntry

UPLOAD_WIDGETS = frozenset({"video", "image", "file"})
PATH_WIDGETS = UPLOAD_WIDGETS | {"dir", "points"}
LOCATION_GROUP = "paths"  # upstream clones and checkpoints: wherever the user keeps them
UI_SET = frozenset({"runs_dir"})  # the UI decides where runs go


@dataclass(frozen=True)
class Workspace:
    """Where the UI may read and write: the workspace root, the runs folder and the upload cache."""

    root: Path
    runs_dir: Path
    uploads: Path

    @property
    def roots(self) -> tuple[Path, ...]:
        return (self.root, self.runs_dir, self.uploads)

    def contains(self, path: str | Path) -> bool:
        path = Path(path).resolve()
        return any(path == r or r in path.parents for r in (p.resolve() for p in self.roots))

    def resolve(self, text: str, what: str) -> Path:
        path = Path(text).expanduser()
        path = (path if path.is_absolute() else self.root / path).resolve()
        if not self.contains(path):
            raise UserError(f"{what}: {path} is outside the workspace {self.root}; use a path inside it "
                            f"(or start app_ui.py with --workspace)")
        return path


@dataclass(frozen=True)
class Form:
    """The options of one CLI as the UI shows them."""

    name: str  # "pipeline" or a registry name
    title: str
    script: str
    classes: tuple[type, ...]
    fields: tuple[OptionSpec, ...]  # in parser order, UI-set options left out
    owner: dict[str, type] = field(default_factory=dict)  # option name → the class whose flag it is
    defaults: dict[str, Any] = field(default_factory=dict)  # the CLI's default (may differ from the class's)

    def field(self, name: str) -> OptionSpec | None:
        return next((s for s in self.fields if s.name == name), None)

    def default_text(self, spec: OptionSpec) -> Any:
        """What the form shows before the user types: the CLI default, formatted as the CLI takes it."""
        value = self.defaults.get(spec.name, spec.default)
        if is_output(spec) and isinstance(value, str):
            return ""  # empty output = inside the job folder (placeholder says so)
        return format_value(value) if isinstance(value, tuple) else value


def is_output(spec: OptionSpec) -> bool:
    return spec.meta.group == "outputs" and spec.meta.widget not in UPLOAD_WIDGETS and spec.type is str


def is_path(spec: OptionSpec) -> bool:
    return spec.type is str and (spec.meta.widget in PATH_WIDGETS or is_output(spec))


def _form(name: str, title: str, script: str, classes: Iterable[type], parser: argparse.ArgumentParser) -> Form:
    accepted = {a.dest for a in parser._actions}
    fields, owner = [], {}
    for cls in classes:
        for spec in specs(cls):
            if spec.name in accepted and spec.name not in owner:
                owner[spec.name] = cls
                if spec.name not in UI_SET:
                    fields.append(spec)
    defaults = {name: parser.get_default(name) for name in owner}
    return Form(name, title, script, tuple(classes), tuple(fields), owner, defaults)


def stage_form(entry: StageEntry) -> Form:
    """A stage's form: its option classes plus RunOptions, as core/stage_cli.py:main builds its parser."""
    classes = (*entry.options, RunOptions)
    parser = argparse.ArgumentParser()
    seen: set[str] = set()
    for cls in classes:
        add_to_parser(parser, cls, seen=seen)
    return _form(entry.name, entry.title, entry.script, classes, parser)


def pipeline_form() -> Form:
    return _form("pipeline", "Full pipeline", "pipeline.py", pipeline.STAGE_OPTIONS, pipeline.build_parser())


def stage_forms() -> list[Form]:
    return [stage_form(entry) for entry in STAGES]


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _flag_groups(args: list[str], cls: type) -> list[tuple[str, list[str]]]:
    """Split to_argv output into (option name, tokens): a bool flag is one token, others two."""
    by_flag = {}
    for spec in specs(cls):
        by_flag[f"--{spec.name}"] = spec
        by_flag[f"--no-{spec.name}"] = spec
    groups, i = [], 0
    while i < len(args):
        spec = by_flag[args[i]]
        width = 1 if spec.type is bool else 2
        groups.append((spec.name, args[i:i + width]))
        i += width
    return groups


@dataclass
class Command:
    args: list[str]
    values: dict[str, Any]  # resolved values, as the job record keeps them
    run_dir: str | None  # a pipeline run directory the user chose outside the job folder


def build_command(form: Form, values: dict[str, Any], *, job_dir: Path, workspace: Workspace,
                  uploaded: Iterable[str] = ()) -> Command:
    """The CLI arguments for `values` (option name → form value). Names in `uploaded` hold files from the
    upload cache: they are copied into `<job_dir>/inputs/`."""
    uploaded = set(uploaded)
    resolved: dict[str, Any] = {}
    for spec in form.fields:
        value = values.get(spec.name)
        if _blank(value):
            default = form.defaults.get(spec.name, spec.default)
            if spec.required:
                raise UserError(f"{spec.name}: required ({spec.meta.help})")
            if is_output(spec) and isinstance(default, str):
                value = str(job_dir / Path(default).name)  # outputs stay with their job unless asked otherwise
            else:
                continue
        if spec.type in (int, float) and isinstance(value, str):
            try:
                value = spec.type(value.strip())
            except ValueError:
                kind = "a whole number" if spec.type is int else "a number"
                raise UserError(f"{spec.name}: {value.strip()!r} is not {kind}") from None
        if spec.type is int and isinstance(value, float):
            if not value.is_integer():
                raise UserError(f"{spec.name}: {value} is not a whole number")
            value = int(value)
        if is_path(spec):
            value = str(value).strip()
            if spec.meta.widget == "points" and value == spec.default:
                pass  # a keyword such as 'auto', not a file
            elif spec.name in uploaded:
                source = Path(value)
                if not workspace.contains(source):
                    raise UserError(f"{spec.name}: the uploaded file is not in the upload folder")
                target = job_dir / "inputs" / source.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
                value = str(target)
            elif spec.meta.group != LOCATION_GROUP:
                value = str(workspace.resolve(value, spec.name))
        resolved[spec.name] = value
    run_dir = resolved.get("run_dir")
    if "run_dir" in form.owner and run_dir is None:
        resolved["run_dir"] = str(job_dir)
    if "runs_dir" in form.owner:
        resolved["runs_dir"] = str(workspace.runs_dir if "run_dir" in form.owner else job_dir)

    args: list[str] = []
    emitted: set[str] = set()
    for cls in form.classes:
        present = {k: v for k, v in resolved.items() if k in {s.name for s in specs(cls)}}
        # Options the pipeline wires (a finishing stage's input/output) are not on its form: a placeholder
        # lets the class be built; those options are never emitted (the form does not own them).
        present.update({s.name: "" for s in specs(cls) if s.required and s.name not in present})
        obj = build(cls, present)
        for name, tokens in _flag_groups(to_argv(obj), cls):
            if form.owner.get(name) is cls and name not in emitted:
                emitted.add(name)
                args += tokens
    return Command(args, resolved, run_dir)
