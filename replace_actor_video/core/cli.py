"""How every entry point reports failure: one line on stderr and an exit code that says what kind."""

from __future__ import annotations

import contextlib
import errno
import signal
import sys
import threading
from collections.abc import Callable, Iterator

from .errors import Cancelled, StageFailed, Stopped, UserError


@contextlib.contextmanager
def signals_stop_like_ctrl_c() -> Iterator[None]:
    """SIGTERM (a scheduler, the Web UI's cancel, `kill`) and SIGHUP (the terminal closed) stop the run as
    Ctrl-C does: a KeyboardInterrupt wherever we are, so the running stage is recorded as cancelled and
    the upstream process tree is ended. Only the main thread can install handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, _frame: object) -> None:
        raise Stopped(f"received {signal.Signals(signum).name}")

    old = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


# The machine, not our code: a full disk, a quota, a read-only or failing file system, too many open files.
ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: "free some disk space and run again (finished stages are kept)",
    errno.EDQUOT: "free some space in your quota and run again (finished stages are kept)",
    errno.EFBIG: "the file system or a limit (ulimit -f) refuses a file this large",
    errno.EROFS: "choose a writable location",
    errno.EACCES: "choose a location you can write",
    errno.EIO: "the disk reported an I/O error: check it (dmesg)",
    errno.EMFILE: "raise the open-file limit (ulimit -n)",
    errno.ENFILE: "the system ran out of file handles; retry later",
}


def report_errors(body: Callable[[], object]) -> int:
    """Run `body`; 0 on success, 2 bad input or environment, 1 upstream failure, 130 cancelled."""
    try:
        with signals_stop_like_ctrl_c():
            body()
        return 0
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return UserError.exit_code
    except StageFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return StageFailed.exit_code
    except (Cancelled, KeyboardInterrupt) as exc:
        print(f"cancelled: {exc or 'interrupted'}", file=sys.stderr)
        return Cancelled.exit_code
    except OSError as exc:
        if exc.errno not in ENVIRONMENT_ERRNOS:
            raise  # anything else is a bug of ours: keep the traceback
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror}{where}; {ENVIRONMENT_ERRNOS[exc.errno]}", file=sys.stderr)
        return UserError.exit_code
