"""Processes by identity (PID + start time, so a reused PID is never taken for ours) and ending whole trees.

Used in our own process and in the supervisor (core/supervisor.py), so: standard library and psutil only."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable
from typing import Any

import psutil

GRACE_SECONDS = 10.0


def identity(pid: int | None = None) -> dict[str, Any]:
    """{"pid", "started"} of a process (default: this one); `started` is psutil's create_time."""
    proc = psutil.Process(pid)
    return {"pid": proc.pid, "started": proc.create_time()}


def find(ident: dict[str, Any]) -> psutil.Process | None:
    """The live process that `ident` recorded, or None when it ended (or its PID now names another)."""
    try:
        proc = psutil.Process(int(ident["pid"]))
        started = ident.get("started")
        if started is not None and abs(proc.create_time() - float(started)) > 1.0:
            return None
        return None if proc.status() == psutil.STATUS_ZOMBIE else proc
    except (psutil.Error, KeyError, TypeError, ValueError):
        return None


def _running(procs: Iterable[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except psutil.Error:
            pass
    return alive


def _signal(procs: Iterable[psutil.Process], sig: int) -> None:
    for proc in procs:
        try:
            proc.send_signal(sig)
        except psutil.Error:
            pass


def end_processes(procs: list[psutil.Process], grace: float = GRACE_SECONDS) -> None:
    """SIGTERM to all at once (torchrun forwards it to its workers; ffmpeg finishes its file), SIGKILL to
    whatever is left after `grace` seconds."""
    procs = _running(procs)
    _signal(procs, signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=grace)
    _signal(alive, signal.SIGKILL)
    psutil.wait_procs(alive, timeout=grace)


def end_tree(pid: int, grace: float = GRACE_SECONDS) -> None:
    """End a process and all of its descendants. The tree is walked with psutil as well as the process
    group signalled, because torchrun workers and other grandchildren may have left the group."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass
    end_processes(procs, grace)
