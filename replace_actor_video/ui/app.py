"""The Gradio Blocks app: one tab per registered stage, the full pipeline, the Runs history, and a jobs
panel with live log and progress. Forms come from the option specs (ui/commands.py); jobs run the stage
CLIs through the queue (ui/jobs.py). The only module besides app_ui.py that imports gradio."""

from __future__ import annotations

import argparse
import datetime as dt
import html
import os
import shutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a GPU server

import gradio as gr  # noqa: E402

from ..core import config  # noqa: E402
from ..core.cli import report_errors  # noqa: E402
from ..core.errors import UserError  # noqa: E402
from ..core.options import OptionSpec  # noqa: E402
from ..pipeline.registry import STAGES  # noqa: E402
from . import points_editor  # noqa: E402
from .commands import UPLOAD_WIDGETS, Form, Workspace, build_command, is_output, pipeline_form, stage_form  # noqa: E402
from .jobs import FINISHED, RUNNING, JobQueue  # noqa: E402
from .previews import mask_overlay  # noqa: E402
from .runs import RunEntry, kind_of, list_runs  # noqa: E402

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
# The stages of the product, in pipeline order; a registered stage gets a form, the others a note until
# their helper registers them in pipeline/registry.py.
PLANNED_TABS = (("preprocess", "Preprocess"), ("mask", "Mask"), ("generate", "Generation"), ("refine", "Refine"),
                ("postprocess", "Postprocess"), ("upscale", "Upscale"))
OPEN_GROUPS = {"inputs", "outputs", "mode", "sampling", "options"}
GROUP_ORDER = ("inputs", "outputs", "mode", "options", "sampling", "mask", "performance", "run", "paths")
SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]  # no web-font download: the server may be offline


@dataclass
class AppContext:
    workspace: Workspace
    queue: JobQueue
    cache: Path  # derived stills (frames, overlays), never inside a run's output folders
    sam2_checkpoint: Path


# -- forms ------------------------------------------------------------------------------------------------
@dataclass
class Slot:
    name: str
    role: str  # "value", "upload" or "path"
    component: Any


def _component(form: Form, spec: OptionSpec, elem: str) -> Any:
    label, info, value = spec.name, spec.meta.help, form.default_text(spec)
    if spec.type is bool:
        return gr.Checkbox(label=label, info=info, value=bool(value), elem_id=elem)
    if spec.meta.choices:
        return gr.Dropdown(label=label, info=info, choices=list(spec.meta.choices), value=value, elem_id=elem)
    if spec.type in (int, float) and not spec.meta.parse and value is not None:
        # A gr.Number has no empty state (it sends 0): optional numbers are text boxes, empty = the default.
        return gr.Number(label=label, info=info, value=value, precision=0 if spec.type is int else None, elem_id=elem)
    placeholder = None
    default = form.defaults.get(spec.name, spec.default)
    if is_output(spec) and isinstance(default, str):
        placeholder = f"empty: <job folder>/{Path(default).name}"
    elif value is None or value == "":
        placeholder = "empty: the command's default (see above)"
    return gr.Textbox(label=label, info=info, value=value or "", placeholder=placeholder, elem_id=elem,
                      lines=3 if spec.meta.widget == "textarea" else 1)


def render_form(form: Form) -> list[Slot]:
    """The form's inputs grouped as the specs group them; upload widgets get an upload box and a path box."""
    slots: list[Slot] = []
    groups: dict[str, list[OptionSpec]] = {}
    for spec in form.fields:
        groups.setdefault(spec.meta.group, []).append(spec)
    ordered = sorted(groups, key=lambda g: GROUP_ORDER.index(g) if g in GROUP_ORDER else len(GROUP_ORDER))
    for group in ordered:
        members = groups[group]
        with gr.Accordion(group.capitalize(), open=group in OPEN_GROUPS, elem_id=f"{form.name}-group-{group}"):
            for spec in members:
                elem = f"{form.name}-{spec.name}"
                if spec.meta.widget in UPLOAD_WIDGETS:
                    with gr.Row():
                        if spec.meta.widget == "video":
                            upload = gr.Video(label=f"{spec.name} (upload)", sources=["upload"], elem_id=elem, height=200)
                        elif spec.meta.widget == "image":
                            upload = gr.Image(label=f"{spec.name} (upload)", type="filepath", sources=["upload"],
                                              elem_id=elem, height=200)
                        else:
                            upload = gr.File(label=f"{spec.name} (upload)", type="filepath", elem_id=elem)
                        path = gr.Textbox(label=f"{spec.name}: or a path in the workspace", info=spec.meta.help,
                                          elem_id=f"{elem}-path")
                    slots += [Slot(spec.name, "upload", upload), Slot(spec.name, "path", path)]
                else:
                    slots.append(Slot(spec.name, "value", _component(form, spec, elem)))
    return slots


