"""From a form's values to a stage CLI's argument list, derived from the option specs (nothing listed again).

A form is the set of options the CLI's own parser accepts, in the parser's order, each owned by the first
option class that declares it (as the parsers do). What a browser may set is derived from the specs too:
every option except the server's (`server="location"`: set by app_ui.py, see ui/settings.py), the run
control (`group="run"`: each job gets a fresh folder; "Preview commands" replaces --dry-run) and the
outputs (they go into the job folder). Media inputs are uploads (checked by content, stored in the job
folder) or paths inside the workspace; weights are picked by name from the server's folders. Values become
an argv list through `options.to_argv(options.build(cls, values))`. No gradio."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import UserError
from ..core.options import OptionSpec, add_to_parser, build, format_value, specs, to_argv
from ..core.stage_cli import RunOptions
from ..pipeline import run as pipeline
from ..pipeline.registry import StageEntry
from .media import MEDIA_WIDGETS, check_media, store_upload
from .settings import JOB_FOLDERS, LOCATION, WEIGHTS, ServerSettings

RUN_CONTROL = "run"  # the option group the UI decides for every job
INPUTS_FOLDER = "inputs"  # uploads are stored in <job>/inputs/


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
            raise UserError(
                f"{what}: {path} is outside the workspace {self.root}; use a path inside it "
                f"(or start app_ui.py with --workspace)"
            )
        return path


def label(spec: OptionSpec) -> str:
    """The name people see: the spec's label, else the option name in words."""
    return spec.meta.label or spec.name.replace("_", " ").capitalize()


def is_output(spec: OptionSpec) -> bool:
    return spec.meta.group == "outputs" and spec.meta.widget not in MEDIA_WIDGETS and spec.type is str


def on_form(spec: OptionSpec) -> bool:
    """Whether a browser may set this option (everything else is the server's or the job's)."""
    return spec.meta.server != LOCATION and spec.meta.group != RUN_CONTROL and not is_output(spec)


def is_media(spec: OptionSpec) -> bool:
    return spec.meta.widget in MEDIA_WIDGETS


@dataclass(frozen=True)
class Form:
    """The options of one CLI as the UI shows them."""

    name: str  # "pipeline" or a registry name
    title: str
    script: str
    classes: tuple[type, ...]
    options: tuple[OptionSpec, ...]  # every option the CLI takes, in parser order
    owner: dict[str, type] = field(default_factory=dict)  # option name → the class whose flag it is
    defaults: dict[str, Any] = field(default_factory=dict)  # the CLI's default (may differ from the class's)

    @property
    def fields(self) -> tuple[OptionSpec, ...]:
        return tuple(s for s in self.options if on_form(s))

    def field(self, name: str) -> OptionSpec | None:
        return next((s for s in self.fields if s.name == name), None)

    def default(self, spec: OptionSpec) -> Any:
        return self.defaults.get(spec.name, spec.default)

    def default_text(self, spec: OptionSpec) -> Any:
        """What the form shows before the user types: the CLI default, formatted as the CLI takes it."""
        value = self.default(spec)
        if spec.type is bool and spec.meta.switch:
            return spec.meta.switch[bool(value)]
        return format_value(value) if isinstance(value, tuple) else value

    def parser(self) -> argparse.ArgumentParser:
        """The CLI's own parser (stages: their option classes; the pipeline: pipeline.build_parser)."""
        if self.name == "pipeline":
            return pipeline.build_parser()
        parser = argparse.ArgumentParser(add_help=False, exit_on_error=False)
        seen: set[str] = set()
        for cls in self.classes:
            add_to_parser(parser, cls, seen=seen)
        return parser

    def server_options(self) -> list[OptionSpec]:
        return [s for s in self.options if s.meta.server]


def _form(name: str, title: str, script: str, classes: Iterable[type], parser: argparse.ArgumentParser) -> Form:
    accepted = {a.dest for a in parser._actions}
    options, owner = [], {}
    for cls in classes:
        for spec in specs(cls):
            if spec.name in accepted and spec.name not in owner:
                owner[spec.name] = cls
                options.append(spec)
    defaults = {name: parser.get_default(name) for name in owner}
    return Form(name, title, script, tuple(classes), tuple(options), owner, defaults)


