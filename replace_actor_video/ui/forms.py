"""A form in the browser: one component per option the browser may set (ui/commands.py says which), with the
spec's label, help, default and CLI flag; the plan check on submit, problems shown next to their fields
(Gradio's validator), and "Preview commands" answered at once, outside the job queue."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from ..core.options import OptionSpec, format_value
from .checks import FormCheck, check_form, preview_text
from .commands import Form, Workspace, blank, is_media, label
from .jobs import JobQueue
from .settings import WEIGHTS, ServerSettings

# Groups shown open (what most runs change); every other group is an "advanced" section, closed.
BASIC_GROUPS = ("mode", "inputs", "prompt", "options")
PROMPT = "prompt"  # text boxes (the prompts) are shown open, whatever group their option is in
GROUP_TITLES = {
    "mode": "Mode",
    "inputs": "Inputs",
    "prompt": "Prompt",
    "options": "Options",
    "sampling": "Sampling",
    "mask": "Mask (replace mode)",
    "quality": "Colour across clips",
    "performance": "Speed and memory",
    "finishing": "Finishing",
    "seedvr": "SeedVR2",
    "realesrgan": "Real-ESRGAN",
}
DUPLICATE_SECONDS = 10.0  # the same submission again within this time asks before queueing twice
ASK_SECONDS = 30.0  # a second Run within this time after the question queues it


@dataclass
class Slot:
    name: str
    role: str  # "value", "upload" or "path"
    component: Any


@dataclass
class Env:
    """What the form handlers need from the app."""

    workspace: Workspace
    settings: ServerSettings
    queue: JobQueue
    scratch: Path  # where a check's throw-away job folder goes (never a run folder)

    @contextlib.contextmanager
    def scratch_job(self) -> Iterator[Path]:
        """A job folder for a check that runs nothing: inside the UI's cache, removed afterwards."""
        folder = self.scratch / uuid.uuid4().hex[:12]
        folder.mkdir(parents=True)
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def info(form: Form, spec: OptionSpec) -> str:
    """Help for people, the default, and the CLI flag it stands for."""
    default = form.default(spec)
    if spec.required:
        said = "required"
    elif spec.meta.server == WEIGHTS:
        said = "pick from the server's files"
    elif spec.type is bool:
        said = f"default: {spec.meta.switch[bool(default)] if spec.meta.switch else ('on' if default else 'off')}"
    elif default is None or default == "":
        said = "default: the command's own"
    else:
        said = f"default: {format_value(default)}"
    return f"--{spec.name} · {spec.meta.help} · {said}"


def component(form: Form, spec: OptionSpec, elem: str, settings: ServerSettings) -> Any:
    """The input for one non-media option, built from its spec."""
    text, help_text, value = label(spec), info(form, spec), form.default_text(spec)
    if spec.meta.server == WEIGHTS:
        choices = list(settings.weight_files(spec.name))
        return gr.Dropdown(
            label=text,
            info=help_text,
            choices=choices,
            value=[] if spec.meta.repeat else None,
            multiselect=spec.meta.repeat,
            allow_custom_value=spec.meta.repeat,
            elem_id=elem,
        )
    if spec.type is bool and spec.meta.switch:
        return gr.Radio(list(spec.meta.switch), value=value, label=text, info=help_text, elem_id=elem)
    if spec.type is bool:
        return gr.Checkbox(label=text, info=help_text, value=bool(value), elem_id=elem)
    if spec.meta.choices:
        return gr.Dropdown(label=text, info=help_text, choices=list(spec.meta.choices), value=value, elem_id=elem)
    if spec.type in (int, float) and not spec.meta.parse and value is not None:
        # A gr.Number has no empty state (it sends 0): optional numbers are text boxes, empty = the default.
        return gr.Number(
            label=text, info=help_text, value=value, precision=0 if spec.type is int else None, elem_id=elem
        )
    placeholder = "empty: the command's default" if value in (None, "") else None
    return gr.Textbox(
        label=text,
        info=help_text,
        value=value or "",
        placeholder=placeholder,
        elem_id=elem,
        lines=3 if spec.meta.widget == "textarea" else 1,
    )


