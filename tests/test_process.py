"""The process runner: output to console and log, progress, loud failures naming the real cause, and no
process of the child tree left behind: on Ctrl-C, SIGTERM, SIGHUP, SIGKILL of the runner (also when it runs
the child from a worker thread), or when the child exits and leaves a grandchild holding the output pipe."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from conftest import wait_gone

from replace_actor_video.core.causes import last_error
from replace_actor_video.core.errors import Cancelled, StageFailed
from replace_actor_video.core.process import run_process
from replace_actor_video.core.progress import parse_progress

REPO = Path(__file__).resolve().parents[1]


def test_streams_logs_and_reports_progress(tmp_path):
    child = (
        "import sys\nfor i in range(1, 5):\n"
        "    sys.stdout.write(f'\\r{i*25}%|##| {i}/4 [00:0{i}<00:0{4-i}, 1.0it/s]')\nprint()\n"
    )
    seen = []
    run_process(
        [sys.executable, "-c", child], log_path=tmp_path / "x.log", label="demo", on_progress=seen.append, echo=None
    )
    assert [(p.done, p.total) for p in seen] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert seen[0].eta_s == 3.0
    log = (tmp_path / "x.log").read_text()
    assert "4/4" in log and "exit code 0" in log


def test_non_zero_exit_fails_with_the_last_error(tmp_path):
    with pytest.raises(StageFailed, match=r"exit code 3 \(last error: ValueError: boom\)"):
        run_process(
            [sys.executable, "-c", "import sys; print('ValueError: boom'); sys.exit(3)"],
            log_path=tmp_path / "x.log",
            label="demo",
            echo=None,
        )


def test_exit_zero_without_expected_output_fails(tmp_path):
    with pytest.raises(StageFailed, match="exited 0 but did not write"):
        run_process(
            [sys.executable, "-c", "print('saved?')"],
            log_path=tmp_path / "x.log",
            label="demo",
            expected_outputs=[tmp_path / "out.mp4"],
            echo=None,
        )


def test_missing_program_is_a_clear_failure(tmp_path):
    with pytest.raises(StageFailed, match="cannot start"):
        run_process(["/nonexistent/tool"], log_path=tmp_path / "x.log", label="demo", echo=None)


def test_parse_progress_ignores_other_lines():
    assert parse_progress("loading model weights") is None
    assert parse_progress("[rav] step 2/5: generate").done == 2


# A runner (our code) whose child starts two grandchildren, one of which leaves the process group: every
# one of them must be gone after the runner is interrupted.
CHILD = """
import os, subprocess, sys, time
a = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
b = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
open(sys.argv[1], "w").write(f"{os.getpid()} {a.pid} {b.pid}")
time.sleep(600)
"""
RUNNER = """
import sys, threading
sys.path.insert(0, sys.argv[1])
from replace_actor_video.core.cli import report_errors
from replace_actor_video.core.process import run_process
child, pids, log, where = sys.argv[2:6]
run = lambda: run_process([sys.executable, child, pids], log_path=log, label="tree")
if where == "thread":  # as the Web UI and the dataset builder do
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join()
else:
    sys.exit(report_errors(run))
