"""The queue panel: the running job pinned on top (stage, progress, ETA, a log that follows its newest line
until the user scrolls up), the list of jobs (input, mode, size, prompt, place in the queue; a click opens
one), and the open job: its result inline with downloads, its log, and the actions its state allows."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from .commands import Form
from .jobs import DONE, FINISHED, QUEUED, RUNNING, Job, JobQueue
from .runs import RunEntry, kind_of, manifests_of
from .summary import clock, elapsed, summarize

LOG_LINES = 80
# Follow the newest line while the view is at the bottom; keep the reader's place once they scroll up.
LOG_JS = """
const box = () => element.querySelector('.rav-log');
let follow = true, saved = 0;
element.addEventListener('scroll', (e) => {
  const b = box(); if (!b || e.target !== b) return;
  follow = b.scrollTop + b.clientHeight >= b.scrollHeight - 8; saved = b.scrollTop;
}, true);
const place = () => { const b = box(); if (b) b.scrollTop = follow ? b.scrollHeight : saved; };
watch('value', place);
place();
"""
LIST_JS = """
element.addEventListener('click', (e) => {
  const row = e.target.closest('[data-job]');
  if (row) trigger('click', {job: row.dataset.job});
});
"""


def log_box(elem_id: str, height: int) -> Any:
    return gr.HTML(
        "",
        elem_id=elem_id,
        js_on_load=LOG_JS,
        html_template=f"<pre class='rav-log' style='max-height:{height}px'>${{value}}</pre>",
    )


def log_html(queue: JobQueue, job_id: str | None, lines: int = LOG_LINES) -> str:
    return html.escape(queue.log_tail(job_id, lines)) if job_id else ""


@dataclass
class QueuePanel:
    selected: Any  # gr.State: the open job's id
    now: Any
    now_log: Any
    now_cancel: Any
    job_list: Any
    detail: Any
    status: Any
    result: Any
    downloads: Any
    log: Any
    cancel: Any
    rerun: Any
    load: Any
    up: Any
    down: Any
    remove: Any
    close: Any
    reuse_image: Any
    reuse: Any
    shown: Any  # gr.State: (job id, status) whose result is on show

    @property
    def outputs(self) -> list[Any]:
        """What a refresh updates, in the order `refresh` returns it."""
        return [
            self.now,
            self.now_log,
            self.now_cancel,
            self.job_list,
            self.detail,
            self.status,
            self.result,
            self.downloads,
            self.log,
            self.cancel,
            self.rerun,
            self.load,
            self.up,
            self.down,
            self.remove,
            self.shown,
        ]


def build_panel() -> QueuePanel:
    selected = gr.State(None)
    shown = gr.State(None)
    with gr.Group(elem_id="now-card"):
        now = gr.HTML(elem_id="now-running")
        now_log = log_box("now-log", 150)
        now_cancel = gr.Button("Cancel the running job", size="sm", visible=False, elem_id="now-cancel")
    job_list = gr.HTML(elem_id="job-list", js_on_load=LIST_JS)
    with gr.Column(visible=False, elem_id="job-detail") as detail:
        status = gr.Markdown(elem_id="job-status")
        result = gr.Video(label="Result", interactive=False, visible=False, elem_id="job-result", height=240)
        downloads = gr.File(
            label="Downloads",
            file_count="multiple",
            interactive=False,
            visible=False,
            elem_id="job-downloads",
            height=120,
        )
        log = log_box("job-log", 180)
        with gr.Row(elem_classes="rav-job-actions"):
            cancel = gr.Button("Cancel", size="sm", elem_id="job-cancel", min_width=60)
            up = gr.Button("↑ Up", size="sm", elem_id="job-up", min_width=50)
            down = gr.Button("↓ Down", size="sm", elem_id="job-down", min_width=50)
            rerun = gr.Button("Re-run", size="sm", elem_id="job-rerun", min_width=60)
            load = gr.Button("Load settings", size="sm", elem_id="job-load", min_width=90)
            remove = gr.Button("Remove", size="sm", elem_id="job-remove", min_width=60)
            close = gr.Button("Close", size="sm", elem_id="job-close", min_width=50)
        with gr.Accordion("New character, same mask", open=False, elem_id="job-reuse"):
            gr.Markdown(
                "For a finished replace-mode job: generate again with another character image, reusing this "
                "job's preprocessing (pose, face, background, mask) — no preprocessing, no SAM2."
            )
            reuse_image = gr.Image(
                label="New character image", type="filepath", sources=["upload"], height=140, elem_id="job-reuse-image"
            )
            reuse = gr.Button("Generate with this character", elem_id="job-reuse-run")
    return QueuePanel(
        selected,
        now,
        now_log,
        now_cancel,
        job_list,
        detail,
        status,
        result,
        downloads,
        log,
        cancel,
        rerun,
        load,
        up,
        down,
        remove,
        close,
        reuse_image,
        reuse,
        shown,
    )


def _bar(fraction: float | None, status: str) -> str:
    colour = {"failed": "#d33", "cancelled": "#999", "done": "#2a2"}.get(status, "#2f6fde")
    width = 100 if status == DONE else (fraction or 0) * 100
    return (
        f"<div class='rav-bar'><div data-testid='job-bar' style='background:{colour};width:{width:.1f}%'></div></div>"
    )


def progress_line(queue: JobQueue, job: Job) -> str:
    view = queue.progress(job.id)
    parts = [job.status]
    if view.fraction is not None:
        parts.append(f"{view.fraction:.0%}")
    if view.text:
        parts.append(view.text)
    if job.status == RUNNING and view.eta_s is not None:
        parts.append(f"ETA {clock(view.eta_s)}")
    if job.started:
        parts.append(f"elapsed {clock(elapsed(job.started, job.finished))}")
    return " · ".join(parts)


def _words(job: Job, forms: dict[str, Form]) -> str:
    s = summarize(job, forms.get(job.stage))
    return " · ".join(p for p in (s.input, s.mode, s.resolution, f"“{s.prompt}”" if s.prompt else "") if p)


def now_html(queue: JobQueue, forms: dict[str, Form]) -> tuple[str, Job | None]:
    running = [j for j in queue.jobs() if j.status == RUNNING]
    waiting = len(queue.queued())
    if not running:
        return (f"<div class='rav-now'><b>Nothing running</b> · {waiting} queued</div>", None)
    job = running[0]
    more = f" (+{len(running) - 1} more)" if len(running) > 1 else ""
    view = queue.progress(job.id)
    card = (
        f"<div class='rav-now' data-job='{html.escape(job.id)}'><div><b>Running:</b> {html.escape(job.title)}"
        f"{more} · {html.escape(_words(job, forms))} <small>{html.escape(job.id)}</small></div>"
        f"{_bar(view.fraction, job.status)}<div data-testid='job-progress-text' class='rav-progress'>"
        f"{html.escape(progress_line(queue, job))}</div><div class='rav-queued'>{waiting} queued</div></div>"
    )
    return card, job


def list_html(queue: JobQueue, forms: dict[str, Form], selected: str | None) -> str:
    """Running first, then the queue in the order it will run, then the finished, newest first."""
    jobs = queue.jobs()
    ordered = [j for j in jobs if j.status == RUNNING] + queue.queued() + [j for j in jobs if j.status in FINISHED]
    if not ordered:
        return "<div class='rav-jobs'><em>No jobs yet: fill in a form and press Run.</em></div>"
    rows = []
    for job in ordered:
        position = queue.position(job.id)
        where = f"#{position}" if position else ""
        chosen = " selected" if job.id == selected else ""
        rows.append(
            f"<div class='rav-job {job.status}{chosen}' data-job='{html.escape(job.id)}' role='button' "
            f"tabindex='0'><span class='rav-badge'>{job.status}</span> <span class='rav-pos'>{where}</span> "
            f"<b>{html.escape(job.title)}</b> {html.escape(_words(job, forms))} "
            f"<small>{html.escape(job.id)}</small></div>"
        )
    return f"<div class='rav-jobs'>{''.join(rows)}</div>"


def status_markdown(queue: JobQueue, job: Job) -> str:
    lines = [f"**{job.title}** · `{job.id}` · **{progress_line(queue, job)}**"]
    position = queue.position(job.id)
    if position:
        lines.append(f"Number {position} in the queue.")
    if job.message:
        lines.append(f"> {job.message}")
    lines.append(f"```\n{job.display_command}\n```")
    lines.append(f"Folder: `{job.dir}`")
    return "\n\n".join(lines)


def entry_of(job: Job) -> RunEntry:
    return RunEntry(job.id, job.path, job, manifests_of(job.path, job.run_dir))


def replace_folder(job: Job) -> Path | None:
    """The job's replace-mode preprocessing folder (one with a mask), if it made one."""
    return next((p for p in entry_of(job).preprocess_folders() if (p / "src_mask.mp4").is_file()), None)


