"""The Gradio app: the forms (full pipeline first, the mask tool, one tab per registered stage), the Runs
history and the server's settings on the left; the queue panel on the right. It composes the modules by
concern (forms, queue_panel, mask_tool, runs_view) and holds app_ui.py's command line."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a GPU server

import gradio as gr

from ..core import config
from ..core.cli import report_errors
from ..core.errors import UserError
from ..pipeline.registry import STAGES
from ..upstream.wan.preprocess import with_reference
from . import queue_panel
from .checks import check_form
from .commands import Form, Workspace, check_command, pipeline_form, stage_form
from .forms import Env, FormView, render_form, wire
from .jobs import Job, JobQueue
from .mask_tool import build_mask_tool, use_for_generation
from .media import store_upload
from .runs_view import build_runs_tab
from .settings import ServerSettings, add_server_flags, read_config

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]  # no web-font download: the server may be offline
CSS = """
.gradio-container { overflow: clip !important; }  /* 'hidden' would make it the scroller and break sticky */
#rav-header { margin: 0; padding: 0 4px; }
#rav-header p { margin: 0; }
.rav-actions { position: sticky; bottom: 0; z-index: 100; isolation: isolate;
  background: var(--background-fill-primary); border-top: 1px solid var(--border-color-primary); padding: 6px 0 4px; }
