"""The one way we run an external program: argv lists only, the full output to a log and a compact view of it
to the console, progress parsed, no process of its tree left behind (core/supervisor.py stands between us
and it), and a loud one-line failure naming the real cause when the program exits non-zero or exits 0
without the files it had to write."""

from __future__ import annotations

import json
import os
import select
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from .causes import last_error
from .console import ToolConsole, tool_console
from .errors import Cancelled, StageFailed, UserError
from .proctree import GRACE_SECONDS, end_tree, identity
from .progress import Progress, parse_progress
from .supervisor import DETACHED_ENV, SIGNAL_LINE

REPO_ROOT = Path(__file__).resolve().parents[2]
SUPERVISOR = "replace_actor_video.core.supervisor"
POLL_SECONDS = 0.2
DRAIN_SECONDS = 2.0  # reading on after the supervisor exited, should anything else still hold the pipe
TAIL_LINES = 400

kill_tree = end_tree  # the Web UI's name for it

__all__ = [
    "GRACE_SECONDS",
    "ProcessResult",
    "Progress",
    "format_argv",
    "kill_tree",
    "own_module_env",
    "run_process",
    "start_detached",
    "tail_hint",
]


@dataclass(frozen=True)
class ProcessResult:
    argv: list[str]
    seconds: float
    log_path: Path


def format_argv(argv: Sequence[str]) -> str:
    """A copy-pasteable rendering for logs and --dry-run (display only; never executed by a shell)."""
    return " ".join(shlex.quote(str(a)) for a in argv)


