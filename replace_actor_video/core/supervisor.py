"""The small process between us and every upstream program, so that no upstream process outlives us.

    python -m replace_actor_video.core.supervisor LABEL      (the job, one JSON line, on stdin)

core/process.py starts it; it starts the program and stays its parent. Why not simply PR_SET_PDEATHSIG in
the upstream child: the kernel sends that signal when the *thread* that forked the child exits, not the
process (the Web UI and the dataset builder run stages from worker threads), and it is cleared in
grandchildren (torchrun's workers, the ffmpeg an upstream script spawns), which would be orphaned.

Instead, this process:
- makes itself a child subreaper (PR_SET_CHILD_SUBREAPER, Linux): every orphan of its subtree is
  re-parented to it, so it always sees the whole tree, however deep and whatever sessions it made;
- watches us through its stdin, a pipe whose write end only our process holds: the kernel closes it when
  we die in any way (SIGKILL included), and the read returns end-of-file; our PID as its parent is a
  second check;
- ends its whole tree (SIGTERM, SIGKILL after the grace period) when we are gone, when told to (SIGTERM,
  SIGHUP, SIGINT, or stdin closed), and when the program has exited but left children running (they would
  hold the output pipe open and hang our reader);
- records the processes of its tree in the run directory (core/childrecords.py) while it runs, so a run
  on the same directory can end them should this process itself be killed;
- exits with the program's exit status (128 + N, and a line saying so, when a signal ended it).
Standard library and psutil only."""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from . import childrecords
from .proctree import GRACE_SECONDS, identity

PR_SET_CHILD_SUBREAPER = 36
POLL_SECONDS = 0.2
RECORD_EVERY_SECONDS = 1.0
SIGNAL_LINE = "[rav-supervisor] ended by signal"  # core/process.py quotes this line in the failure message
# In the environment of a long-lived service started on purpose to outlive the run (core/process.start_detached: the
# warm generation worker, which ends itself after its idle timeout): not part of the tree we end or record.
DETACHED_ENV = "RAV_DETACHED"


def set_child_subreaper() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def say(text: str) -> None:
    try:
        sys.stdout.write(f"{text}\n")
        sys.stdout.flush()
    except OSError:
        pass  # our reader is gone; the tree is being ended anyway


def detached(proc: psutil.Process) -> bool:
    """A detached service (DETACHED_ENV in its environment; its own children inherit it)."""
    try:
        return proc.environ().get(DETACHED_ENV) == "1"
    except psutil.Error:
        return False


class Supervisor:
    def __init__(self, job: dict[str, Any]):
        self.job = job
        self.label = job.get("label", "")
        self.owner = job["owner"]
        self.grace = float(job.get("grace", GRACE_SECONDS))
        self.record = Path(job["record_dir"]) / f"{os.getpid()}.json" if job.get("record_dir") else None
        self.me = psutil.Process()
        self.stop_reason: str | None = None
        self.child: subprocess.Popen | None = None
        self.status: int | None = None  # the program's exit code once reaped (negative: killed by that signal)
        self._recorded: set[int] | None = None

    # -- the tree ----------------------------------------------------------------------------------
    def reap(self) -> None:
        """Collect every exited child (the program, and orphans re-parented to us)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.child is not None and pid == self.child.pid:
                self.status = os.waitstatus_to_exitcode(status)
                self.child.returncode = self.status

    def descendants(self) -> list[psutil.Process]:
        alive = []
        for proc in self.me.children(recursive=True):
            try:
                if proc.status() != psutil.STATUS_ZOMBIE and not detached(proc):
                    alive.append(proc)
            except psutil.Error:
                pass
        return alive

    def end_tree(self) -> list[int]:
        """SIGTERM to every descendant (and any that appears meanwhile), SIGKILL after the grace period."""
        signalled: dict[int, psutil.Process] = {}
        kill_at = time.monotonic() + self.grace
        give_up = kill_at + 5.0
        killing = False
        while True:
            self.reap()
            alive = self.descendants()
            if not alive or time.monotonic() > give_up:
                return sorted(signalled)
            killing = killing or time.monotonic() >= kill_at
            for proc in alive:
                if killing or proc.pid not in signalled:
                    try:
                        proc.send_signal(signal.SIGKILL if killing else signal.SIGTERM)
                    except psutil.Error:
                        pass
                    signalled[proc.pid] = proc
            time.sleep(0.05)

    def write_record(self) -> None:
        if self.record is None:
            return
        procs = self.descendants()
        pids = {p.pid for p in procs}
        if pids == self._recorded:
            return
        entries = []
        for proc in procs:
            try:
                entries.append({"pid": proc.pid, "started": proc.create_time(), "cmd": proc.cmdline()[:8]})
            except psutil.Error:
                pass
        try:
            self.record.parent.mkdir(parents=True, exist_ok=True)
            childrecords.write(
                self.record, {"owner": self.owner, "supervisor": identity(), "label": self.label, "processes": entries}
            )
            self._recorded = pids
        except OSError:
            pass  # best effort (disk full): the tree is still ended by us; only a later clean-up needs it

    # -- the run -----------------------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.stop_reason = self.stop_reason or signal.Signals(signum).name

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        # Any signal (SIGCHLD: a process of the tree ended) wakes the select below through this pipe.
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        set_child_subreaper()
        if os.getppid() != self.owner["pid"]:
            return 130  # our parent died before we got here: start nothing
        argv = self.job["argv"]
        try:
            self.child = subprocess.Popen(
                argv, cwd=self.job.get("cwd"), env=self.job.get("env"), stdin=subprocess.DEVNULL
            )
        except OSError as exc:
            say(f"[rav-supervisor] cannot start {argv[0]!r}: {exc.strerror}")
            return 127
        self.write_record()
        lifeline, last_record = True, time.monotonic()
        while True:
            self.reap()
            if self.status is not None:
                break
            if self.stop_reason is None and not lifeline:
                self.stop_reason = "our parent closed the pipe"
            if self.stop_reason is None and os.getppid() != self.owner["pid"]:
                self.stop_reason = "our parent died"
            if self.stop_reason is not None:
                break
            if time.monotonic() - last_record >= RECORD_EVERY_SECONDS:
                self.write_record()
                last_record = time.monotonic()
            ready = select.select([0, wake_r], [], [], POLL_SECONDS)[0]
            if wake_r in ready:
                os.read(wake_r, 4096)
            if 0 in ready and not os.read(0, 4096):
                lifeline = False
        if self.stop_reason is not None:
            self.end_tree()
            self.reap()
            return 130
        left = self.end_tree()
        if left:
            say(
                f"[rav-supervisor] {Path(argv[0]).name} exited and left {len(left)} process(es) running "
                f"(PIDs {', '.join(map(str, left))}); they were ended"
            )
        assert self.status is not None
        if self.status < 0:
            name = signal.Signals(-self.status).name
            hint = " (the kernel's out-of-memory killer sends SIGKILL: see `dmesg`)" if name == "SIGKILL" else ""
            say(f"{SIGNAL_LINE} {name}: {Path(argv[0]).name} (PID {self.child.pid}){hint}")
            return 128 - self.status
        return self.status

    def forget(self) -> None:
        """Drop our record once nothing of the tree is left (else a later run still needs it)."""
        if self.record is not None and not self.descendants():
            self.record.unlink(missing_ok=True)


def main() -> int:
    line = sys.stdin.buffer.readline()
    if not line:
        return 130  # our parent died before sending the job
    supervisor = Supervisor(json.loads(line))
    try:
        return supervisor.run()
    finally:
        supervisor.forget()


if __name__ == "__main__":
    sys.exit(main())
