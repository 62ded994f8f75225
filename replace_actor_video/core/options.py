"""Stage options declared once, as dataclass fields, and derived everywhere else.

A stage declares its options as a dataclass whose fields are made with `option(...)`. From that one
declaration we derive the argparse parser of its `run_*.py`, the pipeline's combined parser and config,
the manifest's "resolved options", the Gradio form and, through `upstream=`, the upstream tool's argv
(`upstream_args`). Nothing else lists the options again.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import UserError


@dataclass(frozen=True)
class OptionMeta:
    help: str
    aliases: tuple[str, ...] = ()  # extra CLI spellings, e.g. --fallback_ffmpeg
    choices: tuple[Any, ...] | None = None
    parse: Callable[[str], Any] | None = None  # turns the CLI/UI text into the field's value
    nargs: str | None = None  # "+" joins several CLI words before `parse` (e.g. --resolution 1280 720)
    repeat: bool = False  # the flag may be given several times; the words of all of them are joined
    widget: str | None = None  # UI hint: video, image, file, dir, textarea, points
    group: str = "options"  # UI and README grouping
    cli: bool = True  # False: wired by the pipeline, not exposed on its CLI
    label: str | None = None  # the name people see in the UI (default: the option name in words)
    switch: tuple[str, str] | None = None  # UI words for a flag's off and on states, e.g. ("Animate", "Replace")
    # Set where the program runs, never from a browser (docs/UI.md): "location" = an upstream clone, interpreter,
    # binary or folder; "weights" = a weights file the UI lets a browser pick from folders the server names.
    server: str | None = None
    # Which upstream argv the value is passed to (a name the tool's home defines, e.g. "generate.py" or
    # "launcher"), under `upstream_flag` (default: --<name>). None: the option is ours, no upstream sees it.
    upstream: str | None = None
    upstream_flag: str | None = None


def option(default: Any = dataclasses.MISSING, *, help: str, **meta: Any) -> Any:
    """A dataclass field carrying its CLI/UI description."""
    return dataclasses.field(default=default, metadata={"option": OptionMeta(help=help, **meta)})


@dataclass(frozen=True)
class OptionSpec:
    name: str
    type: Any  # int, float, str or bool (Optional unwrapped)
    default: Any
    required: bool
    meta: OptionMeta
    optional: bool = False  # declared `X | None`: None is a value (unset), not a missing one

    @property
    def flags(self) -> list[str]:
        return [f"--{self.name}", *self.meta.aliases]


def _base_type(annotation: Any) -> Any:
    """`int | None` → int; `tuple[int, int]` → tuple."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _base_type(args[0])
    return origin or annotation