def media_inputs(form: Form, spec: OptionSpec, elem: str) -> list[Slot]:
    """An upload box and a path box for a media option (a typed path wins)."""
    text = label(spec)
    with gr.Row(equal_height=False):
        if spec.meta.widget == "video":
            upload = gr.Video(label=text, sources=["upload"], elem_id=elem, height=180)
        elif spec.meta.widget == "image":
            upload = gr.Image(label=text, type="filepath", sources=["upload"], elem_id=elem, height=180)
        else:
            upload = gr.File(label=f"{text} (upload)", type="filepath", file_types=[".json"], elem_id=elem, height=80)
        default = form.default(spec)
        path = gr.Textbox(
            label=f"{text}: or a path on the server",
            info=info(form, spec),
            elem_id=f"{elem}-path",
            value=default if spec.meta.widget == "points" and default else "",
            placeholder="e.g. media/dance.mp4 (inside the workspace)",
        )
    return [Slot(spec.name, "upload", upload), Slot(spec.name, "path", path)]


def _section(form: Form, group: str) -> str:
    title = GROUP_TITLES.get(group, group.capitalize())
    return title if group in BASIC_GROUPS else f"{title} (advanced)"


@dataclass
class FormView:
    form: Form
    slots: list[Slot]
    sections: dict[str, Any]  # group → its accordion
    run: Any
    preview: Any
    problems: Any  # general problems (about no single field)
    commands: Any  # the preview's output

    @property
    def inputs(self) -> list[Any]:
        return [s.component for s in self.slots]

    def values(self, raw: Sequence[Any]) -> tuple[dict[str, Any], set[str]]:
        """Option name → value, and the names whose value is an uploaded file (a typed path wins over it)."""
        values: dict[str, Any] = {}
        uploads: dict[str, Any] = {}
        for slot, value in zip(self.slots, raw):
            if slot.role == "upload":
                if value:
                    uploads[slot.name] = value
            elif slot.role == "path":
                if value and str(value).strip():
                    values[slot.name] = value
            else:
                values[slot.name] = value
        uploaded = {name for name in uploads if name not in values}
        values.update({name: uploads[name] for name in uploaded})
        return values, uploaded

    def fill(self, chosen: dict[str, Any]) -> list[Any]:
        """Updates that put a job's chosen values back into this form (files as paths on the server)."""
        out = []
        for slot in self.slots:
            spec = self.form.field(slot.name)
            value = chosen.get(slot.name)
            if slot.role == "upload":
                out.append(None)
            elif slot.role == "path":
                out.append(
                    value if value is not None else (self.form.default(spec) if spec.meta.widget == "points" else "")
                )
            elif value is None:
                out.append(
                    self.form.default_text(spec) if spec.meta.server != WEIGHTS else ([] if spec.meta.repeat else None)
                )
            elif spec.type is bool and spec.meta.switch and isinstance(value, bool):
                out.append(spec.meta.switch[value])
            else:
                out.append(format_value(value) if isinstance(value, tuple) else value)
        return out


def render_form(form: Form, settings: ServerSettings) -> FormView:
    """The form's inputs grouped as the specs group them, basic groups first and open, the rest closed;
    then the action bar (sticky: always in view on a long form)."""
    slots: list[Slot] = []
    sections: dict[str, Any] = {}
    groups: dict[str, list[OptionSpec]] = {}
    for spec in form.fields:
        groups.setdefault(PROMPT if spec.meta.widget == "textarea" else spec.meta.group, []).append(spec)
    order = [g for g in BASIC_GROUPS if g in groups] + [g for g in groups if g not in BASIC_GROUPS]
    for group in order:
        with gr.Accordion(
            _section(form, group), open=group in BASIC_GROUPS, elem_id=f"{form.name}-group-{group}"
        ) as sections[group]:
            for spec in groups[group]:
                elem = f"{form.name}-{spec.name}"
                if is_media(spec):
                    slots += media_inputs(form, spec, elem)
                else:
                    slots.append(Slot(spec.name, "value", component(form, spec, elem, settings)))
    server = [s for s in form.options if s.meta.server and s.name in settings.locations]
    if server:
        with gr.Accordion("Set on the server (not changeable here)", open=False, elem_id=f"{form.name}-server"):
            gr.Markdown(
                "\n".join(f"- **{label(s)}** `--{s.name}`: `{settings.locations[s.name] or 'default'}`" for s in server)
            )
    commands = gr.Code(
        label="Commands (a preview: nothing was started)",
        language="shell",
        visible=False,
        interactive=False,
        elem_id=f"{form.name}-commands",
        wrap_lines=True,
    )
    with gr.Column(elem_classes="rav-actions"):
        problems = gr.Textbox(
            label="Checks",
            show_label=False,
            container=False,
            interactive=False,
            max_lines=3,
            elem_id=f"{form.name}-problems",
            placeholder="Checks: problems show next to their field, others here",
        )
        with gr.Row():
            run = gr.Button(
                f"Run {form.title.lower()}" if form.name == "pipeline" else f"Run {form.title}",
                variant="primary",
                elem_id=f"run-{form.name}",
                scale=3,
            )
            preview = gr.Button("Preview commands", elem_id=f"preview-{form.name}", scale=2)
    return FormView(form, slots, sections, run, preview, problems, commands)


