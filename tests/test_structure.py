"""The package's shape (docs/ARCHITECTURE.md), read from the source: stages never import each other, each layer
imports only the layers below it, nothing imports in a circle, and the code that runs inside an upstream tool's
interpreter imports nothing of ours."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import REPO

PACKAGE = REPO / "replace_actor_video"
NAME = PACKAGE.name
# Layer → the layers it may import (besides itself). `upstream` homes hold the tools' rules, `mask` is the home of
# our own contour tool, stages compose homes, the pipeline (with refine and the stage registry) composes stages,
# the cluster engine (Ray) runs tasks, plan.py is the plan check every front end calls, and the front ends (ui,
# batch, training) sit on top; `pipeline.py --doctor` hands over to the doctor. Every layer may
# import the package root (its version).
ALLOWED = {
    "core": set(),
    "media": {"core"},
    "upstream": {"core", "media"},
    "mask": {"core", "media", "upstream"},
    "stages": {"core", "media", "upstream", "mask"},
    "pipeline": {"core", "media", "upstream", "mask", "stages", "doctor"},
    "cluster": {"core"},
    "training": {"core", "media", "upstream", "mask", "cluster"},
    "batch": {"core", "media", "upstream", "mask", "stages", "pipeline", "cluster", "plan"},
    "plan": {"core", "media", "upstream", "mask", "stages", "pipeline"},
    "ui": {"core", "media", "upstream", "mask", "stages", "pipeline", "plan"},
    "doctor": {"core", "upstream"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def is_runtime(name: str) -> bool:
    """Code that runs inside an upstream interpreter (launchers and what they load by path)."""
    return ".runtime" in name


def imports_of(name: str) -> set[str]:
    """The package modules `name` imports, anywhere in the file (function-level imports count too)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                base_name = ".".join(base + ([node.module] if node.module else []))
            else:
                base_name = node.module or ""
            targets = [
                f"{base_name}.{alias.name}" if f"{base_name}.{alias.name}" in MODULES else base_name
                for alias in node.names
            ]
        else:
            continue
        found.update(t for t in targets if t in MODULES and t != name)
    return found


GRAPH = {name: imports_of(name) for name in MODULES if not is_runtime(name)}


def layer(name: str) -> str:
    return name.split(".")[1] if name.count(".") else ""


def test_the_graph_is_read():
    """The parser finds the imports it must (or every assertion below would pass on an empty graph)."""
    assert f"{NAME}.upstream.wan.generate" in GRAPH[f"{NAME}.stages.generate"]
    assert f"{NAME}.stages.preprocess" in GRAPH[f"{NAME}.pipeline.refine"]
    assert f"{NAME}.core.errors" in GRAPH[f"{NAME}.core.options"]


def test_no_stage_imports_another_stage():
    stages = {name for name in GRAPH if layer(name) == "stages" and not name.endswith(".stages")}
    offenders = {name: sorted(GRAPH[name] & stages) for name in stages if GRAPH[name] & stages}
    assert offenders == {}


@pytest.mark.parametrize("layer_name", sorted(ALLOWED))
def test_each_layer_imports_only_the_layers_below_it(layer_name):
    offenders = {
        name: sorted(t for t in targets if layer(t) not in ALLOWED[layer_name] | {layer_name, ""})
        for name, targets in GRAPH.items()
        if layer(name) == layer_name
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_import_graph_has_no_cycle():
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(GRAPH.get(node, ())):  # runtime modules (lora.py) import nothing of ours
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(GRAPH):
        if start not in state:
            cycle = visit(start)
            assert cycle is None, " -> ".join(cycle)


def test_runtime_code_imports_nothing_of_ours():
    """Launchers run in the upstream tool's Python, where our package is not importable."""
    runtime = [name for name in MODULES if is_runtime(name)]
    assert len(runtime) >= 8  # wan (launcher, rope, lora, patch_sites), rife, realesrgan, the shared runner
    for name in runtime:
        tree = ast.parse(MODULES[name].read_text())
        ours = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            and node.level
            or isinstance(node, (ast.Import, ast.ImportFrom))
            and NAME in ast.dump(node)
        ]
        assert ours == [], name
