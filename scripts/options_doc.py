#!/usr/bin/env python3
"""Write each stage's option table into README.md from the option dataclasses (the README never lists
options by hand). `--check` exits 1 when README.md is out of date (the tests run it)."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from replace_actor_video.batch.run import BatchOptions  # noqa: E402
from replace_actor_video.cluster.engine import EngineOptions  # noqa: E402
from replace_actor_video.core.options import format_value, specs  # noqa: E402
from replace_actor_video.core.stage_cli import RunOptions  # noqa: E402
from replace_actor_video.pipeline.registry import STAGES  # noqa: E402
from replace_actor_video.pipeline.run import PipelineOptions  # noqa: E402

PIPE = " \\| "  # a literal | inside a Markdown table cell
BLOCK = re.compile(r"(<!-- options:(?P<name>[a-z_]+) -->\n)(?P<body>.*?)(<!-- /options -->)", re.S)


def table(classes: list[type], shown: set[type]) -> str:
    """Rows for each class; a class already tabled earlier in the README gets a pointer, not the rows again."""
    rows = ["| option | default | meaning |", "|---|---|---|"]
    for cls in classes:
        if cls in shown:
            title = cls.__doc__.strip().splitlines()[0]
            rows.append(f"| … | | and the *{title}* options, in the table above |")
            continue
        shown.add(cls)
        for spec in specs(cls):
            flags = " / ".join(f"`{f}`" for f in spec.flags)
            if spec.type is bool and spec.default:
                flags += f" / `--no-{spec.name}`"
            default = (
                "required"
                if spec.required
                else ("" if spec.default in (None, False) else f"`{format_value(spec.default)}`")
            )
            choices = f" ({PIPE.join(map(str, spec.meta.choices))})" if spec.meta.choices else ""
            rows.append(f"| {flags} | {default} | {spec.meta.help}{choices} |")
    return "\n".join(rows) + "\n"


def server_table() -> str:
    """The options a browser never sets (their spec's `server` marker), and where the Web UI takes them from."""
    from replace_actor_video.ui.settings import JOB_FOLDERS, LOCATION, WEIGHTS, server_specs, weights_flag

    rows = ["| option | in the Web UI | meaning |", "|---|---|---|"]
    for spec in server_specs(LOCATION):
        where = (
            "each job's own folder, under `--runs_dir`"
            if spec.name in JOB_FOLDERS
            else f"`app_ui.py --{spec.name}` (or its config file, or the default)"
        )
        rows.append(f"| `--{spec.name}` | {where} | {spec.meta.help} |")
    for spec in server_specs(WEIGHTS):
        rows.append(
            f"| `--{spec.name}` | chosen from the files in `app_ui.py --{weights_flag(spec.name)}` | {spec.meta.help} |"
        )
    return "\n".join(rows) + "\n"


def tables() -> dict[str, str]:
    shown: set[type] = set()
    out = {entry.name: table(list(entry.options), shown) for entry in STAGES}
    out["pipeline"] = table([PipelineOptions], shown)
    out["run"] = table([RunOptions], shown)
    out["batch"] = table([BatchOptions], shown)
    out["engine"] = table([EngineOptions], shown)
    out["server"] = server_table()
    return out


def render(text: str) -> str:
    generated = tables()
    return BLOCK.sub(lambda m: m[1] + generated.get(m["name"], m["body"]) + m[4], text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    readme = Path(__file__).resolve().parents[1] / "README.md"
    text = readme.read_text()
    new = render(text)
    if args.check:
        if new != text:
            print("README.md option tables are out of date: run python scripts/options_doc.py", file=sys.stderr)
            return 1
        return 0
    readme.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
