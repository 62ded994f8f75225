"""Every command the README and docs/*.md show for one of our entry points uses flags that entry point has: a
renamed or removed option fails here instead of in a user's terminal."""

from __future__ import annotations

import re
import subprocess
import sys
from functools import cache

import pytest
from conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
COMMAND = re.compile(r"\b((?:run_\w+|pipeline|app_ui|config)\.py)\b(.*)")
FLAG = re.compile(r"(?<![\w-])(--[a-zA-Z][\w-]*)")


@cache
def help_text(script: str) -> str:
    res = subprocess.run([sys.executable, str(REPO / script), "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout


def commands(text: str) -> list[tuple[str, str]]:
    """(script, the rest of its line) for each command line; shell continuations joined, table rows left out
    (they name options, not commands)."""
    text = re.sub(r"\\\n\s*", " ", text)
    found = []
    for line in text.splitlines():
        match = COMMAND.search(line)
        if match and not line.lstrip().startswith("|") and (REPO / match.group(1)).is_file():
            found.append((match.group(1), match.group(2)))
    return found


def unknown_flags(text: str) -> list[str]:
    return [
        f"{script} {flag}"
        for script, rest in commands(text)
        for flag in FLAG.findall(rest)
        if not re.search(re.escape(flag) + r"(?![\w-])", help_text(script))
    ]


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_documented_commands_use_existing_flags(doc):
    assert unknown_flags(doc.read_text()) == []


def test_a_stale_flag_is_caught():
    assert unknown_flags("python run_generation.py --src_root_path pre --sample_stepz 4") == [
        "run_generation.py --sample_stepz"
    ]