def own_module_env() -> dict[str, str]:
    """Environment for running one of our modules as a child (`python -m replace_actor_video...`) from any cwd:
    the repository root goes first on PYTHONPATH."""
    paths = [str(REPO_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


class _LineSplitter:
    """Feeds `sink` each line of a byte stream, its terminator kept; tqdm redraws with '\\r', so that ends a
    line too. Bytes are cut at '\\n'/'\\r', which never occur inside a UTF-8 character."""

    def __init__(self, sink: Callable[[str], None]):
        self.sink, self.buf = sink, b""

    def feed(self, chunk: bytes) -> None:
        self.buf += chunk
        while True:
            cut = min((i for i in (self.buf.find(b"\n"), self.buf.find(b"\r")) if i >= 0), default=-1)
            if cut < 0:
                return
            self.sink(self.buf[: cut + 1].decode("utf-8", "replace"))
            self.buf = self.buf[cut + 1 :]

    def flush(self) -> None:
        if self.buf:
            self.sink(self.buf.decode("utf-8", "replace"))
            self.buf = b""


class _Output:
    """Where a program's output goes: the log (a full disk stops the logging, never the draining of the
    pipe, or the program would block), the console, the progress hook and a tail for the failure line."""

    def __init__(self, log_path: Path, console: ToolConsole, on_progress: Callable[[Progress], None] | None):
        self.log_path, self.console, self.on_progress = log_path, console, on_progress
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.log_error: str | None = None
        try:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            self.log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 (open for the whole run; close())
        except OSError as exc:
            raise UserError(
                f"cannot write the log {log_path}: {exc.strerror}; free some space or fix the "
                "permissions of the run directory"
            ) from None

    def _log(self, text: str) -> None:
        if self.log_error is not None:
            return
        try:
            self.log.write(text)
            self.log.flush()
        except OSError as exc:
            self.log_error = exc.strerror or str(exc)

    def ours(self, text: str) -> None:
        """A line of our own ('[rav] ...'): the log only."""
        self._log(text)

    def line(self, text: str) -> None:
        self._log(text)
        self.tail.append(text)
        self.console.line(text)
        if self.on_progress is not None:
            progress = parse_progress(text)
            if progress is not None:
                self.on_progress(progress)

    def close(self) -> None:
        try:
            self.log.close()
        except OSError as exc:
            self.log_error = self.log_error or exc.strerror


class _ignoring_signals:
    """A second Ctrl-C (or SIGTERM/SIGHUP) while the tree is being ended must not leave it half-ended."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __enter__(self):
        self._old = {}
        if threading.current_thread() is threading.main_thread():
            self._old = {sig: signal.signal(sig, signal.SIG_IGN) for sig in self.SIGNALS}

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        return False


def _program_problem(program: str, cwd: Path | None, env: Mapping[str, str] | None) -> str | None:
    """Why `program` cannot be started, checked before anything starts (None when it can)."""
    if os.sep in program:
        path = Path(cwd or ".") / program
        if not path.is_file():
            return "No such file or directory"
        return None if os.access(path, os.X_OK) else "Permission denied"
    search = (env if env is not None else os.environ).get("PATH", os.defpath)
    return None if shutil.which(program, path=search) else "not found on PATH"


def _start_supervisor(
    argv: list[str], *, label: str, cwd: Path | None, env: Mapping[str, str] | None, record_dir: Path | None
) -> subprocess.Popen:
    """Start core/supervisor.py and hand it the job. Its stdin is our lifeline to it: we never close it
    until we want the tree ended, and the kernel closes it when we die."""
    job = {
        "argv": argv,
        "cwd": str(cwd) if cwd is not None else os.getcwd(),
        "env": dict(env) if env is not None else dict(os.environ),
        "label": label,
        "record_dir": str(record_dir) if record_dir is not None else None,
        "owner": {**identity(), "command": sys.argv[:8]},
        "grace": GRACE_SECONDS,
    }
    # cwd: `-m` puts the working directory first on the supervisor's sys.path; the repository root holds
    # nothing that shadows what it imports, whereas the user's folder might.
    sup = subprocess.Popen(
        [sys.executable, "-m", SUPERVISOR, label],
        cwd=REPO_ROOT,
        env=own_module_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        sup.stdin.write(json.dumps(job).encode() + b"\n")
        sup.stdin.flush()
    except BaseException:
        end_tree(sup.pid, grace=1.0)
        raise
    return sup


def _pump(
    sup: subprocess.Popen,
    splitter: _LineSplitter,
    *,
    console: ToolConsole,
    out: _Output,
    cancel: threading.Event | None,
    deadline: float | None = None,
) -> None:
    """Read the tree's output until every writer has closed the pipe. Never blocks after the supervisor
    has exited: should anything still hold the pipe (it cannot, short of escaping the subreaper), reading
    stops after DRAIN_SECONDS. With `deadline`, returns at that time whatever the state."""
    fd = sup.stdout.fileno()
    exited_at = None
    while True:
        if cancel is not None and cancel.is_set() and deadline is None:
            raise Cancelled("cancel requested")
        if deadline is not None and time.monotonic() > deadline:
            return
        if select.select([fd], [], [], POLL_SECONDS)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                return
            splitter.feed(chunk)
            continue
        console.tick()
        if sup.poll() is not None:
            exited_at = exited_at or time.monotonic()
            if time.monotonic() - exited_at > DRAIN_SECONDS:
                out.ours(
                    f"[rav] the output pipe is still held open {DRAIN_SECONDS:g}s after the program ended; "
                    "stopped reading it\n"
                )
                return


def _stop(sup: subprocess.Popen, splitter: _LineSplitter, *, console: ToolConsole, out: _Output) -> None:
    """End the tree through the supervisor (it signals everything it sees and SIGKILLs after the grace
    period), reading the output meanwhile so nothing blocks on a full pipe; if the supervisor itself does
    not finish in time, end its tree from here."""
    for action in (sup.stdin.close, lambda: sup.send_signal(signal.SIGTERM)):
        try:
            action()
        except OSError:
            pass
    _pump(sup, splitter, console=console, out=out, cancel=None, deadline=time.monotonic() + GRACE_SECONDS + 5)
    if sup.poll() is None:
        end_tree(sup.pid, grace=1.0)
    try:
        sup.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def run_process(
    argv: Sequence[str],
    *,
    log_path: Path,
    label: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    expected_outputs: Sequence[Path] = (),
    on_progress: Callable[[Progress], None] | None = None,
    echo: TextIO | None = sys.stdout,
    cancel: threading.Event | None = None,
    record_dir: Path | None = None,
    tag: str | None = None,
) -> ProcessResult:
    """Run `argv`, log its output, show it on `echo` (compactly on a terminal, where the line starts with
    `[tag]`, e.g. the stage name), and verify `expected_outputs` exist and are non-empty. `record_dir` (a run
    directory's .rav/processes) gets a record of the running tree.

    Raises StageFailed on a non-zero exit or a missing output, Cancelled on Ctrl-C/SIGTERM/SIGHUP/`cancel`."""
    argv = [str(a) for a in argv]
    log_path = Path(log_path)
    problem = _program_problem(argv[0], cwd, env)
    if problem:
        raise StageFailed(f"{label}: cannot start {argv[0]!r} ({problem}); is it installed?")
    console = tool_console(echo, label, tag)
    out = _Output(log_path, console, on_progress)
    started = time.monotonic()
    try:
        header = f"[rav] {label}: {format_argv(argv)}\n"
        out.ours(header)
        console.header(header)
        splitter = _LineSplitter(out.line)
        sup = None
        try:
            sup = _start_supervisor(argv, label=label, cwd=cwd, env=env, record_dir=record_dir)
            _pump(sup, splitter, console=console, out=out, cancel=cancel)
            sup.wait()
        except BaseException as exc:
            if sup is not None:
                with _ignoring_signals():
                    out.ours(f"[rav] {label}: stopping the process tree ({type(exc).__name__})\n")
                    _stop(sup, splitter, console=console, out=out)
            splitter.flush()
            if isinstance(exc, (KeyboardInterrupt, Cancelled)):
                console.stopped()
                reason = str(exc) or "interrupted"
                raise Cancelled(f"{label} cancelled ({reason}); the upstream process tree was ended") from None
            raise
        splitter.flush()
        seconds = time.monotonic() - started
        code = sup.returncode
        out.ours(f"[rav] {label}: exit code {code} after {seconds:.1f}s\n")
    finally:
        out.close()

    missing = [str(p) for p in expected_outputs if not Path(p).exists() or _is_empty(Path(p))]
    console.finished(ok=code == 0 and not missing, seconds=seconds, tail=out.tail)
    where = f"full log: {log_path}" if out.log_error is None else f"the log could not be written ({out.log_error})"
    cause = last_error(out.tail)
    hint = f" (last error: {cause})" if cause else ""
    if code != 0:
        what = "was ended by a signal" if cause.startswith(SIGNAL_LINE) else f"failed with exit code {code}"
        raise StageFailed(f"{label} {what}{hint}; {where}")
    if missing:
        raise StageFailed(f"{label} exited 0 but did not write {', '.join(missing)}{hint}; {where}")
    if out.log_error is not None and echo is not None:
        echo.write(f"[rav] warning: {label}: {where}\n")
        echo.flush()
    return ProcessResult(argv, seconds, log_path)


def _is_empty(path: Path) -> bool:
    return path.stat().st_size == 0 if path.is_file() else not any(path.iterdir())


def tail_hint(log_path: Path) -> str:
    """' (last error: ...)' from the end of a log, for a runner that has only the log (the warm worker's client)."""
    try:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)[-TAIL_LINES:]
    except OSError:
        return ""
    cause = last_error(lines)
    return f" (last error: {cause})" if cause else ""


def start_detached(
    argv: Sequence[str], *, log_path: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> int:
    """Start a long-lived helper (the warm generation worker) that outlives this process: its own session, no
    stdin, stdout and stderr appended to `log_path`, marked detached (supervisor.DETACHED_ENV) so that a supervisor
    running us (the batch, the UI) does not end it with our tree. Returns its pid; ending it is the caller's business
    (the worker ends itself after its idle timeout)."""
    argv = [str(a) for a in argv]
    env = {**(os.environ if env is None else env), DETACHED_ENV: "1"}
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"[rav] start: {format_argv(argv)}\n")
        log.flush()
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise StageFailed(f"cannot start {argv[0]!r} ({exc.strerror}); is it installed?") from None
    return proc.pid