"""


def start_tree(tmp_path: Path, where: str = "main") -> tuple[subprocess.Popen, list[int]]:
    """A runner whose child has two grandchildren (one in a session of its own); returns the runner and the
    PIDs of the whole tree below it (the supervisor included)."""
    pids_file = tmp_path / "pids"
    child = tmp_path / "child.py"
    child.write_text(CHILD)
    runner = subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(REPO), str(child), str(pids_file), str(tmp_path / "tree.log"), where],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (pids_file.exists() and len(pids_file.read_text().split()) == 3):
        assert time.monotonic() < deadline, "child tree did not start"
        time.sleep(0.05)
    tree = [p.pid for p in psutil.Process(runner.pid).children(recursive=True)]
    pids = [int(p) for p in pids_file.read_text().split()]
    assert set(pids) <= set(tree) and all(psutil.pid_exists(p) for p in pids)
    return runner, tree


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_interrupt_ends_the_whole_child_tree(tmp_path, sig):
    runner, tree = start_tree(tmp_path)
    os.kill(runner.pid, sig)
    _, err = runner.communicate(timeout=60)
    assert runner.returncode == 130, err
    assert "cancelled" in err and "tree was ended" in err
    wait_gone(tree, seconds=15)


@pytest.mark.parametrize("where", ["main", "thread"])
def test_sigkill_of_the_runner_leaves_no_process_of_its_tree(tmp_path, where):
    """kill -9 gives the runner no chance to clean up: the supervisor sees its lifeline pipe close and ends the
    tree, grandchildren in other sessions included. From a worker thread too (PR_SET_PDEATHSIG would fire
    on that thread's exit, not the process's)."""
    runner, tree = start_tree(tmp_path, where)
    runner.kill()
    runner.communicate(timeout=60)
    wait_gone(tree, seconds=5)


GRANDCHILD_KEEPS_PIPE = """
import subprocess, sys
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])  # inherits our stdout
open(sys.argv[1], "w").write(str(grandchild.pid))
print("child done", flush=True)
"""


def test_a_grandchild_holding_the_output_pipe_does_not_hang_the_runner(tmp_path):
    """Bounded: the runner returns although a grandchild still holds the pipe when the child exits; that
    orphan is ended (it would hold the GPU) and the log says so."""
    pid_file = tmp_path / "grandchild"
    result = {}

    def run():
        result["r"] = run_process(
            [sys.executable, "-c", GRANDCHILD_KEEPS_PIPE, str(pid_file)],
            log_path=tmp_path / "x.log",
            label="demo",
            echo=None,
        )

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=90)
    assert not worker.is_alive(), "the runner hangs on a pipe held by a grandchild"
    assert "r" in result
    wait_gone([int(pid_file.read_text())], seconds=5)
    log = (tmp_path / "x.log").read_text()
    assert "child done" in log and "left 1 process(es) running" in log


def test_a_cancel_from_another_thread_ends_the_tree(tmp_path):
    cancel = threading.Event()
    errors = []
    child = tmp_path / "child.py"
    child.write_text(CHILD)
    pids_file = tmp_path / "pids"

    def run():
        try:
            run_process(
                [sys.executable, str(child), str(pids_file)],
                log_path=tmp_path / "x.log",
                label="demo",
                echo=None,
                cancel=cancel,
            )
        except Cancelled as exc:
            errors.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    deadline = time.monotonic() + 60
    while not (pids_file.exists() and len(pids_file.read_text().split()) == 3):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    cancel.set()
    worker.join(timeout=60)
    assert errors and "cancel requested" in str(errors[0])
    wait_gone([int(p) for p in pids_file.read_text().split()], seconds=15)


def test_a_signal_death_is_named_in_the_failure_line(tmp_path):
    with pytest.raises(StageFailed, match=r"demo was ended by a signal \(last error: .*ended by signal SIGKILL"):
        run_process(
            [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"],
            log_path=tmp_path / "x.log",
            label="demo",
            echo=None,
        )


def test_disk_full_is_the_named_cause_not_ffmpegs_last_line(tmp_path):
    """Real ffmpeg writing to /dev/full (every write fails with ENOSPC) ends with "Conversion failed!"."""
    argv = [
        "ffmpeg",
        "-hide_banner",
        "-y",
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=64x64:rate=8",
        "-t",
        "1",
        "-c:v",
        "libx264",
        "-f",
        "mp4",
        "/dev/full",
    ]
    with pytest.raises(StageFailed) as failed:
        run_process(argv, log_path=tmp_path / "x.log", label="encode", echo=None)
    assert "Conversion failed!" in (tmp_path / "x.log").read_text()
    message = str(failed.value)
    assert "No space left on device" in message and "Conversion failed" not in message and "\n" not in message


@pytest.mark.parametrize(
    "lines, cause",
    [
        (
            [
                "Traceback (most recent call last):",
                "ValueError: bad frame count",
                "[rank0]: error_file: none",
                "torch.distributed.elastic.multiprocessing.errors.ChildFailedError:",
            ],
            "ValueError: bad frame count",
        ),
        (
            [
                "[rank0]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
                "ERROR:torch.distributed.elastic.multiprocessing.api:failed (exitcode: 1)",
            ],
            "CUDA out of memory",
        ),
        (
            ["OSError: [Errno 28] No space left on device: 'x.mp4'", "RuntimeError: save failed"],
            "No space left on device",
        ),
        (
            ["frame=  10 fps=0.0\r", "frame=  20 fps=0.0\r", "Error while decoding stream #0:0\n"],
            "Error while decoding stream",
        ),
        (["all fine\n"], ""),
    ],
)
def test_the_failure_line_picks_the_real_cause(lines, cause):
    picked = last_error(lines)
    assert cause in picked if cause else picked == ""


def test_a_log_on_a_full_disk_neither_blocks_the_program_nor_hides_its_error(tmp_path):
    """/dev/full: every write fails with ENOSPC. The output is still drained (100 kB here, more than a pipe
    holds), the run's result stands, and a failure still quotes the program's own last error."""
    echo = io.StringIO()
    run_process([sys.executable, "-c", "print('x' * 100_000)"], log_path=Path("/dev/full"), label="demo", echo=echo)
    assert "[rav] warning: demo: the log could not be written (No space left on device)" in echo.getvalue()
    with pytest.raises(StageFailed, match=r"\(last error: ValueError: boom\); the log could not be written"):
        run_process(
            [sys.executable, "-c", "import sys; print('ValueError: boom'); sys.exit(3)"],
            log_path=Path("/dev/full"),
            label="demo",
            echo=None,
        )