def stage_form(entry: StageEntry) -> Form:
    """A stage's form: its option classes plus RunOptions, as stages/common.py:main builds its parser."""
    classes = (*entry.options, RunOptions)
    parser = argparse.ArgumentParser()
    seen: set[str] = set()
    for cls in classes:
        add_to_parser(parser, cls, seen=seen)
    return _form(entry.name, entry.title, entry.script, classes, parser)


def pipeline_form() -> Form:
    return _form("pipeline", "Full pipeline", "pipeline.py", pipeline.STAGE_OPTIONS, pipeline.build_parser())


def blank(value: Any) -> bool:
    return value is None or (
        isinstance(value, (str, list, tuple))
        and not [v for v in (value if isinstance(value, (list, tuple)) else [value]) if str(v).strip()]
    )


@dataclass
class Resolved:
    """A form's values made ready for its CLI."""

    values: dict[str, Any]  # every option the job sets: the browser's choices, the server's, the job folder's
    chosen: dict[str, Any]  # the browser's choices only, uploads replaced by their stored copies (job.json)
    problems: list[tuple[str | None, str]]  # (option or None, one-line message)

    @property
    def ok(self) -> bool:
        return not self.problems


def _number(spec: OptionSpec, value: Any) -> Any:
    if isinstance(value, str):
        try:
            value = spec.type(value.strip())
        except ValueError:
            kind = "a whole number" if spec.type is int else "a number"
            raise UserError(f"{value.strip()!r} is not {kind}") from None
    if spec.type is int and isinstance(value, float):
        if not value.is_integer():
            raise UserError(f"{value} is not a whole number")
        value = int(value)
    return value


def _value(
    spec: OptionSpec, value: Any, *, workspace: Workspace, settings: ServerSettings, upload: bool, store_in: Path | None
) -> Any:
    """One browser value → the CLI's value (UserError naming the problem)."""
    if spec.meta.server == WEIGHTS:
        picks = value if isinstance(value, (list, tuple)) else [value]
        paths = settings.resolve_weights(spec.name, picks)
        return " ".join(paths) if spec.meta.repeat else (paths[0] if paths else None)
    if spec.type is bool:
        if spec.meta.switch and isinstance(value, str):
            if value not in spec.meta.switch:
                raise UserError(f"{value!r} is not one of {' / '.join(spec.meta.switch)}")
            return value == spec.meta.switch[1]
        if not isinstance(value, bool):
            raise UserError(f"{value!r} is not on or off")
        return value
    if spec.meta.choices is not None and value not in spec.meta.choices:
        raise UserError(f"{value!r} is not one of {', '.join(map(str, spec.meta.choices))}")
    if spec.type in (int, float) and not spec.meta.parse:
        return _number(spec, value)
    if spec.meta.parse and isinstance(value, str):
        try:
            spec.meta.parse(value)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        return value.strip()
    if is_media(spec) or spec.meta.widget == "dir":
        text = str(value).strip()
        if spec.meta.widget == "points" and text == spec.default:
            return text  # a keyword such as 'auto', not a file
        if upload:
            source = Path(text)
            if not workspace.contains(source):
                raise UserError("the uploaded file is not in the upload folder")
            if store_in is not None:
                return str(store_upload(source, spec.meta.widget, store_in, spec.name))
            check_media(source, spec.meta.widget)
            return str(source.resolve())
        path = workspace.resolve(text, label(spec))
        if spec.meta.widget == "dir":
            if not path.is_dir():
                raise UserError(f"{path}: no such folder")
        else:
            check_media(path, spec.meta.widget)
        return str(path)
    return value