def specs(cls: type) -> list[OptionSpec]:
    """The option specs of a stage dataclass, in declaration order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        meta = f.metadata.get("option")
        if meta is None:
            continue
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        default = None if required else (f.default if f.default is not dataclasses.MISSING else f.default_factory())
        optional = type(None) in typing.get_args(hints[f.name])
        out.append(OptionSpec(f.name, _base_type(hints[f.name]), default, required, meta, optional))
    return out


def add_to_parser(
    parser: argparse.ArgumentParser,
    cls: type,
    *,
    skip: Iterable[str] = (),
    seen: set[str] | None = None,
    only_cli: bool = False,
) -> list[str]:
    """Add the options of `cls` to `parser`; names in `skip` or already in `seen` are left out."""
    seen = set() if seen is None else seen
    added = []
    group = parser.add_argument_group(cls.__doc__.strip().splitlines()[0] if cls.__doc__ else cls.__name__)
    for spec in specs(cls):
        if spec.name in skip or spec.name in seen or (only_cli and not spec.meta.cli):
            continue
        seen.add(spec.name)
        added.append(spec.name)
        kwargs: dict[str, Any] = {"dest": spec.name, "help": spec.meta.help}
        if spec.type is bool:
            kwargs["action"] = argparse.BooleanOptionalAction if spec.default else "store_true"
            kwargs["default"] = bool(spec.default)
        else:
            kwargs["default"] = spec.default
            kwargs["required"] = spec.required
            if spec.meta.choices:
                kwargs["choices"] = spec.meta.choices
            if spec.meta.nargs:
                kwargs["nargs"] = spec.meta.nargs
            if spec.meta.repeat:
                kwargs["action"], kwargs["nargs"] = "extend", "+"
            if spec.meta.parse:
                kwargs["type"] = str  # parsed in build(), so CLI, UI and config files share one error path
            elif spec.type in (int, float, str):
                kwargs["type"] = spec.type
        if spec.default is not None and spec.type is not bool:
            kwargs["help"] += f" (default: {format_value(spec.default)})"
        group.add_argument(*spec.flags, **kwargs)
    return added


def format_value(value: Any) -> str:
    if isinstance(value, tuple):
        return "x".join(str(v) for v in value)
    return str(value)


class BadValue(ValueError):
    """A value an option cannot take; the message says what form it expects (without the option's name, which
    the caller knows: --name on a command line or form, FILE:key in a config file)."""


def expected(spec: OptionSpec) -> str:
    """The form an option's value takes, in words."""
    if spec.meta.choices:
        return "one of " + ", ".join(map(str, spec.meta.choices))
    if spec.meta.parse is not None:
        return "text as on the command line (see --help)"
    return {bool: "true or false", int: "a whole number", float: "a finite number", str: "text"}.get(spec.type, "text")


def coerce(spec: OptionSpec, value: Any) -> Any:
    """`value` as the option's type, from what a front end holds: argparse's parsed value, a form's text or a TOML
    value. Strict: a boolean must be a boolean (the text "false" is refused, not read as true), a whole number
    whole, a number finite (nan and inf are refused), text text, and a value of a choice one of the choices.
    Raises BadValue."""
    if value is None:
        if spec.optional:
            return None
        raise BadValue(f"a value is needed ({expected(spec)})")
    if spec.meta.parse is not None:
        if isinstance(value, tuple) and spec.type is tuple:
            return value  # parsed already (an options object rebuilt with changes)
        if isinstance(value, (list, tuple)):
            value = " ".join(map(str, value))  # several words (nargs, a repeated flag, a TOML list)
        if not isinstance(value, str):
            raise BadValue(f"expected {expected(spec)}")
        try:
            return spec.meta.parse(value)
        except ValueError as exc:
            raise BadValue(str(exc)) from None
    if spec.type is bool:
        if not isinstance(value, bool):
            raise BadValue("expected true or false")
    elif spec.type is int:
        value = _number(value, int)
    elif spec.type is float:
        value = _number(value, float)
    elif spec.type is str and not isinstance(value, str):
        raise BadValue("expected text")
    if spec.meta.choices and value not in spec.meta.choices:
        raise BadValue(f"expected {expected(spec)}")
    return value