def form_values(slots: Sequence[Slot], raw: Sequence[Any]) -> tuple[dict[str, Any], set[str]]:
    """Option name → value, and the names whose value is an uploaded file (a typed path wins over it)."""
    values: dict[str, Any] = {}
    uploads: dict[str, Any] = {}
    for slot, value in zip(slots, raw):
        if slot.role == "upload":
            if value:
                uploads[slot.name] = value
        elif slot.role == "path":
            if value and str(value).strip():
                values[slot.name] = value
        else:
            values[slot.name] = value
    uploaded = set()
    for name, value in uploads.items():
        if name not in values:
            values[name] = value
            uploaded.add(name)
    return values, uploaded


def submit_handler(ctx: AppContext, form: Form, slots: Sequence[Slot]) -> Callable[..., Any]:
    def submit(*raw: Any) -> Any:
        values, uploaded = form_values(slots, raw)
        job_dir = ctx.queue.new_job_dir(form.name)
        try:
            command = build_command(form, values, job_dir=job_dir, workspace=ctx.workspace, uploaded=uploaded)
        except UserError as exc:
            shutil.rmtree(job_dir, ignore_errors=True)
            raise gr.Error(str(exc), title="Not started") from None
        job = ctx.queue.submit(stage=form.name, title=form.title, job_dir=job_dir, script=form.script,
                               args=command.args, values=command.values, run_dir=command.run_dir)
        gr.Info(f"{job.id}: queued", duration=4)
        return gr.update(choices=_job_choices(ctx), value=job.id)

    return submit


# -- jobs panel ---------------------------------------------------------------------------------------------
def _job_choices(ctx: AppContext) -> list[tuple[str, str]]:
    return [j.id for j in ctx.queue.jobs()]


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def _elapsed(start: str | None, end: str | None) -> float | None:
    if not start:
        return None
    t0 = dt.datetime.fromisoformat(start)
    t1 = dt.datetime.fromisoformat(end) if end else dt.datetime.now().astimezone()
    return (t1 - t0).total_seconds()


def progress_html(ctx: AppContext, job_id: str | None) -> str:
    job = ctx.queue.get(job_id)
    if job is None:
        return ""
    view = ctx.queue.progress(job.id)
    fraction = view.fraction
    parts = [job.status]
    if fraction is not None:
        parts.append(f"{fraction:.0%}")
    if view.text:
        parts.append(view.text)
    if job.status == RUNNING and view.eta_s is not None:
        parts.append(f"ETA {_clock(view.eta_s)}")
    if job.started:
        parts.append(f"elapsed {_clock(_elapsed(job.started, job.finished))}")
    colour = {"failed": "#d33", "cancelled": "#999", "done": "#2a2"}.get(job.status, "#2f6fde")
    width = 100 if job.status in FINISHED and job.status != "failed" and fraction is None else (fraction or 0) * 100
    return (f'<div style="border:1px solid #bbb;border-radius:4px;height:14px;overflow:hidden">'
            f'<div data-testid="job-bar" style="background:{colour};height:100%;width:{width:.1f}%"></div></div>'
            f'<div data-testid="job-progress-text" style="font-size:0.9em;margin-top:4px">'
            f'{html.escape(" · ".join(parts))}</div>')


def status_markdown(ctx: AppContext, job_id: str | None) -> str:
    job = ctx.queue.get(job_id)
    if job is None:
        return "No job selected. Start one from a stage tab."
    lines = [f"**{job.id}** · {job.title} · **{job.status}**"]
    if job.message:
        lines.append(f"> {job.message}")
    lines.append(f"```\n{job.display_command}\n```")
    return "\n\n".join(lines)


