"""What a running tool shows on our console. The full output always goes to the stage log; on a terminal
the console gets one compact line updated in place (`[generate] 0:42 45% 9/20 ETA 0:12 | last line`),
and on failure the last lines of the output. When stdout is not a terminal (the Web UI reads it into its
live log, CI, `| tee`), every line is passed through as before. RAV_CONSOLE=full passes every line through
on a terminal too."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterable
from typing import TextIO

from .progress import Progress, parse_progress

MODE_ENV = "RAV_CONSOLE"
FAILURE_LINES = 15
REDRAW_SECONDS = 0.1
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f]")


def clock(seconds: float) -> str:
    """h:mm:ss, or m:ss under an hour."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def clean(line: str) -> str:
    """A line as one plain row: no colours, cursor moves or line ends."""
    return _CONTROL.sub("", line).strip()


def settled_lines(lines: Iterable[str]) -> list[str]:
    """The lines a terminal would have left on screen: a '\\r' redraw is replaced by the next line, so of a
    progress bar only its last state remains. Empty lines are dropped."""
    kept: list[str] = []
    overwritable = False  # the last kept line ended with '\r': the next text replaces it
    for line in lines:
        text = clean(line)
        if text:
            if overwritable:
                kept.pop()
            kept.append(text)
            overwritable = line.endswith("\r")
        elif line.endswith("\n"):
            overwritable = False
    return kept


class ToolConsole:
    """Silent: output only to the log (echo=None)."""

    def header(self, text: str) -> None:
        pass

    def line(self, text: str) -> None:
        pass

    def tick(self) -> None:
        pass

    def finished(self, *, ok: bool, seconds: float, tail: Iterable[str]) -> None:
        pass

    def stopped(self) -> None:
        pass


class FullConsole(ToolConsole):
    """Every line as the tool printed it, '\\r' redraws included (the Web UI collapses them)."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def header(self, text: str) -> None:
        self._write(text)

    def line(self, text: str) -> None:
        self._write(text)


class CompactConsole(ToolConsole):
    """One status line per running tool, redrawn in place on a terminal."""

    def __init__(self, stream: TextIO, label: str, tag: str):
        self.stream, self.label, self.tag = stream, label, tag
        self.started = time.monotonic()
        self.progress: Progress | None = None
        self.last = ""
        self.drawn_at = 0.0
        self.shown = False

    def line(self, text: str) -> None:
        if text.startswith("[rav"):
            return
        progress = parse_progress(text)
        if progress is not None:
            self.progress = progress
        elif clean(text):
            self.last = " ".join(clean(text).split())  # ffmpeg pads its progress fields with runs of spaces
        if time.monotonic() - self.drawn_at >= REDRAW_SECONDS:
            self._draw()

    def tick(self) -> None:
        if time.monotonic() - self.drawn_at >= 1.0:
            self._draw()

    def status(self) -> str:
        parts = [f"[{self.tag}]", clock(time.monotonic() - self.started)]
        if self.progress is not None and self.progress.total:
            parts.append(f"{self.progress.fraction:.0%} {self.progress.done}/{self.progress.total}")
            if self.progress.eta_s is not None:
                parts.append(f"ETA {clock(self.progress.eta_s)}")
        text = " ".join(parts)
        return f"{text} | {self.last}" if self.last else text

    def _width(self) -> int:
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            columns = 0
        return columns or shutil.get_terminal_size().columns  # 0: a terminal that does not say its size

    def _draw(self) -> None:
        self.stream.write("\r" + self.status()[: max(20, self._width() - 1)] + "\x1b[K")
        self.stream.flush()
        self.drawn_at, self.shown = time.monotonic(), True

    def _clear(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.shown = False

    def finished(self, *, ok: bool, seconds: float, tail: Iterable[str]) -> None:
        self._clear()
        if ok:
            self.stream.write(f"[rav] {self.label}: done in {clock(seconds)}\n")
        else:
            lines = [line for line in settled_lines(tail) if not line.startswith("[rav]")][-FAILURE_LINES:]
            self.stream.write(f"[rav] {self.label}: failed after {clock(seconds)}; its last lines:\n")
            self.stream.writelines(f"    {line}\n" for line in lines)
        self.stream.flush()

    def stopped(self) -> None:
        self._clear()
        self.stream.write(f"[rav] {self.label}: stopped\n")
        self.stream.flush()


def tool_console(stream: TextIO | None, label: str, tag: str | None = None) -> ToolConsole:
    """The console for one tool run: silent without a stream, compact on a terminal, full otherwise. `tag`
    (e.g. the stage name) starts the compact line; `label` names the step in the closing line."""
    if stream is None:
        return ToolConsole()
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    if tty and os.environ.get(MODE_ENV, "").lower() != "full":
        return CompactConsole(stream, label, tag or label)
    return FullConsole(stream)
