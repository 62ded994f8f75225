"""pyproject's [project.scripts] offers every root entry point, each calling the same main() as the root script."""

from __future__ import annotations

import ast
import importlib
import sys

from conftest import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

SCRIPTS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]


def root_entry_points() -> dict[str, str]:
    """Root script name -> 'module:main' it runs (the `from <module> import main` of a thin entry point)."""
    found = {}
    for path in sorted(REPO.glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom) and any(alias.name == "main" for alias in node.names):
                found[path.name] = f"{node.module}:main"
    return found


def test_every_root_entry_point_has_a_command():
    roots = root_entry_points()
    assert set(roots) >= {"pipeline.py", "app_ui.py", "config.py", "run_generation.py"}
    assert set(roots.values()) <= set(SCRIPTS.values()), set(roots.values()) - set(SCRIPTS.values())


def test_every_command_resolves_to_a_main_function():
    for name, target in SCRIPTS.items():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), name
