"""The process runner: output to console and log, progress, loud failures, and the whole child process
tree ended on Ctrl-C and SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from replace_actor_video.core.errors import StageFailed
from replace_actor_video.core.process import run_process
from replace_actor_video.core.progress import parse_progress

REPO = Path(__file__).resolve().parents[1]


def test_streams_logs_and_reports_progress(tmp_path):
    child = "import sys\nfor i in range(1, 5):\n    sys.stdout.write(f'\\r{i*25}%|##| {i}/4 [00:0{i}<00:0{4-i}, 1.0it/s]')\nprint()\n"
    seen = []
    run_process([sys.executable, "-c", child], log_path=tmp_path / "x.log", label="demo", on_progress=seen.append,
                echo=None)
    assert [(p.done, p.total) for p in seen] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert seen[0].eta_s == 3.0
    log = (tmp_path / "x.log").read_text()
    assert "4/4" in log and "exit code 0" in log


def test_non_zero_exit_fails_with_the_last_error(tmp_path):
    with pytest.raises(StageFailed, match=r"exit code 3 \(last error: ValueError: boom\)"):
        run_process([sys.executable, "-c", "import sys; print('ValueError: boom'); sys.exit(3)"],
                    log_path=tmp_path / "x.log", label="demo", echo=None)


def test_exit_zero_without_expected_output_fails(tmp_path):
    with pytest.raises(StageFailed, match="exited 0 but did not write"):
        run_process([sys.executable, "-c", "print('saved?')"], log_path=tmp_path / "x.log", label="demo",
                    expected_outputs=[tmp_path / "out.mp4"], echo=None)


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
import sys
sys.path.insert(0, sys.argv[1])
from replace_actor_video.core.cli import report_errors
from replace_actor_video.core.process import run_process
child, pids, log = sys.argv[2:5]
sys.exit(report_errors(lambda: run_process([sys.executable, child, pids], log_path=log, label="tree")))
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_ends_the_whole_child_tree(tmp_path, sig):
    pids_file = tmp_path / "pids"
    child = tmp_path / "child.py"
    child.write_text(CHILD)
    runner = subprocess.Popen([sys.executable, "-c", RUNNER, str(REPO), str(child), str(pids_file),
                               str(tmp_path / "tree.log")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while not (pids_file.exists() and len(pids_file.read_text().split()) == 3):
        assert time.time() < deadline, "child tree did not start"
        time.sleep(0.1)
    pids = [int(p) for p in pids_file.read_text().split()]
    assert all(psutil.pid_exists(p) for p in pids)
    os.kill(runner.pid, sig)
    _, err = runner.communicate(timeout=60)
    assert runner.returncode == 130, err
    assert "cancelled" in err
    gone_by = time.time() + 15
    while any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids):
        assert time.time() < gone_by, f"still alive: {[p for p in pids if psutil.pid_exists(p)]}"
        time.sleep(0.1)
