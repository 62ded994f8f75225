"""Compare an argparse mirror with the real upstream source, without importing upstream (its imports
need CUDA and its dependencies): every `add_argument` call is read from the AST."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path


def upstream_arguments(source: Path) -> dict[str, dict[str, str]]:
    """{'--flag': {'type': 'int', 'default': '77', 'action': ..., 'nargs': ...}} from add_argument calls."""
    found = {}
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
            flags = [a.value for a in node.args if isinstance(a, ast.Constant)]
            keywords = {
                k.arg: ast.unparse(k.value) for k in node.keywords if k.arg in ("type", "default", "action", "nargs")
            }
            found[flags[0]] = keywords
    return found


def mirror_arguments(parser: argparse.ArgumentParser) -> dict[str, dict[str, str]]:
    """The same description of a mirror parser, rendered the way the source spells it."""
    found = {}
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        entry = {}
        if isinstance(action, argparse._StoreTrueAction):
            entry["action"] = "'store_true'"
            entry["default"] = "False"
        else:
            if action.type is not None:
                entry["type"] = action.type.__name__
            entry["default"] = repr(action.default)
            if action.nargs is not None:
                entry["nargs"] = repr(action.nargs)
        found[action.option_strings[0]] = entry
    return found


def normalise(args: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Quote styles differ ('unipc' vs "unipc"); compare literal values."""
    out = {}
    for flag, kw in args.items():
        norm = {}
        for key, value in kw.items():
            try:
                norm[key] = repr(ast.literal_eval(value))
            except (ValueError, SyntaxError):
                norm[key] = value
        out[flag] = norm
    return out
