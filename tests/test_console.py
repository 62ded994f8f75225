"""The console while a tool runs: on a terminal one progress line redrawn in place (full output in the log
only) and the last lines on failure; off a terminal (the Web UI's live log, CI) every line as before."""

from __future__ import annotations

import io
import os
import pty
import sys
import threading

import pytest

from replace_actor_video.core.console import settled_lines
from replace_actor_video.core.errors import StageFailed
from replace_actor_video.core.process import run_process

FFMPEG_ENCODE = ["ffmpeg", "-y", "-f", "lavfi", "-i", "testsrc=size=64x64:rate=8", "-t", "2", "-c:v", "libx264"]
TQDM = (
    "import sys, time\n"
    "print('loading weights', flush=True)\n"
    "for i in range(1, 5):\n"
    "    sys.stdout.write(f'\\r{i*25}%|##| {i}/4 [00:0{i}<00:0{4-i}, 1.0it/s]')\n"
    "    sys.stdout.flush()\n"
    "    time.sleep(0.15)\n"
    "print()\n"
)


class Terminal:
    """A pseudo-terminal: what is written to `stream` is what a user would see (read back from the master)."""

    def __init__(self):
        master, slave = pty.openpty()
        self.stream = open(slave, "w", encoding="utf-8", closefd=True)  # noqa: SIM115 (closed in text())
        self._master, self._chunks = master, []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        while True:
            try:
                chunk = os.read(self._master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self._chunks.append(chunk)

    def text(self) -> str:
        self.stream.close()
        self._reader.join(timeout=10)
        os.close(self._master)
        return b"".join(self._chunks).decode("utf-8", "replace")


def test_a_terminal_sees_one_line_redrawn_and_the_log_gets_everything(tmp_path):
    term = Terminal()
    run_process(
        [*FFMPEG_ENCODE, str(tmp_path / "out.mp4")], log_path=tmp_path / "x.log", label="encode", echo=term.stream
    )
    shown = term.text()
    log = (tmp_path / "x.log").read_text()
    assert "ffmpeg version" in log and "Stream mapping" in log and "frame=" in log
    assert shown.count("\n") == 1, "only the closing line may end a line: the rest was drawn over in place"
    assert "\r[encode] 0:0" in shown and "\x1b[K" in shown
    visible = shown.split("\r")[-2]  # the screen after the last redraw ("...done in 0:01", then "\r\n")
    assert visible.startswith("\x1b[K[rav] encode: done in 0:0")


def test_progress_is_shown_as_percent_count_and_eta(tmp_path):
    term = Terminal()
    run_process([sys.executable, "-c", TQDM], log_path=tmp_path / "x.log", label="generate", echo=term.stream)
    shown = term.text()
    assert "[generate] 0:0" in shown and "/4 ETA 0:0" in shown
    assert "loading weights" in shown  # the last meaningful line rides along


def test_a_failure_on_a_terminal_shows_the_last_lines(tmp_path):
    term = Terminal()
    with pytest.raises(StageFailed, match="No space left on device"):
        run_process(
            [*FFMPEG_ENCODE, "-f", "mp4", "/dev/full"], log_path=tmp_path / "x.log", label="encode", echo=term.stream
        )
    shown = term.text()
    assert "[rav] encode: failed after" in shown
    tail = shown[shown.index("failed after") :]
    assert "No space left on device" in tail and "Conversion failed!" in tail


def test_off_a_terminal_every_line_is_passed_through(tmp_path):
    """The Web UI reads the stage CLI's stdout into its live log and parses the tqdm lines from it."""
    out = io.StringIO()
    run_process([sys.executable, "-c", TQDM], log_path=tmp_path / "x.log", label="generate", echo=out)
    text = out.getvalue()
    assert text.startswith("[rav] generate: ") and "loading weights\n" in text
    assert "\r100%|##| 4/4 [00:04<00:00, 1.0it/s]" in text


def test_rav_console_full_passes_everything_to_a_terminal(tmp_path, monkeypatch):
    monkeypatch.setenv("RAV_CONSOLE", "full")
    term = Terminal()
    run_process([sys.executable, "-c", TQDM], log_path=tmp_path / "x.log", label="generate", echo=term.stream)
    assert "loading weights" in term.text()


def test_settled_lines_keep_the_last_state_of_a_redrawn_bar():
    lines = [
        "banner\n",
        "\r",
        " 10%|#| 1/10\r",
        " 50%|#| 5/10\r",
        "100%|#| 10/10\n",
        "\x1b[31mError: x\x1b[0m\n",
        "frame=1\r",
        "frame=2\r",
        "\n",
        "end",
    ]
    assert settled_lines(lines) == ["banner", "100%|#| 10/10", "Error: x", "frame=2", "end"]