def html_table(headers: Sequence[str], rows: Sequence[Sequence[str]], empty: str) -> str:
    """A small static table (a gr.Dataframe virtualises its rows, which a log-like list does not need)."""
    if not rows:
        return f"<p><em>{html.escape(empty)}</em></p>"
    head = "".join(f"<th style='text-align:left;padding:2px 8px'>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td style='padding:2px 8px'>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table style='width:100%;border-collapse:collapse'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def jobs_table(ctx: AppContext) -> str:
    rows = []
    for job in ctx.queue.jobs()[:15]:
        view = ctx.queue.progress(job.id)
        rows.append([job.id, job.status, f"{view.fraction:.0%}" if view.fraction is not None else ""])
    return html_table(["job", "status", "progress"], rows, "No jobs yet.")


# -- runs tab ---------------------------------------------------------------------------------------------
def _shown(ctx: AppContext, path: Path | None) -> str | None:
    """Only files inside the workspace ever reach the browser."""
    return str(path) if path is not None and path.is_file() and ctx.workspace.contains(path) else None


def run_view(ctx: AppContext, entry: RunEntry | None) -> list[Any]:
    if entry is None:
        return ["Choose a run.", None, None, None, None, None, None, None, {}, ""]
    inputs = entry.inputs()
    video = next((p for p in inputs if kind_of(p) == "video"), None)
    image = next((p for p in inputs if kind_of(p) == "image"), None)
    folder = next(iter(entry.preprocess_folders()), None)
    pose = face = overlay = None
    if folder is not None:
        pose, face = folder / "src_pose.mp4", folder / "src_face.mp4"
        if (folder / "src_mask.mp4").is_file() and (folder / "src_bg.mp4").is_file():
            try:
                overlay = mask_overlay(folder / "src_bg.mp4", folder / "src_mask.mp4", 0, ctx.cache)
            except UserError:
                overlay = None
    result = next((p for p in reversed(entry.result_files()) if kind_of(p) == "video"), None)
    downloads = [f for f in (_shown(ctx, p) for p in entry.downloads()) if f]
    lines = [f"**{entry.name}** · {entry.stage} · **{entry.status}**" + ("" if entry.job else " · started from a terminal")]
    if entry.job and entry.job.message:
        lines.append(f"> {entry.job.message}")
    for name, record in entry.stage_records().items():
        took = f" in {record['seconds']:.0f} s" if record.get("seconds") is not None else ""
        lines.append(f"- {name}: {record.get('status', '?')}{took}" + (f" — {record['error']}" if record.get("error") else ""))
    outside = [str(p) for p in entry.result_files() if not ctx.workspace.contains(p)]
    if outside:
        lines.append(f"Not shown (outside the workspace): {', '.join(outside)}")
    return ["\n\n".join(lines), _shown(ctx, video), _shown(ctx, image), _shown(ctx, pose), _shown(ctx, face),
            _shown(ctx, overlay), _shown(ctx, result), downloads or None, entry.settings(), entry.log_tail()]


# -- the app ----------------------------------------------------------------------------------------------
def tab_plan() -> list[tuple[str, str, Form | None]]:
    """(name, title, form or None) for the stage tabs: the planned order, then any other registered stage."""
    registered = {entry.name: entry for entry in STAGES}
    plan = [(name, registered[name].title if name in registered else title,
             stage_form(registered[name]) if name in registered else None) for name, title in PLANNED_TABS]
    planned = {name for name, _ in PLANNED_TABS}
    plan += [(e.name, e.title, stage_form(e)) for e in STAGES if e.name not in planned]
    return plan


def build_app(ctx: AppContext) -> gr.Blocks:
    with gr.Blocks(title="replace-actor-video", delete_cache=(3600, 24 * 3600)) as demo:
        gr.Markdown("## replace-actor-video · Wan2.2-Animate\nEach tab runs the same script as the command line "
                    "(`run_*.py`, `pipeline.py`); jobs queue on the right. Empty output fields mean: inside the "
                    "job's folder under the runs folder.")
        selected = gr.State(None)
        known_jobs = gr.State(())
        with gr.Sidebar(label="Jobs", position="right", width=440, open=True, elem_id="jobs-panel"):
            gr.Markdown("### Jobs")
            table = gr.HTML(elem_id="jobs-table")
            job_select = gr.Dropdown(label="Job", choices=_job_choices(ctx), elem_id="job-select")
            progress = gr.HTML(elem_id="job-progress")
            status = gr.Markdown(elem_id="job-status")
            cancel = gr.Button("Cancel job", variant="stop", elem_id="job-cancel")
            log = gr.Textbox(label="Log (live)", lines=14, max_lines=14, autoscroll=True, interactive=False,
                             elem_id="job-log")
        with gr.Tabs(elem_id="tabs"):
            submit_buttons = []
            for name, title, form in tab_plan():
                with gr.Tab(title, id=name, elem_id=f"tab-{name}"):
                    slots: list[Slot] = []
                    if form is None:
                        gr.Markdown(f"**{title}** is not available yet: no `{name}` stage is registered in "
                                    "`replace_actor_video/pipeline/registry.py`. Its tab fills in by itself "
                                    "once it is.", elem_id=f"note-{name}")
                    else:
                        slots = render_form(form)
                        button = gr.Button(f"Run {title}", variant="primary", elem_id=f"run-{name}")
                        submit_buttons.append((form, slots, button))
                    if name == "mask":
                        points_tab(ctx, slots, [s for s in (form.fields if form else ()) if s.meta.widget == "points"])
            with gr.Tab("Full pipeline", id="pipeline", elem_id="tab-pipeline"):
                form = pipeline_form()
                slots = render_form(form)
                submit_buttons.append((form, slots, gr.Button("Run full pipeline", variant="primary",
                                                              elem_id="run-pipeline")))
            with gr.Tab("Runs", id="runs", elem_id="tab-runs") as runs_tab:
                runs_outputs = runs_panel(ctx)
        for form, slots, button in submit_buttons:
            button.click(submit_handler(ctx, form, slots), [s.component for s in slots], job_select)

        def tick(job_id: str | None, known: tuple) -> list[Any]:
            ids = tuple(j.id for j in ctx.queue.jobs())
            if job_id is None and ids:
                job_id = ids[0]
            choices = gr.update(choices=_job_choices(ctx), value=job_id) if ids != known else gr.skip()
            return [jobs_table(ctx), choices, progress_html(ctx, job_id), status_markdown(ctx, job_id),
                    ctx.queue.log_tail(job_id) if job_id else "", ids, job_id]

        panel = [table, job_select, progress, status, log, known_jobs, selected]
        gr.Timer(1.0).tick(tick, [selected, known_jobs], panel, show_progress="hidden")
        job_select.change(lambda j, k: tick(j, k), [job_select, known_jobs], panel, show_progress="hidden")

        def do_cancel(job_id: str | None) -> None:
            if not job_id:
                raise gr.Error("choose a job first")
            gr.Info(ctx.queue.cancel(job_id))

        cancel.click(do_cancel, job_select, None)
        refresh, runs_select, runs_table, detail = runs_outputs
        demo.load(tick, [selected, known_jobs], panel, show_progress="hidden")
        demo.load(lambda: runs_list(ctx), None, [runs_table, runs_select])
        runs_tab.select(lambda: runs_list(ctx), None, [runs_table, runs_select])
    return demo


def runs_list(ctx: AppContext) -> list[Any]:
    entries = list_runs(ctx.workspace.runs_dir, {j.id: j for j in ctx.queue.jobs()})
    rows = [[e.name, e.stage, e.status, e.created.replace("T", " ")[:19]] for e in entries]
    table = html_table(["run", "stage", "status", "created"], rows, f"No runs in {ctx.workspace.runs_dir} yet.")
    return [f"<div style='max-height:260px;overflow:auto'>{table}</div>", gr.update(choices=[e.name for e in entries])]


def runs_panel(ctx: AppContext) -> tuple[Any, Any, Any, list[Any]]:
    with gr.Row():
        runs_select = gr.Dropdown(label="Run", choices=[], elem_id="run-select", scale=4)
        refresh = gr.Button("Refresh", elem_id="runs-refresh", scale=1)
    runs_table = gr.HTML(elem_id="runs-table")
    summary = gr.Markdown(elem_id="run-summary")
    with gr.Row():
        in_video = gr.Video(label="input video", interactive=False, height=180)
        in_image = gr.Image(label="reference", interactive=False, height=180)
    with gr.Row():
        pose = gr.Video(label="pose (src_pose.mp4)", interactive=False, height=180)
        face = gr.Video(label="face (src_face.mp4)", interactive=False, height=180)
        overlay = gr.Image(label="mask overlay (frame 0)", interactive=False, height=180, elem_id="run-mask-overlay")
    result = gr.Video(label="result", interactive=False, elem_id="run-result", height=260)
    downloads = gr.File(label="downloads", file_count="multiple", interactive=False, elem_id="run-downloads")
    settings = gr.JSON(label="settings", elem_id="run-settings")
    log = gr.Textbox(label="log", lines=10, max_lines=10, interactive=False, elem_id="run-log")
    detail = [summary, in_video, in_image, pose, face, overlay, result, downloads, settings, log]

    def show(name: str | None) -> list[Any]:
        entries = list_runs(ctx.workspace.runs_dir, {j.id: j for j in ctx.queue.jobs()})
        return run_view(ctx, next((e for e in entries if e.name == name), None))

    runs_select.change(show, runs_select, detail)
    refresh.click(lambda: runs_list(ctx), None, [runs_table, runs_select])
    return refresh, runs_select, runs_table, detail


def points_tab(ctx: AppContext, slots: Sequence[Slot], points_fields: Sequence[OptionSpec]) -> None:
    """Clicks on one frame → the mask package's points JSON, and a SAM2 preview of the mask they give."""
    gr.Markdown("### Points editor\nClick on the person for positive points; switch to *negative* to mark "
                "background. Pick a frame of the driving video, or of a preprocessing folder's `src_bg.mp4` "
                "(the frames the mask stage segments). Saved files use the same format as the CLI (docs/MASK.md).")
    editor = gr.State(points_editor.Editor())
    with gr.Row():
        upload = gr.Video(label="video (upload)", sources=["upload"], elem_id="points-video", height=200)
        with gr.Column():
            path = gr.Textbox(label="or a video path in the workspace", elem_id="points-video-path")
            frame = gr.Number(label="frame", value=0, precision=0, minimum=0, elem_id="points-frame")
            load = gr.Button("Load frame", elem_id="points-load")
    with gr.Row():
        mode = gr.Radio(["positive", "negative"], value="positive", label="a click adds a", elem_id="points-mode")
        undo = gr.Button("Undo", elem_id="points-undo")
        clear = gr.Button("Clear", elem_id="points-clear")
        normalized = gr.Checkbox(label="normalized coordinates (for a video of another size)", value=False,
                                 elem_id="points-normalized")
    image = gr.Image(label="frame: click to add points", interactive=False, type="pil", elem_id="points-image")
    json_box = gr.Code(label="points JSON", language="json", interactive=False, elem_id="points-json")
    with gr.Row():
        save_as = gr.Textbox(label="save as", placeholder="empty: <runs folder>/points/<video>-f<frame>.json",
                             elem_id="points-save-as")
        save = gr.Button("Save points JSON", elem_id="points-save")
    saved = gr.File(label="points file", interactive=False, elem_id="points-file")
    with gr.Row():
        checkpoint = gr.Textbox(label="SAM2 checkpoint", value=str(ctx.sam2_checkpoint), elem_id="points-sam2")
        preview = gr.Button("Preview mask", elem_id="points-preview")
    message = gr.Markdown(elem_id="points-message")
    mask_image = gr.Image(label="mask preview", interactive=False, elem_id="points-mask")

    def shown(ed: points_editor.Editor, norm: bool) -> list[Any]:
        try:
            text = ed.to_json(normalized=norm) if ed.clicks else ""
        except UserError as exc:
            text = f"// {exc}"
        return [ed, points_editor.draw(ed), text]

    def do_load(video: str | None, typed: str, index: float | None, norm: bool) -> list[Any]:
        try:
            source = ctx.workspace.resolve(typed, "video") if typed and typed.strip() else video
            if not source:
                raise UserError("choose a video: upload one or give its path")
            ed = points_editor.load_frame(source, int(index or 0), ctx.cache)
        except UserError as exc:
            raise gr.Error(str(exc)) from None
        return shown(ed, norm)

    def do_click(ed: points_editor.Editor, kind: str, norm: bool, evt: gr.SelectData) -> list[Any]:
        try:
            ed = ed.click(evt.index[0], evt.index[1], kind == "positive")
        except UserError as exc:
            raise gr.Error(str(exc)) from None
        return shown(ed, norm)

    def do_save(ed: points_editor.Editor, target: str, norm: bool) -> list[Any]:
        try:
            if target and target.strip():
                out = ctx.workspace.resolve(target, "save as")
            else:
                out = ctx.workspace.runs_dir / "points" / f"{Path(ed.video).stem}-f{ed.frame}.json"
            points_editor.save(ed, out, normalized=norm)
        except UserError as exc:
            raise gr.Error(str(exc)) from None
        gr.Info(f"saved {out}", duration=4)
        return [str(out), f"Saved `{out}`", *([str(out)] * len(point_targets))]

    def do_preview(ed: points_editor.Editor, ckpt: str) -> list[Any]:
        try:
            out = points_editor.preview_mask(ed, Path(ckpt), ctx.cache)
        except UserError as exc:
            return [None, f"Preview not available: {exc}"]
        except Exception as exc:  # noqa: BLE001  (torch/sam2 loading a bad file raises anything; the UI goes on)
            return [None, f"Preview not available: SAM2 failed on {ckpt} ({type(exc).__name__}: {exc}); check the "
                          "checkpoint file"]
        return [str(out), "Mask preview: SAM2 on this frame with these points."]

    point_targets = [s.component for s in slots if s.role == "value" and s.name in {f.name for f in points_fields}]
    view = [editor, image, json_box]
    load.click(do_load, [upload, path, frame, normalized], view)
    image.select(do_click, [editor, mode, normalized], view)
    undo.click(lambda ed, n: shown(ed.undo(), n), [editor, normalized], view)
    clear.click(lambda ed, n: shown(ed.clear(), n), [editor, normalized], view)
    normalized.change(lambda ed, n: shown(ed, n), [editor, normalized], view)
    save.click(do_save, [editor, save_as, normalized], [saved, message, *point_targets])
    preview.click(do_preview, [editor, checkpoint], [mask_image, message])


# -- command line -------------------------------------------------------------------------------------------
def parse_auth(text: str | None) -> tuple[str, str] | None:
    if not text:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise UserError("--auth must be user:password (both non-empty)")
    return user, password


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Web UI for every stage (Gradio). Binds 127.0.0.1 unless told.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this "
                        "machine only); any other address needs --auth")
    parser.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    parser.add_argument("--share", action="store_true", help="open a public Gradio share link (needs --auth)")
    parser.add_argument("--auth", default=None, help="user:password required to open the UI (env RAV_UI_AUTH); "
                        "mandatory with --share or a non-local --host")
    parser.add_argument("--max_jobs", type=int, default=1, help="jobs run at once (default: 1, one GPU job)")
    parser.add_argument("--runs_dir", default=config.RUNS.default_value(),
                        help=f"where job and run folders go (env {config.RUNS.env}; default: runs)")
    parser.add_argument("--workspace", default=".", help="the folder the UI may read and write files in, besides "
                        "the runs folder and uploads; relative paths in forms start here (default: current folder)")
    parser.add_argument("--max_file_size", default="4gb", help="largest upload (default: 4gb)")
    return parser