def results(job: Job, shown: Callable[[Path | None], str | None]) -> tuple[str | None, list[str]]:
    """The job's result video and its downloadable files (only those the UI may serve)."""
    entry = entry_of(job)
    video = next((p for p in reversed(entry.result_files()) if kind_of(p) == "video"), None)
    files = [f for f in (shown(p) for p in entry.downloads()) if f]
    return shown(video), files


def refresh(
    queue: JobQueue,
    forms: dict[str, Form],
    selected: str | None,
    shown_key: Any,
    serve: Callable[[Path | None], str | None],
) -> list[Any]:
    """Every output of the panel (QueuePanel.outputs order)."""
    card, running = now_html(queue, forms)
    out: list[Any] = [
        card,
        log_html(queue, running.id) if running else "",
        gr.update(visible=running is not None),
        list_html(queue, forms, selected),
    ]
    job = queue.get(selected)
    if job is None or job.hidden:
        # Hide the panel only when it shows: Gradio 6.17 never shows a layout block again that got a
        # visible=False while it was still hidden from the start.
        hide = gr.update(visible=False) if shown_key is not None else gr.skip()
        return out + [hide, "", gr.skip(), gr.skip(), "", *[gr.skip()] * 6, None]
    key = (job.id, job.status)
    if key != shown_key:
        video, files = results(job, serve) if job.status in FINISHED else (None, [])
        media = [gr.update(value=video, visible=video is not None), gr.update(value=files or None, visible=bool(files))]
    else:
        media = [gr.skip(), gr.skip()]
    queued, active = job.status == QUEUED, job.status in (QUEUED, RUNNING)
    buttons = [
        gr.update(interactive=active, variant="stop" if active else "secondary"),
        gr.update(interactive=job.status in FINISHED),
        gr.update(interactive=True),
        gr.update(interactive=queued),
        gr.update(interactive=queued),
        gr.update(interactive=job.status != RUNNING),
    ]
    log = "" if job.status == RUNNING and running is not None and running.id == job.id else log_html(queue, job.id)
    return out + [gr.update(visible=True), status_markdown(queue, job), *media, log, *buttons, key]
