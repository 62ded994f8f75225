"""One run at a time per run directory: an exclusive lock held for the whole run, and a record of who holds it.

The lock is `flock(2)` on `<run dir>/.rav/lock` (standard library; also honoured over NFS on Linux). The
kernel drops it when the holder's process ends in any way, `kill -9` included, so a lock is never stale.
The holder writes its PID, start time and command to `.rav/holder.json` so a refused run can name it."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from .atomic import write_text_atomic
from .proctree import find, identity

STATE_DIR = ".rav"  # a run directory's run-time state: the lock, its holder, the running children
LOCK_FILE = "lock"
HOLDER_FILE = "holder.json"


@dataclass(frozen=True)
class Holder:
    pid: int
    command: str
    since: str
    host: str


class RunDirBusy(Exception):
    """Another live run holds the lock of this run directory."""

    def __init__(self, run_dir: Path, holder: Holder | None):
        self.run_dir, self.holder = run_dir, holder
        super().__init__(str(run_dir))


class RunLock:
    """`acquire()` or raise RunDirBusy; `release()` (or the end of the process) frees it."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.state_dir = self.run_dir / STATE_DIR
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by children
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunDirBusy(self.run_dir, self.holder()) from None
        self._fd = fd
        try:
            me = {**identity(), "command": psutil.Process().cmdline(), "since": _now(), "host": socket.gethostname()}
            write_text_atomic(self.state_dir / HOLDER_FILE, json.dumps(me, indent=2))
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            (self.state_dir / HOLDER_FILE).unlink(missing_ok=True)  # still under the lock
        os.close(self._fd)  # the lock file itself stays: unlinking it would let two runs lock two inodes
        self._fd = None

    def holder(self, wait: float = 2.0) -> Holder | None:
        """Who holds the lock, from its record; waits a moment for a holder that has just locked and not
        yet written it. None when unknown."""
        deadline = time.monotonic() + wait
        while True:
            try:
                data = json.loads((self.state_dir / HOLDER_FILE).read_text())
                here = data.get("host") == socket.gethostname()
                if not here or find(data) is not None:
                    command = [str(part) for part in data.get("command") or []]
                    if command:
                        command[0] = Path(command[0]).name  # "python3", not the interpreter's full path
                    return Holder(
                        int(data["pid"]), " ".join(command), str(data.get("since", "?")), str(data.get("host", "?"))
                    )
            except (OSError, ValueError, KeyError, TypeError):
                pass
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.1)


def _now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")
