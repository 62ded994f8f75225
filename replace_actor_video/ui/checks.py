"""The checks a form submission passes before anything is queued: the UI's own (what a browser may send:
ui/commands.py) and the plan check the command line runs (`check_stage` / `check_pipeline`, PLAN_API.md), in
the web process. Every problem is kept with the option it is about, so a form can show it next to that
field. "Preview commands" is the same check, shown as the commands a job would run. No gradio."""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..plan import Plan, check_pipeline, check_stage
from .commands import Form, Resolved, Workspace, resolve, to_args
from .settings import ServerSettings

JOB_FOLDER_SHOWN = "<job folder>"


@dataclass
class FormCheck:
    form: Form
    resolved: Resolved
    args: list[str]  # the job's CLI arguments (empty while a value does not resolve)
    plan: Plan | None
    by_field: dict[str, str] = field(default_factory=dict)  # option on the form → its first problem
    general: list[str] = field(default_factory=list)  # problems about no field of the form

    @property
    def ok(self) -> bool:
        return not self.by_field and not self.general

    def command(self) -> list[str]:
        """The command the job runs (as a user would type it)."""
        return ["python", self.form.script, *self.args]

    def add(self, option: str | None, message: str) -> None:
        """A problem next to its field; about no field of the form (e.g. a server setting), a general one."""
        if option is not None and self.form.field(option) is not None:
            self.by_field.setdefault(option, message)
            return
        spec = next((s for s in self.form.options if s.name == option), None)
        if spec is not None and spec.meta.server:
            message = f"server setting: {message} (ask whoever runs app_ui.py)"
        if message not in self.general:
            self.general.append(message)


def plan_for(form: Form, values: Mapping[str, Any]) -> Plan:
    return check_pipeline(values) if form.name == "pipeline" else check_stage(form.name, values)


def check_form(
    form: Form,
    raw: Mapping[str, Any],
    *,
    job_dir: Path,
    workspace: Workspace,
    settings: ServerSettings,
    uploaded: Iterable[str] = (),
    store: bool = False,
) -> FormCheck:
    """Resolve the browser's values (storing uploads in `job_dir` with `store`), then run the plan check on
    them; problems end up by field, or general when they are about no field of the form."""
    resolved = resolve(
        form, raw, job_dir=job_dir, workspace=workspace, settings=settings, uploaded=uploaded, store=store
    )
    result = FormCheck(form, resolved, [], None)
    for option, message in resolved.problems:
        result.add(option, message)
    if resolved.ok:
        result.args = to_args(form, resolved.values)
    result.plan = plan_for(form, resolved.values)
    for problem in result.plan.problems:
        if problem.option in result.by_field:
            continue  # already said, in the form's words
        result.add(problem.option, problem.message)
    return result


def preview_text(check: FormCheck, job_dir: Path) -> str:
    """The job's command and every upstream command the plan holds, shell-quoted (display only)."""
    parts = ["# the job's command (it runs in a new job folder)", shlex.join(check.command())]
    for step in check.plan.steps if check.plan else ():
        parts += ["", f"# {step.label}", shlex.join(step.argv)]
    facts = check.plan.facts if check.plan else {}
    if facts:
        parts += ["", "# resolved: " + ", ".join(f"{k}={v}" for k, v in facts.items())]
        if "seed" in facts and check.resolved.values.get("seed", -1) == -1:
            parts.append("# (a random seed, -1, is drawn again when the job starts; its manifest records it)")
    return "\n".join(parts).replace(str(job_dir), JOB_FOLDER_SHOWN)