def make_context(args: argparse.Namespace) -> AppContext:
    root = Path(args.workspace).expanduser().resolve()
    runs = Path(args.runs_dir).expanduser()
    runs = (runs if runs.is_absolute() else root / runs).resolve()
    cache = runs / ".ui-cache"
    # Uploads land in our cache (not /tmp/gradio): the upload size can be large and the folder is ours.
    os.environ.setdefault("GRADIO_TEMP_DIR", str(cache / "uploads"))
    uploads = Path(os.environ["GRADIO_TEMP_DIR"]).resolve()
    uploads.mkdir(parents=True, exist_ok=True)
    (cache / "stills").mkdir(parents=True, exist_ok=True)
    ckpt = Path(config.CHECKPOINT.default_value())
    sam2 = (ckpt if ckpt.is_absolute() else root / ckpt) / "process_checkpoint" / "sam2" / "sam2_hiera_large.pt"
    return AppContext(Workspace(root, runs, uploads), JobQueue(runs, max_jobs=args.max_jobs), cache / "stills", sam2)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # gradio 6.17 touches a renamed starlette constant on every request; the warning says nothing about us.
    warnings.filterwarnings("ignore", message=".*HTTP_422_UNPROCESSABLE_ENTITY.*")

    def body() -> None:
        auth = parse_auth(args.auth or os.environ.get("RAV_UI_AUTH"))
        if (args.share or args.host not in LOCAL_HOSTS) and auth is None:
            exposed = "--share" if args.share else f"--host {args.host}"
            raise UserError(f"{exposed} makes the UI reachable from other machines; add --auth user:password "
                            "(or set RAV_UI_AUTH)")
        ctx = make_context(args)
        demo = build_app(ctx)
        print(f"[rav-ui] workspace {ctx.workspace.root}, runs {ctx.workspace.runs_dir}, max_jobs {args.max_jobs}",
              flush=True)
        try:
            demo.queue(default_concurrency_limit=8).launch(
                server_name=args.host, server_port=args.port, share=args.share, auth=auth, allowed_paths=[],
                max_file_size=args.max_file_size, show_error=True, ssr_mode=False, pwa=False, mcp_server=False,
                enable_monitoring=False, footer_links=[], theme=gr.themes.Default(font=SYSTEM_FONTS))
        finally:
            ctx.queue.close()

    return report_errors(body)


if __name__ == "__main__":
    sys.exit(main())
