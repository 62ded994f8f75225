"""Single upstream Wan2.2 modules on the CPU, without running wan/__init__.py (it imports every pipeline, with
librosa, decord and CUDA at import): empty package stubs let e.g. wan.modules.t5 load on its own."""

from __future__ import annotations

import importlib
import os
import sys
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WAN22 = Path(os.environ.get("WAN22_DIR", REPO / "Wan2.2"))
PACKAGES = ("wan", "wan.modules", "wan.modules.animate", "wan.distributed", "wan.utils")


NO_CLONE = f"needs the Wan2.2 clone ({WAN22}; install.sh clones it)"


def has_wan22() -> bool:
    return (WAN22 / "wan" / "animate.py").is_file()


def needs_wan22():
    return pytest.mark.skipif(not has_wan22(), reason=NO_CLONE)


def stub_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Package stubs pointing at the clone; t5.py's import-time torch.cuda.current_device() answered with 0."""
    import torch

    if not has_wan22():  # fixtures call this too: skip with the reason instead of a ModuleNotFoundError
        pytest.skip(NO_CLONE)
    for dep in ("diffusers", "einops", "ftfy", "regex", "transformers"):
        pytest.importorskip(dep, reason=f"the upstream modules import {dep}", exc_type=ImportError)
    for name in [n for n in sys.modules if n == "wan" or n.startswith("wan.")]:
        monkeypatch.delitem(sys.modules, name)
    for pkg in PACKAGES:
        stub = types.ModuleType(pkg)
        stub.__path__ = [str(WAN22 / pkg.replace(".", os.sep))]
        monkeypatch.setitem(sys.modules, pkg, stub)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    importlib.import_module("transformers.utils.import_utils")  # before any torchvision stub (its probe)
    try:
        import torchvision.transforms  # noqa: F401
    except ImportError:  # clip.py imports it; the CPU machine may lack it
        monkeypatch.setitem(sys.modules, "torchvision", types.ModuleType("torchvision"))
        monkeypatch.setitem(sys.modules, "torchvision.transforms", types.ModuleType("torchvision.transforms"))


def drop_wan_modules() -> None:
    for name in [n for n in sys.modules if n == "wan" or n.startswith("wan.")]:
        del sys.modules[name]