def resolve(
    form: Form,
    raw: Mapping[str, Any],
    *,
    job_dir: Path,
    workspace: Workspace,
    settings: ServerSettings,
    uploaded: Iterable[str] = (),
    store: bool = False,
) -> Resolved:
    """The CLI values of a form submission (option name → browser value). Names in `uploaded` hold files
    from the upload cache; with `store` they are copied into `<job_dir>/inputs/` (the job keeps its own
    copy), else only checked. Every problem is collected, none raised. A value for an option that is not
    on the form (a server location, the run control) is refused: no request can set those."""
    uploaded = set(uploaded)
    problems: list[tuple[str | None, str]] = []
    values: dict[str, Any] = {}
    chosen: dict[str, Any] = {}
    visible = {s.name for s in form.fields}
    for name in raw:
        if name not in visible:
            spec = next((s for s in form.options if s.name == name), None)
            why = (
                "is set on the server (app_ui.py), never from a browser"
                if spec and spec.meta.server
                else "is not an option of this form"
            )
            problems.append((None, f"{name}: {why}; refused"))
    for spec in form.fields:
        value = raw.get(spec.name)
        if blank(value):
            if spec.required:
                problems.append((spec.name, f"{label(spec)}: required — {spec.meta.help}"))
            continue
        try:
            values[spec.name] = _value(
                spec,
                value,
                workspace=workspace,
                settings=settings,
                upload=spec.name in uploaded,
                store_in=job_dir / INPUTS_FOLDER if store else None,
            )
        except UserError as exc:
            problems.append((spec.name, f"{label(spec)}: {exc}"))
            continue
        chosen[spec.name] = values[spec.name] if (is_media(spec) or spec.meta.widget == "dir") else value
    for spec in form.options:
        if on_form(spec):
            continue
        if spec.meta.server == LOCATION and spec.name not in JOB_FOLDERS:
            if settings.locations.get(spec.name):
                values[spec.name] = settings.locations[spec.name]
        elif is_output(spec):
            default = form.default(spec)
            if isinstance(default, str):
                values[spec.name] = str(job_dir / Path(default).name)  # results stay with their job
            elif spec.required:
                values[spec.name] = str(job_dir / f"{form.name}.mp4")
    if "run_dir" in form.owner:
        values["run_dir"] = str(job_dir)
    if "runs_dir" in form.owner:
        values["runs_dir"] = str(workspace.runs_dir if "run_dir" in form.owner else job_dir)
    return Resolved(values, chosen, problems)


def to_args(form: Form, values: Mapping[str, Any]) -> list[str]:
    """The CLI arguments for resolved `values` (defaults left out, each option once, by its owner)."""
    args: list[str] = []
    emitted: set[str] = set()
    for cls in form.classes:
        names = {s.name for s in specs(cls)}
        present = {k: v for k, v in values.items() if k in names}
        # Options the pipeline wires (a finishing stage's input/output) are not on its form: a placeholder
        # lets the class be built; those options are never emitted (the form does not own them).
        present.update({s.name: "" for s in specs(cls) if s.required and s.name not in present})
        obj = build(cls, present)
        for name, tokens in _flag_groups(to_argv(obj), cls):
            if form.owner.get(name) is cls and name not in emitted:
                emitted.add(name)
                args += tokens
    return args


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
        groups.append((spec.name, args[i : i + width]))
        i += width
    return groups


def check_command(form: Form, args: list[str], settings: ServerSettings) -> None:
    """The defence behind the forms: parse a job's arguments with the CLI's own parser and refuse any
    server option that does not hold the server's value (ui/settings.py). Raises UserError."""
    parser = form.parser()
    try:
        parsed, unknown = parser.parse_known_args(args)
    except (argparse.ArgumentError, SystemExit) as exc:
        raise UserError(f"the job's arguments do not parse ({exc}); refused") from None
    if unknown:
        raise UserError(f"the job's arguments hold unknown words {unknown}; refused")
    extra = [k for k, v in vars(parsed).items() if k not in form.owner and v != parser.get_default(k)]
    if extra:  # e.g. the pipeline's --config, which could name any location
        raise UserError(f"the job's arguments set {', '.join('--' + k for k in extra)}, which no form sets; refused")
    settings.check_args(vars(parsed), form.server_options())