.rav-log:empty { display: none; }
#job-status pre, #job-status code { white-space: pre-wrap; word-break: break-all; }
#job-downloads .label-clear-button, #run-downloads .label-clear-button { display: none; }  /* nothing to clear */
@media (min-width: 1000px) {
  #queue-panel { position: sticky; top: 6px; align-self: flex-start; max-height: calc(100vh - 12px);
    overflow-y: auto; overflow-x: hidden; }
}
.rav-now { font-size: 14px; padding: 4px 2px; }
.rav-now small, .rav-job small { color: var(--body-text-color-subdued); }
.rav-progress { font-size: 13px; }
.rav-queued { font-size: 12px; color: var(--body-text-color-subdued); }
.rav-bar { border: 1px solid #bbb; border-radius: 4px; height: 12px; overflow: hidden; margin: 5px 0; }
.rav-bar > div { height: 100%; }
.rav-log { font-size: 12px; line-height: 1.35; overflow: auto; margin: 0; padding: 6px; white-space: pre-wrap;
  word-break: break-all; background: var(--background-fill-secondary); border-radius: 4px; min-height: 2em; }
.rav-jobs { max-height: 32vh; overflow-y: auto; border: 1px solid var(--border-color-primary); border-radius: 4px; }
.rav-job { padding: 4px 6px; border-bottom: 1px solid var(--border-color-primary); cursor: pointer; font-size: 13px; }
.rav-job:hover, .rav-job.selected { background: var(--background-fill-secondary); }
.rav-badge { font-size: 11px; padding: 0 6px; border-radius: 8px; background: #ddd; color: #222; }
.rav-job.running .rav-badge { background: #2f6fde; color: #fff; }
.rav-job.queued .rav-badge { background: #f3c04a; }
.rav-job.done .rav-badge { background: #2a2; color: #fff; }
.rav-job.failed .rav-badge { background: #d33; color: #fff; }
.rav-pos { font-weight: 600; }
"""


@dataclass
class AppContext:
    workspace: Workspace
    settings: ServerSettings
    queue: JobQueue
    cache: Path  # derived stills and previews, never inside a run's output folders
    forms: dict[str, Form]

    def serve(self, path: Path | None) -> str | None:
        """Only files inside the workspace ever reach the browser."""
        return str(path) if path is not None and path.is_file() and self.workspace.contains(path) else None

    def env(self) -> Env:
        return Env(self.workspace, self.settings, self.queue, self.cache.parent / "checks")


def all_forms() -> dict[str, Form]:
    """The full pipeline's form, then one per registered stage, in pipeline order."""
    return {"pipeline": pipeline_form(), **{entry.name: stage_form(entry) for entry in STAGES}}


def job_guard(forms: dict[str, Form], settings: ServerSettings):
    """The queue's last check before a job starts: its script is a form's, and its arguments name only the
    server's locations and weights (whatever wrote its job.json)."""

    def guard(job: Job) -> None:
        form = forms.get(job.stage)
        if form is None or job.command[:2] != ["python", form.script]:
            raise UserError(f"{job.command[:2]} is not the command of a form of this UI")
        check_command(form, job.command[2:], settings)

    return guard


def resubmit(ctx: AppContext, job: Job) -> str:
    """A new job with the values of `job` (re-checked: its inputs may be gone)."""
    form = ctx.forms.get(job.stage)
    if form is None:
        raise gr.Error(f"{job.id}: no form {job.stage} in this UI")
    job_dir = ctx.queue.new_job_dir(form.name)
    result = check_form(form, job.values, job_dir=job_dir, workspace=ctx.workspace, settings=ctx.settings)
    if not result.ok:
        shutil.rmtree(job_dir, ignore_errors=True)
        raise gr.Error("; ".join([*result.by_field.values(), *result.general]), title="Not queued")
    new = ctx.queue.submit(
        stage=form.name,
        title=form.title,
        job_dir=job_dir,
        script=form.script,
        args=result.args,
        values=result.resolved.chosen,
    )
    gr.Info(f"{new.id}: queued again (from {job.id})", duration=4)
    return new.id


def generate_with(ctx: AppContext, job: Job, folder: Path, image: Path) -> str:
    """A generation job from `job`'s replace-mode preprocessing `folder` with another character `image`
    (upstream.wan.preprocess.with_reference: no preprocessing, no SAM2), its generation options as in `job`."""
    form = ctx.forms["generate"]
    job_dir = ctx.queue.new_job_dir(form.name)
    try:
        reference = store_upload(image, "image", job_dir / "inputs", "refer_path")
        source = with_reference(folder, reference, job_dir / "process_results")
        values = {name: value for name, value in job.values.items() if form.field(name) is not None}
        switch = form.field("replace").meta.switch
        values.update(src_root_path=str(source), replace=switch[True] if switch else True)
        result = check_form(form, values, job_dir=job_dir, workspace=ctx.workspace, settings=ctx.settings)
        if not result.ok:
            raise UserError("; ".join([*result.by_field.values(), *result.general]))
    except UserError as exc:
        shutil.rmtree(job_dir, ignore_errors=True)
        raise gr.Error(str(exc), title="Not queued") from None
    new = ctx.queue.submit(
        stage=form.name,
        title=f"{form.title} (new character)",
        job_dir=job_dir,
        script=form.script,
        args=result.args,
        values=result.resolved.chosen,
    )
    gr.Info(f"{new.id}: queued with the mask of {job.id}", duration=4)
    return new.id


def settings_markdown(ctx: AppContext) -> str:
    rows = "\n".join(f"| `--{name}` | `{value}` |" for name, value in ctx.settings.describe())
    return (
        "Set when `app_ui.py` starts (its command line, `--config FILE.toml`, or the environment) and never "
        "from a browser: a browser user may choose media and options, not code, interpreters or folders "
        "(docs/UI.md, *Safety*).\n\n| setting | value |\n|---|---|\n"
        + rows
        + f"\n\nWorkspace: `{ctx.workspace.root}` · runs: `{ctx.workspace.runs_dir}`"
    )


def build_app(ctx: AppContext) -> gr.Blocks:
    env = ctx.env()
    with gr.Blocks(title="replace-actor-video", delete_cache=(3600, 24 * 3600)) as demo:
        gr.Markdown(
            "**replace-actor-video** · Wan2.2-Animate — every form runs the same command as the terminal "
            "(`pipeline.py`, `run_*.py`); jobs wait in the queue panel.",
            elem_id="rav-header",
        )
        with gr.Row(elem_id="rav-main", equal_height=False):
            with gr.Column(scale=3, min_width=380, elem_id="rav-forms"):
                views: dict[str, FormView] = {}
                with gr.Tabs(elem_id="tabs") as tabs:
                    with gr.Tab("Full pipeline", id="pipeline", elem_id="tab-pipeline"):
                        views["pipeline"] = render_form(ctx.forms["pipeline"], ctx.settings)
                    with gr.Tab("Mask tool", id="mask-tool", elem_id="tab-mask-tool"):
                        tool = build_mask_tool(
                            ctx.forms["pipeline"],
                            ctx.workspace,
                            ctx.settings,
                            ctx.cache,
                            ctx.workspace.runs_dir / "points",
                        )
                    with gr.Tab("Single stages", id="stages", elem_id="tab-stages"):
                        with gr.Tabs(elem_id="stage-tabs") as stage_tabs:
                            for entry in STAGES:
                                with gr.Tab(entry.title, id=entry.name, elem_id=f"tab-{entry.name}"):
                                    views[entry.name] = render_form(ctx.forms[entry.name], ctx.settings)
                    with gr.Tab("Runs", id="runs", elem_id="tab-runs") as runs_tab:
                        listing, listing_outputs = build_runs_tab(
                            ctx.workspace.runs_dir, ctx.queue, ctx.serve, ctx.cache
                        )
                    with gr.Tab("Server settings", id="server", elem_id="tab-server"):
                        gr.Markdown(settings_markdown(ctx), elem_id="server-settings")
            with gr.Column(scale=2, min_width=340, elem_id="queue-panel"):
                panel = queue_panel.build_panel()

        def refresh(job_id: str | None, shown: Any) -> list[Any]:
            return queue_panel.refresh(ctx.queue, ctx.forms, job_id, shown, ctx.serve)

        def open_job(job_id: str | None) -> list[Any]:
            return [job_id, *refresh(job_id, None)]

        job_outputs = [panel.selected, *panel.outputs]
        for view in views.values():
            wire(view, env, open_job, job_outputs)
        pipeline_view = views["pipeline"]
        tool.use.click(
            use_for_generation(tool, pipeline_view, ctx.forms["pipeline"]),
            [
                tool.editor,
                gr.State(False),
                tool.video,
                tool.video_path,
                *tool.frame_options.values(),
                *tool.mask_options.values(),
            ],
            [*pipeline_view.inputs, pipeline_view.sections["mask"]],
        ).then(lambda: gr.Tabs(selected="pipeline"), None, tabs).then(None, js="() => window.scrollTo(0, 0)")

        state = [panel.selected, panel.shown]
        gr.Timer(1.0).tick(refresh, state, panel.outputs, show_progress="hidden", queue=False)
        demo.load(refresh, state, panel.outputs, show_progress="hidden")
        demo.load(listing, None, listing_outputs)
        runs_tab.select(listing, None, listing_outputs)

        def select(evt: gr.EventData) -> list[Any]:
            return open_job(evt.job)

        panel.job_list.click(select, None, job_outputs, show_progress="hidden")
        panel.close.click(lambda: open_job(None), None, job_outputs, show_progress="hidden")

        def act(action: str):
            def handler(job_id: str | None) -> list[Any]:
                job = ctx.queue.get(job_id)
                if job is None:
                    raise gr.Error("open a job first (click it in the list)")
                if action == "cancel":
                    gr.Info(ctx.queue.cancel(job.id))
                elif action == "up":
                    gr.Info(ctx.queue.move(job.id, -1), duration=3)
                elif action == "down":
                    gr.Info(ctx.queue.move(job.id, +1), duration=3)
                elif action == "remove":
                    gr.Info(ctx.queue.remove(job.id))
                    return open_job(None)
                elif action == "rerun":
                    return open_job(resubmit(ctx, job))
                return open_job(job.id)

            return handler

        for action, button in (
            ("cancel", panel.cancel),
            ("up", panel.up),
            ("down", panel.down),
            ("remove", panel.remove),
            ("rerun", panel.rerun),
        ):
            button.click(act(action), panel.selected, job_outputs, show_progress="hidden")

        def cancel_running() -> list[Any]:
            running = next((j for j in ctx.queue.jobs() if j.status == "running"), None)
            if running is not None:
                gr.Info(ctx.queue.cancel(running.id))
            return open_job(running.id if running else None)

        panel.now_cancel.click(cancel_running, None, job_outputs, show_progress="hidden")

        def reuse_mask(job_id: str | None, image: str | None) -> list[Any]:
            job = ctx.queue.get(job_id)
            folder = queue_panel.replace_folder(job) if job is not None and job.status == "done" else None
            if folder is None:
                raise gr.Error("open a finished replace-mode job first: its preprocessing folder holds the mask")
            if not image:
                raise gr.Error("choose the new character image")
            return open_job(generate_with(ctx, job, folder, Path(image)))

        panel.reuse.click(reuse_mask, [panel.selected, panel.reuse_image], job_outputs, show_progress="hidden")

        # "Load settings": the job's values back into its form, and that form's tab on show.
        all_inputs = [c for view in views.values() for c in view.inputs]

        def load_settings(job_id: str | None) -> list[Any]:
            job = ctx.queue.get(job_id)
            if job is None or job.stage not in views:
                raise gr.Error("open a job first (click it in the list)")
            stage = job.stage != "pipeline"
            out: list[Any] = [
                gr.Tabs(selected="stages" if stage else "pipeline"),
                gr.Tabs(selected=job.stage) if stage else gr.skip(),
            ]
            for name, view in views.items():
                out += view.fill(job.values) if name == job.stage else [gr.skip()] * len(view.inputs)
            gr.Info(f"{ctx.forms[job.stage].title}: settings of {job.id} loaded", duration=4)
            return out

        panel.load.click(load_settings, panel.selected, [tabs, stage_tabs, *all_inputs])
    return demo


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
    parser.add_argument(
        "--config",
        default=None,
        help="TOML file with any of these settings (keys = the flag names without --); the command line wins",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only); any other address needs --auth",
    )
    parser.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    parser.add_argument("--share", action="store_true", help="open a public Gradio share link (needs --auth)")
    parser.add_argument(
        "--auth",
        default=None,
        help="user:password required to open the UI (env RAV_UI_AUTH); mandatory with --share or a non-local --host",
    )
    parser.add_argument("--max_jobs", type=int, default=1, help="jobs run at once (default: 1, one GPU job)")
    parser.add_argument(
        "--runs_dir",
        default=config.RUNS.default_value(),
        help=f"where job and run folders go (env {config.RUNS.env}; default: runs)",
    )
    parser.add_argument(
        "--workspace",
        default=".",
        help="the folder the UI may read and write files in, besides "
        "the runs folder and uploads; relative paths in forms start here (default: current folder)",
    )
    parser.add_argument("--max_file_size", default="4gb", help="largest upload (default: 4gb)")
    add_server_flags(parser)
    return parser


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = build_parser()
    first = parser.parse_args(argv)
    if first.config:
        parser.set_defaults(**read_config(first.config, parser))
        return parser.parse_args(argv)
    return first


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
    settings = ServerSettings.from_args(args, base=Path.cwd(), runs_dir=runs)
    forms = all_forms()
    queue = JobQueue(runs, max_jobs=args.max_jobs, guard=job_guard(forms, settings))
    return AppContext(Workspace(root, runs, uploads), settings, queue, cache / "stills", forms)


def main(argv: Sequence[str] | None = None) -> int:
    # gradio 6.17 touches a renamed starlette constant on every request; the warning says nothing about us.
    warnings.filterwarnings("ignore", message=".*HTTP_422_UNPROCESSABLE_ENTITY.*")

    def body() -> None:
        args = parse_args(argv)
        auth = parse_auth(args.auth or os.environ.get("RAV_UI_AUTH"))
        if (args.share or args.host not in LOCAL_HOSTS) and auth is None:
            exposed = "--share" if args.share else f"--host {args.host}"
            raise UserError(
                f"{exposed} makes the UI reachable from other machines; add --auth user:password (or set RAV_UI_AUTH)"
            )
        ctx = make_context(args)
        demo = build_app(ctx)
        print(
            f"[rav-ui] workspace {ctx.workspace.root}, runs {ctx.workspace.runs_dir}, max_jobs {args.max_jobs}",
            flush=True,
        )
        try:
            demo.queue(default_concurrency_limit=8).launch(
                server_name=args.host,
                server_port=args.port,
                share=args.share,
                auth=auth,
                allowed_paths=[],
                max_file_size=args.max_file_size,
                show_error=True,
                ssr_mode=False,
                pwa=False,
                mcp_server=False,
                enable_monitoring=False,
                footer_links=[],
                theme=gr.themes.Default(font=SYSTEM_FONTS),
                css=CSS,
            )
        finally:
            ctx.queue.close()

    return report_errors(body)


if __name__ == "__main__":
    sys.exit(main())
