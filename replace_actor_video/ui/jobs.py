"""The UI's job queue: stage CLIs run as detached subprocesses, one job folder each, restart-safe.

A job folder `<runs_dir>/<stamp>-<stage>/` holds `job.json` (what was asked, the command, the state),
`logs/console.log` (everything the CLI printed) and `exit_code` (written by job_runner when the CLI ends).
The stage CLI writes its own run directory (manifest, logs) inside the job folder; the pipeline writes it
into the job folder itself. The UI keeps no state that these files do not hold, so a restarted UI shows the
same history, and a job that was running when the UI stopped is found again, still running or finished.

No gradio here: the queue is tested and usable without it."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from ..core.errors import UserError
from ..core.process import GRACE_SECONDS, format_argv, kill_tree
from ..core.progress import Progress, parse_progress

JOB_FILE = "job.json"
CONSOLE = Path("logs") / "console.log"
EXIT_FILE = "exit_code"
REPO_ROOT = Path(__file__).resolve().parents[2]

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)


def now_iso() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


@dataclass
class Job:
    id: str
    stage: str  # registry name, or "pipeline"
    title: str
    dir: str
    command: list[str]  # the CLI command a user would type (python <script> <args>); argv, never a shell string
    values: dict[str, Any]  # the resolved form values, as JSON
    status: str = QUEUED
    created: str = field(default_factory=now_iso)
    started: str | None = None
    finished: str | None = None
    exit_code: int | None = None
    pid: int | None = None
    pid_started: float | None = None  # psutil create_time: tells our pid from a reused one after a restart
    run_dir: str | None = None  # a run directory outside the job folder (pipeline --run_dir), if asked for
    message: str | None = None
    cancel_requested: bool = False
    order: float = 0.0  # place in the queue (smaller runs first); "move up/down" swaps it with a neighbour
    hidden: bool = False  # removed from the UI's list (the folder and its files stay)
    request: str | None = None  # what the browser sent, as a key: the same submission twice is noticed

    @property
    def path(self) -> Path:
        return Path(self.dir)

    @property
    def console(self) -> Path:
        return self.path / CONSOLE

    @property
    def display_command(self) -> str:
        return format_argv(self.command)

    def save(self) -> None:
        tmp = self.path / f".{JOB_FILE}.partial-{os.getpid()}"
        tmp.write_text(json.dumps(asdict(self), indent=2, ensure_ascii=False))
        os.replace(tmp, self.path / JOB_FILE)

    @classmethod
    def load(cls, folder: Path) -> Job:
        data = json.loads((folder / JOB_FILE).read_text())
        known = {f for f in cls.__dataclass_fields__}
        job = cls(**{k: v for k, v in data.items() if k in known})
        job.dir = str(folder.resolve())  # the runs folder may have moved
        return job


@dataclass
class ProgressView:
    fraction: float | None  # None: nothing parsed yet
    text: str
    eta_s: float | None


class LogFollower:
    """Reads a growing console log and keeps the latest pipeline step and tqdm bar seen in it."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.partial = ""
        self.step: Progress | None = None
        self.bar: Progress | None = None

    def poll(self) -> None:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except OSError:
            return
        self.offset += len(chunk)
        text = self.partial + chunk.decode("utf-8", "replace")
        pieces = text.replace("\r", "\n").split("\n")
        self.partial = pieces.pop()
        for line in pieces:
            self.feed(line)

    def feed(self, line: str) -> None:
        progress = parse_progress(line)
        if progress is None:
            return
        if "[rav] step" in line:
            self.step, self.bar = progress, None  # a new step: the old step's bar is over
        else:
            self.bar = progress

    def view(self) -> ProgressView:
        bar, step = self.bar, self.step
        if step is None and bar is None:
            return ProgressView(None, "", None)
        parts = []
        if step is not None and step.total:
            fraction = (step.done - 1 + (bar.fraction if bar else 0.0)) / step.total
            parts.append(f"step {step.done}/{step.total}: {step.text}")
        else:
            fraction = bar.fraction if bar else 0.0
        if bar is not None:
            parts.append(f"{bar.done}/{bar.total} ({bar.fraction:.0%})")
        return ProgressView(max(0.0, min(1.0, fraction)), " · ".join(parts), bar.eta_s if bar else None)


