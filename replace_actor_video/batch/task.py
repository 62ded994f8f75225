"""What runs on a node for one job: check that the node sees the job's files, then pipeline.py through our
process runner (its own run directory, manifest, locks and resume; Ctrl-C on the driver reaches it as a
Ray cancel, and the runner ends the whole upstream tree). A finished job leaves `batch_job.json` in its run
directory, so a rerun of the batch skips it without starting anything."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from ..core.atomic import atomic_file
from ..core.errors import StageFailed
from ..core.process import REPO_ROOT, run_process
from .jobs import Job

PIPELINE = REPO_ROOT / "pipeline.py"
RECORD = "batch_job.json"
LOG = "logs/batch-job.log"


def _stat(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _record(job: Job) -> dict[str, Any]:
    """What must be unchanged for a finished job to count as finished: its command and working directory,
    its result and the files it read (size and modification time: hashing checkpoints would take minutes)."""
    files = [p for p in job.inputs if os.path.isfile(p)]
    return {"key": job.key, "output": {job.output: _stat(job.output)}, "inputs": {p: _stat(p) for p in files}}


def finished(job: Job) -> bool:
    """True when this job ran to the end before and nothing it depends on changed since."""
    path = Path(job.run_dir) / RECORD
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return recorded == _record(job) and _stat(job.output) is not None


def _unseen(job: Job) -> str | None:
    """Why this node cannot run the job, if it cannot: an input it does not see, or a run directory it
    cannot write (paths must be on storage every node sees, at the same path)."""
    for path in job.inputs:
        if not os.access(path, os.R_OK):
            return f"cannot read {path}"
    existing = Path(job.run_dir)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not os.access(existing, os.W_OK):
        return f"cannot write the run directory {job.run_dir}"
    if not os.path.isfile(PIPELINE):
        return f"has no {PIPELINE}"
    return None


def child_error(log: Path) -> str | None:
    """pipeline.py's own one-line error ("error: ..."), the clearest reason there is."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    return next((line[len("error: ") :] for line in reversed(lines) if line.startswith("error: ")), None)


def run_job(job: Job) -> dict[str, Any]:
    """The Ray task's body: returns {"status": "done"|"failed", ...} (Cancelled propagates)."""
    from ..cluster.engine import node_name

    reason = _unseen(job)
    if reason:
        return {
            "status": "failed",
            "error": f"node {node_name()} {reason}: inputs, run directories, checkpoints "
            "and upstream clones must be on storage every node sees, at the same path (docs/SCALE.md)",
        }
    log = Path(job.run_dir) / LOG
    try:
        run_process(
            [sys.executable, str(PIPELINE), *job.argv],
            log_path=log,
            label=f"{job.label}: pipeline.py",
            cwd=Path(job.cwd),
            echo=None,
        )
    except StageFailed as exc:
        return {"status": "failed", "error": child_error(log) or str(exc), "log": str(log)}
    with atomic_file(Path(job.run_dir) / RECORD) as tmp:
        tmp.write_text(json.dumps(_record(job), indent=2))
    return {"status": "done", "output": job.output, "log": str(log)}
