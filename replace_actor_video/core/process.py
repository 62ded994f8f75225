"""The one way we run an external program: argv lists only, output streamed to the console and a log,
progress parsed, the whole child process tree ended on Ctrl-C or cancel, and a loud failure when the
child exits non-zero or exits 0 without the files it had to write."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence, TextIO

import psutil

from .errors import Cancelled, StageFailed
from .progress import Progress, parse_progress

GRACE_SECONDS = 10.0
REPO_ROOT = Path(__file__).resolve().parents[2]


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


def kill_tree(pid: int, grace: float = GRACE_SECONDS) -> None:
    """End a process and all of its descendants: SIGTERM first, SIGKILL after `grace` seconds.

    We walk the tree with psutil as well as signalling the process group, because torchrun workers and
    other grandchildren may have left the group."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass
    for p in procs:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=grace)


def _split_lines(stream, sink: Callable[[str], None]) -> None:
    """Feed `sink` each line of a byte stream; tqdm redraws with '\r', so that ends a line too."""
    buf = b""
    while True:
        chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
        if not chunk:
            break
        buf += chunk
        while True:
            cut = min((i for i in (buf.find(b"\n"), buf.find(b"\r")) if i >= 0), default=-1)
            if cut < 0:
                break
            sink(buf[: cut + 1].decode("utf-8", "replace"))
            buf = buf[cut + 1:]
    if buf:
        sink(buf.decode("utf-8", "replace"))


class _CancelOnSignal:
    """Note SIGTERM/SIGHUP while a child runs (main thread only) so the wait loop cancels cleanly: a UI or
    a scheduler that stops us also stops the upstream program instead of orphaning it on the GPU. The
    handler only records the signal: raising from it could land inside lock code (threading) and turn a
    clean cancel into a traceback, and a second signal during clean-up must not interrupt kill_tree."""

    def __enter__(self):
        self._old = {}
        self.received: str | None = None
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGHUP):
                self._old[sig] = signal.signal(sig, self._note)
        return self

    def _note(self, signum, _frame):
        self.received = self.received or signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        return False


class _ignoring_interrupts:
    """A second Ctrl-C while the tree is being ended must not leave it half-ended."""

    def __enter__(self):
        self._old = None
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, signal.SIG_IGN)

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


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
) -> ProcessResult:
    """Run `argv`, stream and log its output, and verify `expected_outputs` exist and are non-empty.

    Raises StageFailed on a non-zero exit or a missing output, Cancelled on Ctrl-C/SIGTERM/`cancel`."""
    argv = [str(a) for a in argv]
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log_path, "a", encoding="utf-8") as log, _CancelOnSignal() as signals:
        header = f"[rav] {label}: {format_argv(argv)}\n"
        log.write(header)
        log.flush()
        if echo:
            echo.write(header)
            echo.flush()

        def sink(line: str) -> None:
            log.write(line)
            log.flush()
            if echo:
                echo.write(line)
                echo.flush()
            if on_progress:
                progress = parse_progress(line)
                if progress:
                    on_progress(progress)

        try:
            proc = subprocess.Popen(
                argv, cwd=cwd, env=None if env is None else dict(env), stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise StageFailed(f"{label}: cannot start {argv[0]!r} ({exc.strerror}); is it installed?") from None
        reader = threading.Thread(target=_split_lines, args=(proc.stdout, sink), daemon=True)
        reader.start()
        try:
            while proc.poll() is None:
                if signals.received:
                    raise Cancelled(f"received {signals.received}")
                if cancel is not None and cancel.is_set():
                    raise Cancelled("cancel requested")
                time.sleep(0.2)
        except (KeyboardInterrupt, Cancelled) as exc:
            log.write(f"[rav] {label}: stopping the process tree ({type(exc).__name__})\n")
            with _ignoring_interrupts():
                kill_tree(proc.pid)
            reader.join(timeout=5)
            raise Cancelled(f"{label} cancelled; the upstream process tree was ended") from None
        reader.join()
        seconds = time.monotonic() - started
        log.write(f"[rav] {label}: exit code {proc.returncode} after {seconds:.1f}s\n")

    if proc.returncode != 0:
        raise StageFailed(f"{label} failed with exit code {proc.returncode}{_tail_hint(log_path)}; full log: {log_path}")
    missing = [str(p) for p in expected_outputs if not Path(p).exists() or _is_empty(Path(p))]
    if missing:
        raise StageFailed(
            f"{label} exited 0 but did not write {', '.join(missing)}{_tail_hint(log_path)}; full log: {log_path}")
    return ProcessResult(argv, seconds, log_path)


def _is_empty(path: Path) -> bool:
    return path.stat().st_size == 0 if path.is_file() else not any(path.iterdir())


def _tail_hint(log_path: Path) -> str:
    """The most telling error line of the log, so the one-line failure says why: the last Python exception
    line ('ValueError: ...', also behind torchrun's '[rank0]:' prefix) if any, else the last line that
    mentions an error (torchrun's own 'ChildFailedError' summary and its boilerplate are skipped)."""
    try:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-400:]
    except OSError:
        return ""
    ours = [line for line in lines if not line.startswith("[rav]")]
    exception = [line for line in ours if _EXCEPTION.search(line) and "ChildFailedError" not in line]
    loose = [line for line in ours if any(w in line for w in ("Error", "error", "failed", "assert"))
             and not any(b in line for b in _TORCHRUN_BOILERPLATE)]
    picked = (exception or loose or [""])[-1].strip()
    return f" (last error: {picked[:240]})" if picked else ""


_EXCEPTION = re.compile(r"(^|[\s:])[A-Za-z_.]*(Error|Exception|Interrupt)\b: ")
_TORCHRUN_BOILERPLATE = ("error_file", "elastic/errors", "To enable traceback", "ChildFailedError")


def start_detached(argv: Sequence[str], *, log_path: Path, env: Mapping[str, str] | None = None,
                   cwd: Path | None = None) -> int:
    """Start a long-lived helper (the warm generation worker) that outlives this process: its own session, no
    stdin, stdout and stderr appended to `log_path`. Returns its pid; ending it is the caller's business."""
    argv = [str(a) for a in argv]
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"[rav] start: {format_argv(argv)}\n")
        log.flush()
        try:
            proc = subprocess.Popen(argv, cwd=cwd, env=None if env is None else dict(env), stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        except FileNotFoundError as exc:
            raise StageFailed(f"cannot start {argv[0]!r} ({exc.strerror}); is it installed?") from None
    return proc.pid