def read_progress(path: Path, max_bytes: int = 64 * 1024) -> ProgressView:
    """The last progress a finished job's log shows (its tail is enough: bars and steps repeat)."""
    follower = LogFollower(path)
    try:
        follower.offset = max(0, path.stat().st_size - max_bytes)
    except OSError:
        return ProgressView(None, "", None)
    follower.poll()
    follower.feed(follower.partial)
    return follower.view()


def tail_text(path: Path, lines: int = 40, max_bytes: int = 64 * 1024) -> str:
    """The last `lines` lines of a console log, with tqdm's carriage-return redraws collapsed."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            raw = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    shown = []
    for line in raw.split("\n"):
        segments = [s for s in line.split("\r") if s.strip()]
        shown.append(segments[-1] if segments else line.strip("\r"))
    while shown and not shown[-1]:
        shown.pop()
    return "\n".join(shown[-lines:])


_PROBLEM = re.compile(r"(?:^|[\s\]])((?:error|cancelled): .+)$")


def last_problem(path: Path) -> str | None:
    """The one-line 'error: …' or 'cancelled: …' a stage CLI prints on stderr when it stops short (it may
    follow a progress bar's unterminated line)."""
    for line in reversed(tail_text(path, lines=60).splitlines()):
        match = _PROBLEM.search(line)
        if match:
            return match.group(1).strip()
    return None


def stop_tree(pid: int, grace: float = GRACE_SECONDS) -> None:
    """Cancel a job: one SIGTERM to the stage CLI, which ends its own child tree and exits 130 (a second
    signal would interrupt that clean-up); after `grace` seconds, kill_tree whatever of the family is left."""
    try:
        root = psutil.Process(pid)
        family = [root, *root.children(recursive=True)]
        root.terminate()
    except psutil.NoSuchProcess:
        return
    psutil.wait_procs([root], timeout=grace)
    for proc in family:
        if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
            kill_tree(proc.pid, grace=grace)


def _alive(pid: int | None, started: float | None) -> bool:
    if pid is None:
        return False
    try:
        proc = psutil.Process(pid)
        same = started is None or abs(proc.create_time() - started) < 1.0
        return same and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class JobQueue:
    """Runs at most `max_jobs` jobs at once (one GPU job by default), first come first served."""

    def __init__(
        self,
        runs_dir: str | Path,
        *,
        max_jobs: int = 1,
        repo_root: Path = REPO_ROOT,
        python: str = sys.executable,
        poll_seconds: float = 0.3,
        guard: Callable[[Job], None] | None = None,
    ):
        """`guard(job)` runs right before a job starts and refuses it by raising (UserError): the last check
        that its command names only what the server allows, whatever wrote job.json."""
        self.runs_dir = Path(runs_dir).resolve()
        self.guard = guard
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.max_jobs = max(1, max_jobs)
        self.repo_root = repo_root
        self.python = python
        self.poll_seconds = poll_seconds
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}
        self._procs: dict[str, subprocess.Popen] = {}
        self._followers: dict[str, LogFollower] = {}
        self._final: dict[str, ProgressView] = {}  # the last progress of jobs that ended while we watched
        self._stop = threading.Event()
        self._load()
        self._thread = threading.Thread(target=self._loop, name="rav-ui-jobs", daemon=True)
        self._thread.start()

    # -- public ------------------------------------------------------------------------------------
    def new_job_dir(self, stage: str) -> Path:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        with self._lock:
            n = 1
            folder = self.runs_dir / f"{stamp}-{stage}"
            while folder.exists():
                n += 1
                folder = self.runs_dir / f"{stamp}-{stage}-{n}"
            (folder / CONSOLE).parent.mkdir(parents=True)
        return folder

    def submit(
        self,
        *,
        stage: str,
        title: str,
        job_dir: Path,
        script: str,
        args: list[str],
        values: dict[str, Any],
        run_dir: str | None = None,
        request: str | None = None,
    ) -> Job:
        """Queue `python <script> <args>` (script relative to the repo root) to run in `job_dir`, last."""
        job = Job(
            id=job_dir.name,
            stage=stage,
            title=title,
            dir=str(job_dir.resolve()),
            command=["python", script, *args],
            values=values,
            run_dir=run_dir,
            request=request,
        )
        with self._lock:
            job.order = max((j.order for j in self._jobs.values()), default=0.0) + 1.0
            job.save()
            self._jobs[job.id] = job
        self._schedule()
        return job

    def cancel(self, job_id: str) -> str:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return f"no job {job_id}"
            if job.status == QUEUED:
                self._finish(job, CANCELLED, None, "cancelled before it started")
                return f"{job_id}: removed from the queue"
            if job.status != RUNNING:
                return f"{job_id}: already {job.status}"
            job.cancel_requested = True
            job.save()
            pid, started = job.pid, job.pid_started
        if _alive(pid, started):
            threading.Thread(target=stop_tree, args=(pid,), name=f"cancel-{job_id}", daemon=True).start()
        return f"{job_id}: stopping its process tree"

    def move(self, job_id: str, step: int) -> str:
        """Move a queued job `step` places earlier (negative) or later in the queue."""
        with self._lock:
            waiting = self.queued()
            job = self._jobs.get(job_id)
            if job is None or job not in waiting:
                return f"{job_id}: only a queued job can be moved"
            i = waiting.index(job)
            j = min(max(i + step, 0), len(waiting) - 1)
            if i == j:
                return f"{job_id}: already {'first' if step < 0 else 'last'} in the queue"
            slots = [w.order for w in waiting]
            waiting.insert(j, waiting.pop(i))
            for w, order in zip(waiting, slots):
                if w.order != order:
                    w.order = order
                    w.save()
            return f"{job_id}: now number {j + 1} in the queue"

    def remove(self, job_id: str) -> str:
        """Take a job off the list (a queued one is cancelled first); its folder and files stay."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return f"no job {job_id}"
            if job.status == RUNNING:
                return f"{job_id}: running; cancel it first"
            if job.status == QUEUED:
                self._finish(job, CANCELLED, None, "removed from the queue before it started")
            job.hidden = True
            job.save()
            return f"{job_id}: removed from the list (its folder {job.path} stays)"

    def jobs(self, *, hidden: bool = False) -> list[Job]:
        """Newest first (the hidden ones only when asked for)."""
        with self._lock:
            return sorted(
                (j for j in self._jobs.values() if hidden or not j.hidden),
                key=lambda j: (j.created, j.id),
                reverse=True,
            )

    def queued(self) -> list[Job]:
        """The waiting jobs in the order they will run."""
        with self._lock:
            return sorted((j for j in self._jobs.values() if j.status == QUEUED), key=lambda j: (j.order, j.created))

    def position(self, job_id: str) -> int | None:
        """1 for the next job to start; None when not queued."""
        ids = [j.id for j in self.queued()]
        return ids.index(job_id) + 1 if job_id in ids else None

    def recent(self, stage: str, request: str, seconds: float) -> Job | None:
        """A job of the same form and request submitted less than `seconds` ago (a double click)."""
        now = dt.datetime.now().astimezone()
        with self._lock:
            for job in self._jobs.values():
                if (
                    job.stage == stage
                    and job.request == request
                    and not job.hidden
                    and (now - dt.datetime.fromisoformat(job.created)).total_seconds() < seconds
                ):
                    return job
        return None

    def get(self, job_id: str | None) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id) if job_id else None

    def progress(self, job_id: str) -> ProgressView:
        with self._lock:
            follower = self._followers.get(job_id)
            job = self._jobs.get(job_id)
            final = self._final.get(job_id)
        if follower is not None:
            return follower.view()
        if final is None and job is not None and job.status in FINISHED:
            final = self._final[job_id] = read_progress(job.console)  # e.g. after a restart
        if job is not None and job.status == DONE:
            return ProgressView(1.0, final.text if final else "", None)
        return final or ProgressView(None, "", None)

    def log_tail(self, job_id: str, lines: int = 40) -> str:
        job = self.get(job_id)
        return tail_text(job.console, lines) if job else ""

    def close(self) -> None:
        """Stop watching; running jobs go on and a later UI finds them again."""
        self._stop.set()
        self._thread.join(timeout=5)

    # -- internals ---------------------------------------------------------------------------------
    def _load(self) -> None:
        for job_file in sorted(self.runs_dir.glob(f"*/{JOB_FILE}")):
            try:
                job = Job.load(job_file.parent)
            except (ValueError, TypeError, OSError):
                continue  # a damaged record does not stop the UI; the Runs tab still lists the folder
            self._jobs[job.id] = job
            if job.status == RUNNING:
                if _alive(job.pid, job.pid_started):
                    follower = LogFollower(job.console)
                    follower.poll()
                    self._followers[job.id] = follower
                else:
                    self._collect(job)

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self._schedule()

    def _schedule(self) -> None:
        with self._lock:
            for job in list(self._jobs.values()):
                if job.status != RUNNING:
                    continue
                follower = self._followers.get(job.id)
                if follower:
                    follower.poll()
                proc = self._procs.get(job.id)
                ended = proc.poll() is not None if proc else not _alive(job.pid, job.pid_started)
                if ended:
                    self._collect(job)
            running = sum(1 for j in self._jobs.values() if j.status == RUNNING)
            for job in self.queued()[: max(0, self.max_jobs - running)]:
                self._start(job)

    def _start(self, job: Job) -> None:
        if self.guard is not None:
            try:
                self.guard(job)
            except UserError as exc:
                self._finish(job, FAILED, None, f"refused: {exc}")
                return
        script = str(self.repo_root / job.command[1])
        argv = [
            self.python,
            "-m",
            "replace_actor_video.ui.job_runner",
            str(job.path / EXIT_FILE),
            script,
            *job.command[2:],
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        job.console.parent.mkdir(parents=True, exist_ok=True)
        with open(job.console, "ab") as console:
            console.write(f"[rav-ui] {job.display_command}\n".encode())
            console.flush()
            try:
                # A session of its own: the UI's Ctrl-C does not reach it, and a stopped UI leaves it running.
                proc = subprocess.Popen(
                    argv,
                    cwd=self.repo_root,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=console,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                self._finish(job, FAILED, None, f"could not start: {exc}")
                return
        job.status, job.started, job.pid = RUNNING, now_iso(), proc.pid
        try:
            job.pid_started = psutil.Process(proc.pid).create_time()
        except psutil.Error:
            job.pid_started = None
        self._procs[job.id] = proc
        follower = LogFollower(job.console)
        self._followers[job.id] = follower
        job.save()

    def _collect(self, job: Job) -> None:
        """A running job's process is gone: read how it ended."""
        proc = self._procs.pop(job.id, None)
        code = None
        try:
            code = int((job.path / EXIT_FILE).read_text().strip())
        except (OSError, ValueError):
            if proc is not None and proc.returncode is not None and proc.returncode >= 0:
                code = proc.returncode
        if code == 0:
            status = DONE
        elif code == 130 or job.cancel_requested:
            status = CANCELLED
        else:
            status = FAILED
        message = None if status == DONE else last_problem(job.console)
        if code is None and status == FAILED:
            message = message or "the process ended without an exit status (killed?)"
        self._finish(job, status, code, message)

    def _finish(self, job: Job, status: str, code: int | None, message: str | None) -> None:
        follower = self._followers.pop(job.id, None)
        if follower:
            follower.poll()
            self._final[job.id] = follower.view()
        job.status, job.exit_code, job.finished, job.message = status, code, now_iso(), message
        job.save()