def _number(value: Any, kind: type) -> Any:
    what = "a whole number" if kind is int else "a finite number"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadValue(f"expected {what}")
    if isinstance(value, str):
        try:
            value = float(value.strip()) if kind is float else int(value.strip())
        except ValueError:
            raise BadValue(f"expected {what}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise BadValue(f"expected {what}")
    if kind is int and isinstance(value, float):
        if not value.is_integer():
            raise BadValue(f"expected {what}")
        value = int(value)
    return kind(value)


def shown(value: Any) -> str:
    """A value as the messages quote it: text in quotes, numbers and lists as written."""
    return repr(value) if isinstance(value, str) else str(value)


def collect(cls: type, values: typing.Mapping[str, Any]) -> tuple[Any | None, list[tuple[str, str]]]:
    """`cls` built from a flat mapping (argparse namespace, UI form, TOML config, pipeline wiring), every value
    through `coerce`; names absent from `values` take the declared defaults. Returns (instance or None,
    [(option name, one-line message)]) with every bad value, not only the first."""
    kwargs, bad = {}, []
    for spec in specs(cls):
        if spec.name not in values or values[spec.name] is None and not spec.optional:  # None: "not given"
            if spec.required:
                bad.append((spec.name, f"--{spec.name} is required ({spec.meta.help})"))
            continue
        value = values[spec.name]
        try:
            kwargs[spec.name] = coerce(spec, value)
        except BadValue as exc:
            text = str(exc)
            prefix = f"--{spec.name}" if spec.meta.parse is not None else f"--{spec.name} {shown(value)}"
            bad.append((spec.name, f"{prefix}: {text}"))
    return (None if bad else cls(**kwargs)), bad


def build(cls: type, values: typing.Mapping[str, Any]) -> Any:
    """Instantiate `cls` from a flat mapping (argparse namespace, pipeline config or UI form); UserError naming
    the first bad value. Text is parsed through the option specs (`coerce`), so the UI and a TOML config pass
    the same strings a user types on the command line."""
    obj, bad = collect(cls, values)
    if bad:
        raise UserError(bad[0][1])
    return obj


def upstream_args(obj: Any, target: str) -> list[str]:
    """The arguments of the upstream argv `target` that `obj`'s options declare (`option(..., upstream=target)`),
    in declaration order: a true boolean is its flag alone, None and False are left out, a tuple gives one word
    per item, and a `repeat` option one flag per word (e.g. --lora A --lora B)."""
    args: list[str] = []
    for spec in specs(type(obj)):
        if spec.meta.upstream != target:
            continue
        flag, value = spec.meta.upstream_flag or f"--{spec.name}", getattr(obj, spec.name)
        if value is None or value is False:
            continue
        if value is True:
            args.append(flag)
        elif isinstance(value, tuple):
            args += [flag, *map(str, value)]
        elif spec.meta.repeat:
            for word in str(value).split():
                args += [flag, word]
        else:
            args += [flag, str(value)]
    return args


def same_as(cls: type, name: str, **changes: Any) -> Any:
    """The option `name` of dataclass `cls`, declared once there, for another options class; `changes` may set
    `default` or any OptionMeta field (e.g. `help`)."""
    source = cls.__dataclass_fields__[name]
    default = changes.pop("default", source.default)
    meta = dataclasses.replace(source.metadata["option"], **changes)
    return dataclasses.field(default=default, metadata={"option": meta})


def combined(name: str, own: type, *sources: type, drop: Iterable[str] = ()) -> type:
    """An options dataclass with the fields of `own`, then every option of `sources` (in order) that is
    neither in `drop` nor already there: a stage that runs other stages' tools takes their options from
    their declarations, so an option added there reaches it without another edit."""
    drop = set(drop)
    fields: dict[str, tuple[str, Any, Any]] = {}
    for cls in (own, *sources):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in fields or (cls is not own and f.name in drop):
                continue
            copy = dataclasses.field(default=f.default, default_factory=f.default_factory, metadata=f.metadata)
            fields[f.name] = (f.name, hints[f.name], copy)
    new = dataclasses.make_dataclass(name, list(fields.values()), kw_only=True)
    new.__doc__, new.__module__ = own.__doc__, own.__module__
    return new


def as_dict(obj: Any) -> dict[str, Any]:
    """Resolved options as JSON-ready values (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(obj).items()}


def parse_args(cls: type, argv: Sequence[str] | None, description: str) -> Any:
    parser = argparse.ArgumentParser(description=description)
    add_to_parser(parser, cls)
    return build(cls, vars(parser.parse_args(argv)))


def to_argv(obj: Any) -> list[str]:
    """The CLI arguments that reproduce the options of `obj` (a stage dataclass instance): what the UI
    passes to a stage's run_*.py and what a manifest replays. Defaults are left out."""
    argv: list[str] = []
    for spec in specs(type(obj)):
        value = getattr(obj, spec.name)
        if value == spec.default or value is None:
            continue
        if spec.type is bool:
            argv.append(f"--{spec.name}" if value else f"--no-{spec.name}")
        else:
            argv += [f"--{spec.name}", format_value(value)]
    return argv
