"""A job in a few words, for the queue list: its input, its mode, its size, the start of its prompt, read from
the values it was submitted with and described by the form's option specs. No gradio."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from ..core.options import format_value
from .commands import Form, is_media
from .jobs import Job

PROMPT_CHARS = 40


@dataclass(frozen=True)
class Summary:
    input: str  # file name of the first media input
    mode: str  # the words of the form's switches, e.g. "Replace"
    resolution: str
    prompt: str


def summarize(job: Job, form: Form | None) -> Summary:
    values = job.values or {}
    fields = form.fields if form else ()
    media = next(
        (values[s.name] for s in fields if is_media(s) and s.meta.widget == "video" and values.get(s.name)), None
    )
    modes = []
    for spec in fields:
        if spec.meta.switch:
            on = values.get(spec.name, form.default(spec))
            modes.append(spec.meta.switch[bool(on)] if isinstance(on, bool) else str(on))
    resolution = values.get("resolution")
    prompt = str(values.get("prompt") or "").strip().replace("\n", " ")
    if len(prompt) > PROMPT_CHARS:
        prompt = prompt[: PROMPT_CHARS - 1] + "…"
    return Summary(
        Path(str(media)).name if media else "",
        " ".join(dict.fromkeys(modes)),
        format_value(resolution) if isinstance(resolution, (tuple, list)) else str(resolution or ""),
        prompt,
    )


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    return (
        f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
        if seconds >= 3600
        else f"{seconds // 60}:{seconds % 60:02d}"
    )


def elapsed(start: str | None, end: str | None) -> float | None:
    if not start:
        return None
    t0 = dt.datetime.fromisoformat(start)
    t1 = dt.datetime.fromisoformat(end) if end else dt.datetime.now().astimezone()
    return (t1 - t0).total_seconds()