def request_key(form: Form, values: dict[str, Any]) -> str:
    """What the browser sent, as a key: two identical submissions give the same key (uploads are named by
    their content in Gradio's cache)."""
    text = json.dumps([form.name, sorted(values.items())], default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def wire(view: FormView, env: Env, open_job: Callable[[str], Any], job_outputs: Sequence[Any]) -> None:
    """The form's events: Run (its validator: the checks, and a question before the same job is queued twice)
    and Preview commands (the checks and the commands, at once). `open_job(job_id)` gives the updates of
    `job_outputs` that show a job in the queue panel."""
    n_inputs = len(view.slots)
    asked: dict[str, float] = {}  # request key → when the "same job again?" question was asked

    def checked(raw: Sequence[Any], job_dir: Path, *, store: bool = False) -> FormCheck:
        values, uploaded = view.values(raw)
        return check_form(
            view.form,
            values,
            job_dir=job_dir,
            workspace=env.workspace,
            settings=env.settings,
            uploaded=uploaded,
            store=store,
        )

    def marks(raw: Sequence[Any], result: FormCheck, extra: list[str]) -> list[Any]:
        """One mark per input: a field's problem next to it, the others on the Checks box."""
        values, uploaded = view.values(raw)
        out = []
        for slot in view.slots:
            message = result.by_field.get(slot.name)
            # Next to where the value came from: the upload box, the path box, or both when it is missing.
            here = message is not None and (
                slot.role == "value"
                or (slot.role == "upload") == (slot.name in uploaded)
                or blank(values.get(slot.name))
            )
            out.append(gr.validate(not here, message or ""))
        general = [*result.general, *extra]
        return [*out, gr.validate(not general, "; ".join(general))]

    def validate(*raw: Any) -> list[Any]:
        raw = raw[:n_inputs]
        with env.scratch_job() as job_dir:
            return marks(raw, checked(raw, job_dir), [])

    def validate_run(*raw: Any) -> list[Any]:
        raw = raw[:n_inputs]
        with env.scratch_job() as job_dir:
            result = checked(raw, job_dir)
        extra = []
        if result.ok:
            key = request_key(view.form, view.values(raw)[0])
            twin = env.queue.recent(view.form.name, key, DUPLICATE_SECONDS)
            now = time.monotonic()
            if twin is not None and now - asked.get(key, -ASK_SECONDS) > ASK_SECONDS:
                asked[key] = now
                extra = [
                    f"the same job was queued a moment ago ({twin.id}, {twin.status}); press Run again to "
                    "queue it twice"
                ]
        return marks(raw, result, extra)

    def submit(*raw: Any) -> list[Any]:
        raw = raw[:n_inputs]
        job_dir = env.queue.new_job_dir(view.form.name)
        try:
            result = checked(raw, job_dir, store=True)
        except Exception:
            shutil.rmtree(job_dir, ignore_errors=True)
            raise
        if not result.ok:  # the validator passed a moment ago: an input changed since (e.g. a file went away)
            shutil.rmtree(job_dir, ignore_errors=True)
            raise gr.Error("; ".join([*result.by_field.values(), *result.general]), title="Not queued")
        key = request_key(view.form, view.values(raw)[0])
        asked.pop(key, None)
        job = env.queue.submit(
            stage=view.form.name,
            title=view.form.title,
            job_dir=job_dir,
            script=view.form.script,
            args=result.args,
            values=result.resolved.chosen,
            request=key,
        )
        position = env.queue.position(job.id)
        gr.Info(f"{job.id}: queued" + (f" (number {position})" if position else ""), duration=4)
        return open_job(job.id)

    def preview(*raw: Any) -> Any:
        raw = raw[:n_inputs]
        with env.scratch_job() as job_dir:
            text = preview_text(checked(raw, job_dir), job_dir)
        return gr.update(value=text, visible=True)

    inputs = [*view.inputs, view.problems]
    view.run.click(
        submit,
        inputs,
        job_outputs,
        validator=validate_run,
        concurrency_limit=1,
        concurrency_id="submit",
        api_name=f"run_{view.form.name}",
    )
    # Preview: the checks and the commands at once (never queued behind a job, never a run folder).
    view.preview.click(
        preview, inputs, view.commands, validator=validate, concurrency_limit=4, api_name=f"preview_{view.form.name}"
    )
