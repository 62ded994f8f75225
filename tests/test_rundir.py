"""Run directories: one run at a time (the lock and who holds it), manifest saves merged per stage and written
atomically (disk full leaves the old manifest and no temp file), and what a killed run left behind (temp
files of dead PIDs, still-running processes) cleared at the next start."""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import wait_gone

from replace_actor_video.core import atomic, childrecords
from replace_actor_video.core.cli import report_errors
from replace_actor_video.core.errors import UserError
from replace_actor_video.core.proctree import identity
from replace_actor_video.core.rundir import MANIFEST, RunContext

REPO = Path(__file__).resolve().parents[1]


def dead_pid() -> int:
    """The PID of a process that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not psutil.pid_exists(proc.pid)
    return proc.pid


def sleeper(*marker: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", *marker])


def test_a_second_open_is_refused_naming_the_holder_and_the_lock_is_freed_on_close(tmp_path):
    run_dir = tmp_path / "run"
    first = RunContext.open(run_dir, echo=None)
    with pytest.raises(UserError, match=rf"in use: PID {os.getpid()} is running in it since .*pytest"):
        RunContext.open(run_dir, echo=None)
    first.close()
    with RunContext.open(run_dir, echo=None) as again:
        assert again.run_dir == run_dir.resolve()


def test_another_process_holding_the_lock_is_named_and_a_killed_holder_frees_it(tmp_path):
    run_dir = tmp_path / "run"
    script = tmp_path / "holder.py"
    script.write_text(
        "import sys, time\nfrom replace_actor_video.core.rundir import RunContext\n"
        "ctx = RunContext.open(sys.argv[1], echo=None)\nprint('locked', flush=True)\ntime.sleep(600)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, str(script), str(run_dir), "holder-marker"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(UserError) as refused:
            RunContext.open(run_dir, echo=None)
        message = str(refused.value)
        assert f"PID {holder.pid}" in message and "holder-marker" in message and "\n" not in message
    finally:
        holder.kill()
        holder.wait()
    RunContext.open(run_dir, echo=None).close()  # the kernel dropped the lock of the killed holder


def test_a_refused_or_unused_run_directory_it_created_is_removed_again(tmp_path):
    RunContext.open(tmp_path / "runs" / "new", echo=None).close()
    assert not (tmp_path / "runs").exists()
    kept = RunContext.open(tmp_path / "used", echo=None)
    kept.begin_stage("x", options={}, inputs={}, upstream={}, fp="f")
    kept.close()
    assert (tmp_path / "used" / MANIFEST).is_file()


def test_a_dry_run_creates_nothing_and_takes_no_lock(tmp_path):
    holder = RunContext.open(tmp_path / "run", echo=None)
    dry = RunContext.open(tmp_path / "run", dry_run=True, echo=None)
    dry.save()
    assert not (tmp_path / "run" / MANIFEST).exists()
    holder.close()
    RunContext.open(tmp_path / "other", dry_run=True, echo=None)
    assert not (tmp_path / "other").exists()


def test_saves_merge_per_stage_into_the_file_on_disk(tmp_path):
    """A record another writer put in the manifest meanwhile survives our next save (no rewrite from a stale
    copy); our own changes, top-level and per stage, are applied."""
    ctx = RunContext.open(tmp_path / "run", echo=None)
    ctx.begin_stage("preprocess", options={"a": 1}, inputs={}, upstream={}, fp="p")
    on_disk = json.loads((ctx.run_dir / MANIFEST).read_text())
    on_disk["stages"]["refine"] = {"status": "done", "fingerprint": "r"}
    on_disk["note"] = "written by someone else"
    (ctx.run_dir / MANIFEST).write_text(json.dumps(on_disk))

    ctx.end_stage("preprocess", status="done")
    ctx.manifest["result"] = "out.mp4"
    ctx.save()
    saved = json.loads((ctx.run_dir / MANIFEST).read_text())
    assert saved["stages"]["refine"] == {"status": "done", "fingerprint": "r"}
    assert saved["note"] == "written by someone else"
    assert saved["stages"]["preprocess"]["status"] == "done" and saved["result"] == "out.mp4"
    assert ctx.manifest["stages"]["refine"]["status"] == "done"  # our copy is the merged one


class _DiskFullAfter:
    """A file whose write() stores part of the text, then fails as a full disk does."""

    def __init__(self, fh):
        self.fh = fh

    def write(self, text):
        self.fh.write(text[: len(text) // 2])
        self.fh.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.fh.close()


def test_disk_full_while_saving_the_manifest_keeps_the_old_one_and_leaves_no_temp_file(tmp_path, monkeypatch):
    ctx = RunContext.open(tmp_path / "run", echo=None)
    ctx.begin_stage("preprocess", options={}, inputs={}, upstream={}, fp="p")
    before = (ctx.run_dir / MANIFEST).read_text()
    monkeypatch.setattr(atomic, "open", lambda *a, **k: _DiskFullAfter(open(*a, **k)), raising=False)  # noqa: SIM115
    with pytest.raises(UserError, match=r"cannot write .*manifest.json: No space left on device; free some space"):
        ctx.end_stage("preprocess", status="done")
    assert (ctx.run_dir / MANIFEST).read_text() == before
    assert [p.name for p in ctx.run_dir.iterdir() if "partial" in p.name] == []


# A real kernel refusal (RLIMIT_FSIZE: "File too large") while a stage CLI's manifest grows: one line, exit 2.
FSIZE_RUNNER = """
import resource, signal, sys
from replace_actor_video.core.cli import report_errors
from replace_actor_video.core.rundir import RunContext
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
ctx = RunContext.open(sys.argv[1], echo=None)
ctx.begin_stage("small", options={}, inputs={}, upstream={}, fp="s")
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
big = {"option_%d" % i: "x" * 100 for i in range(100)}
sys.exit(report_errors(lambda: ctx.begin_stage("big", options=big, inputs={}, upstream={}, fp="b")))
"""


def test_a_manifest_write_the_kernel_refuses_is_one_line_exit_2(tmp_path):
    run_dir = tmp_path / "run"
    res = subprocess.run(
        [sys.executable, "-c", FSIZE_RUNNER, str(run_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert "File too large" in res.stderr and "manifest.json" in res.stderr
    manifest = json.loads((run_dir / MANIFEST).read_text())
    assert list(manifest["stages"]) == ["small"]
    assert not [p for p in run_dir.rglob("*") if "partial" in p.name]


def test_temp_files_of_dead_writers_are_removed_at_the_next_start_and_live_ones_kept(tmp_path):
    run_dir = tmp_path / "run"
    dead = dead_pid()
    live_writer = sleeper()
    try:
        gone = [
            run_dir / f".result.partial-{dead}.mp4",
            run_dir / "work" / "generate" / f".raw.partial-{dead}.mp4",
            run_dir / f".{MANIFEST}.partial-{dead}",
            run_dir / f".pp.old-{dead}",
        ]
        folder = run_dir / f".pp.partial-{dead}"
        kept = [
            run_dir / f".job.json.partial-{live_writer.pid}",
            run_dir / "notes.partial-1.txt",
            run_dir / "frames" / "000001.png",
        ]
        for path in [*gone, *kept, folder / "frame.png"]:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x")
        RunContext.open(run_dir, echo=None).close()
        assert [p for p in [*gone, folder] if p.exists()] == []
        assert all(p.exists() for p in kept)
    finally:
        live_writer.kill()
        live_writer.wait()


def test_atomic_outputs_remove_the_temp_versions_a_killed_writer_left(tmp_path):
    dead = dead_pid()
    stale = tmp_path / f".out.partial-{dead}.mp4"
    stale.write_bytes(b"half")
    other = tmp_path / f".other.partial-{dead}.mp4"
    other.write_bytes(b"not ours")
    with atomic.atomic_file(tmp_path / "out.mp4") as tmp:
        tmp.write_bytes(b"whole")
    assert (tmp_path / "out.mp4").read_bytes() == b"whole"
    assert not stale.exists() and other.exists()


def _record(run_dir: Path, owner: dict, procs: list[subprocess.Popen]) -> None:
    path = childrecords.records_dir(run_dir) / "1.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    childrecords.write(
        path,
        {
            "owner": owner,
            "supervisor": {"pid": dead_pid(), "started": 0.0},
            "processes": [identity(p.pid) for p in procs],
        },
    )


def test_processes_a_dead_run_left_running_are_ended_at_the_next_start(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    left = [sleeper("left-1"), sleeper("left-2")]
    unrelated = sleeper("unrelated")
    try:
        _record(run_dir / "refine", {"pid": dead_pid(), "started": 0.0}, left)  # nested run dirs count too
        ctx = RunContext.open(run_dir, echo=None)
        wait_gone([p.pid for p in left], seconds=15)
        assert not list(childrecords.records_dir(run_dir / "refine").iterdir())
        assert unrelated.poll() is None
        ctx.close()
    finally:
        for proc in [*left, unrelated]:
            proc.kill()
            proc.wait()


def test_processes_of_a_live_run_are_not_touched_and_the_start_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    owner, worker = sleeper("owner"), sleeper("worker")
    try:
        _record(run_dir, {**identity(owner.pid), "command": ["python", "pipeline.py"]}, [worker])
        with pytest.raises(
            UserError,
            match=rf"PID {owner.pid} \(python pipeline.py\) is still running processes "
            rf"{worker.pid}",
        ):
            RunContext.open(run_dir, echo=None)
        assert worker.poll() is None
    finally:
        for proc in (owner, worker):
            proc.kill()
            proc.wait()
    RunContext.open(run_dir, echo=None).close()  # owner gone, worker gone: nothing left to refuse


def test_a_full_disk_anywhere_in_a_run_is_one_line_exit_2(tmp_path, capsys):
    def body():
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "frames" / "000001.png"))

    assert report_errors(body) == 2
    err = capsys.readouterr().err
    assert (
        err == f"error: No space left on device ({tmp_path}/frames/000001.png); free some disk space and run "
        "again (finished stages are kept)\n"
    )
    with pytest.raises(OSError):  # not the environment: a bug of ours keeps its traceback
        report_errors(lambda: (tmp_path / "missing" / "x").read_text())


STEP_RUNNER = """
import sys
from replace_actor_video.core.rundir import RunContext
ctx = RunContext.open(sys.argv[1], echo=None)
ctx.step("sleepers", [sys.executable, "-c", sys.argv[2], "tree-marker"], stage="demo")
"""
SLEEPERS = (
    "import subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
    "time.sleep(600)\n"
)


def test_a_tree_whose_supervisor_was_killed_too_is_ended_by_the_next_run(tmp_path):
    """The worst case: our process and the supervisor both killed at once. The supervisor's record of the tree
    lets the next run on the directory find the orphans and end them before it starts anything."""
    run_dir = tmp_path / "run"
    runner = subprocess.Popen([sys.executable, "-c", STEP_RUNNER, str(run_dir), SLEEPERS], cwd=REPO)
    records = childrecords.records_dir(run_dir)
    deadline = time.monotonic() + 60
    while True:
        files = list(records.glob("*.json")) if records.is_dir() else []
        record = json.loads(files[0].read_text()) if files else {}
        if len(record.get("processes", [])) == 2:  # the step's program and its child
            break
        assert time.monotonic() < deadline, "no record of the running tree"
        time.sleep(0.05)
    supervisor = record["supervisor"]["pid"]
    tree = [p["pid"] for p in record["processes"]]
    os.kill(supervisor, signal.SIGKILL)
    runner.kill()
    runner.wait()
    time.sleep(0.5)  # a moment in which nothing ends them
    assert all(psutil.pid_exists(p) for p in tree), "orphans expected: nothing was left to end them"
    said = io.StringIO()
    RunContext.open(run_dir, echo=said).close()
    wait_gone(tree, seconds=15)
    assert "[rav] ended 2 process(es) an earlier run on" in said.getvalue()
    assert not list(records.glob("*.json"))


def test_a_file_system_without_locks_runs_unguarded_with_a_warning(tmp_path, monkeypatch):
    from replace_actor_video.core import runlock

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(runlock.fcntl, "flock", no_locks)
    said = io.StringIO()
    with RunContext.open(tmp_path / "run", echo=said) as ctx:
        ctx.begin_stage("x", options={}, inputs={}, upstream={}, fp="f")
    assert "cannot be locked on this file system (No locks available)" in said.getvalue()
    assert (tmp_path / "run" / MANIFEST).is_file()
