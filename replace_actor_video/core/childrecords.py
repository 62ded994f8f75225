"""Records of the upstream processes a run started: `<run dir>/.rav/processes/<supervisor pid>.json`.

The supervisor (core/supervisor.py) keeps its record current while it runs and removes it when its tree has
ended. A record still there at the next start means that run was cut short (its supervisor killed too):
the processes it names that are still alive are ended before anything new starts on the directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psutil

from .atomic import write_text_atomic
from .proctree import GRACE_SECONDS, end_processes, find, identity
from .runlock import STATE_DIR

RECORDS = Path(STATE_DIR) / "processes"


class LiveRunProcesses(Exception):
    """Processes recorded in a run directory belong to a run that is still alive."""

    def __init__(self, owner: dict[str, Any], pids: list[int]):
        self.owner, self.pids = owner, pids
        super().__init__(
            f"PID {owner.get('pid')} ({' '.join(owner.get('command') or [])}) is still running "
            f"processes {', '.join(map(str, pids))} here"
        )


def records_dir(run_dir: Path) -> Path:
    return Path(run_dir) / RECORDS


def write(path: Path, record: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(record, indent=2))


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def end_leftovers(run_dir: Path, grace: float = GRACE_SECONDS) -> list[int]:
    """End the still-running processes that earlier, dead runs recorded under `run_dir` (nested run
    directories included) and drop their records. Returns the PIDs ended. Raises LiveRunProcesses when a
    record's owner is alive and is not this process: those are not leftovers."""
    me = identity()
    ended = []
    for path in sorted(Path(run_dir).glob(f"**/{RECORDS}/*.json")):
        record = _read(path)
        if record is None:
            path.unlink(missing_ok=True)
            continue
        owner = record.get("owner") or {}
        entries = [record.get("supervisor") or {}, *record.get("processes", [])]
        alive = [proc for proc in map(find, entries) if proc is not None]
        if find(owner) is not None:
            if owner.get("pid") == me["pid"] or not alive:
                continue
            raise LiveRunProcesses(owner, [p.pid for p in alive])
        tree = {p.pid: p for p in alive}
        for proc in alive:
            try:
                tree.update((child.pid, child) for child in proc.children(recursive=True))
            except psutil.Error:
                pass
        end_processes(list(tree.values()), grace)
        ended += sorted(tree)
        path.unlink(missing_ok=True)
    return ended
