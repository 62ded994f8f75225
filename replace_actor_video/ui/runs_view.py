"""The Runs tab: every run folder under the runs folder (UI jobs and runs started from a terminal), with its
inputs, preprocessing previews, result, downloads, settings and log (the model is ui/runs.py)."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gradio as gr

from ..core.errors import UserError
from .jobs import JobQueue
from .previews import mask_overlay
from .runs import RunEntry, kind_of, list_runs


def html_table(headers: Sequence[str], rows: Sequence[Sequence[str]], empty: str) -> str:
    """A small static table (a gr.Dataframe virtualises its rows, which a log-like list does not need)."""
    if not rows:
        return f"<p><em>{html.escape(empty)}</em></p>"
    head = "".join(f"<th style='text-align:left;padding:2px 8px'>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td style='padding:2px 8px'>{html.escape(str(c))}</td>" for c in row) + "</tr>"
        for row in rows
    )
    return (
        f"<table style='width:100%;border-collapse:collapse'><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


def run_view(entry: RunEntry | None, serve: Callable[[Path | None], str | None], cache: Path) -> list[Any]:
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
                overlay = mask_overlay(folder / "src_bg.mp4", folder / "src_mask.mp4", 0, cache)
            except UserError:
                overlay = None
    result = next((p for p in reversed(entry.result_files()) if kind_of(p) == "video"), None)
    downloads = [f for f in (serve(p) for p in entry.downloads()) if f]
    origin = "" if entry.job else " · started from a terminal"
    lines = [f"**{entry.name}** · {entry.stage} · **{entry.status}**{origin}"]
    if entry.job and entry.job.message:
        lines.append(f"> {entry.job.message}")
    for name, record in entry.stage_records().items():
        took = f" in {record['seconds']:.0f} s" if record.get("seconds") is not None else ""
        error = f" — {record['error']}" if record.get("error") else ""
        lines.append(f"- {name}: {record.get('status', '?')}{took}{error}")
    hidden = [str(p) for p in entry.result_files() if serve(p) is None]
    if hidden:
        lines.append(f"Not shown (outside the workspace): {', '.join(hidden)}")
    return [
        "\n\n".join(lines),
        serve(video),
        serve(image),
        serve(pose),
        serve(face),
        serve(overlay),
        serve(result),
        downloads or None,
        entry.settings(),
        entry.log_tail(),
    ]


def runs_list(runs_dir: Path, queue: JobQueue) -> list[Any]:
    entries = list_runs(runs_dir, {j.id: j for j in queue.jobs(hidden=True)})
    rows = [[e.name, e.stage, e.status, e.created.replace("T", " ")[:19]] for e in entries]
    table = html_table(["run", "stage", "status", "created"], rows, f"No runs in {runs_dir} yet.")
    return [f"<div style='max-height:260px;overflow:auto'>{table}</div>", gr.update(choices=[e.name for e in entries])]


def build_runs_tab(
    runs_dir: Path, queue: JobQueue, serve: Callable[[Path | None], str | None], cache: Path
) -> tuple[Callable[[], list[Any]], list[Any]]:
    """The tab's components; returns (list refresher, its outputs) for the app to call when the tab opens."""
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
        entries = list_runs(runs_dir, {j.id: j for j in queue.jobs(hidden=True)})
        return run_view(next((e for e in entries if e.name == name), None), serve, cache)

    def listing() -> list[Any]:
        return runs_list(runs_dir, queue)

    runs_select.change(show, runs_select, detail)
    refresh.click(listing, None, [runs_table, runs_select])
    return listing, [runs_table, runs_select]
