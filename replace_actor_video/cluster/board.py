"""What a person watching a batch sees: one line per job state change (with the overall counts and an ETA,
so a log or CI output tells the whole story), a live bar on a terminal, and a final table. The same
summary is kept as JSON (rewritten atomically at each change, so it is current even after a crash)."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from ..core.atomic import atomic_file
from ..core.rundir import now_iso
from .engine import Event

FINISHED = ("done", "skipped", "failed", "cancelled")


@dataclass
class JobState:
    key: str
    label: str
    status: str = "waiting"  # waiting (not submitted), queued, running, done, skipped, failed, cancelled
    node: str | None = None
    gpus: tuple[str, ...] = ()
    started: float | None = None
    finished: float | None = None
    attempts: int = 0
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float | None:
        return round(self.finished - self.started, 1) if self.started and self.finished else None

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "status": self.status,
            "node": self.node,
            "gpus": list(self.gpus),
            "started": _iso(self.started),
            "finished": _iso(self.finished),
            "seconds": self.seconds,
            "attempts": self.attempts,
            **self.result,
        }


def _iso(stamp: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(stamp)) if stamp else None


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class Board:
    """Job states for the lines, the bar, the table and the JSON summary."""

    def __init__(
        self,
        jobs: list[tuple[str, str]],
        *,
        title: str,
        summary_path: Path | None = None,
        out: TextIO = sys.stdout,
        extra: dict[str, Any] | None = None,
        prefix: str = "batch",
    ) -> None:
        self.prefix = prefix
        self.jobs = {key: JobState(key, label) for key, label in jobs}
        self.title = title
        self.summary_path = summary_path
        self.out = out
        self.extra = extra or {}
        self.began = time.time()
        self.bar = tqdm(
            total=len(self.jobs),
            unit="job",
            desc=title,
            file=sys.stderr,
            disable=None,
            leave=False,
            bar_format="{desc}: {bar} {n_fmt}/{total_fmt} {postfix}",
        )

    # -- state changes -----------------------------------------------------------------------------
    def skipped(self, key: str, note: str, result: dict[str, Any]) -> None:
        """A job that needs no run (finished earlier): counted as done without a task."""
        job = self.jobs[key]
        job.status, job.result = "skipped", result
        self._changed(job, note)

    def event(self, event: Event) -> None:
        job = self.jobs[event.key]
        if event.kind == "queued":
            job.status = "queued"
            self._changed(job, "queued")
        elif event.kind == "running":
            job.status, job.node, job.gpus, job.started = "running", event.node, event.gpus, event.time
            job.attempts += 1
            gpus = f" GPU {','.join(event.gpus)}" if event.gpus else ""
            again = f" (attempt {job.attempts}: the earlier one was lost)" if job.attempts > 1 else ""
            self._changed(job, f"running on {event.node}{gpus}{again}")
        elif job.status not in FINISHED:
            job.status, job.finished, job.result = event.kind, event.time, event.result
            if event.kind == "done":
                note = f"done in {duration(job.seconds)}" + (
                    f": {event.result['output']}" if event.result.get("output") else ""
                )
            elif event.kind == "failed":
                note = f"FAILED after {duration(job.seconds)}: {event.result.get('error', 'no reason given')}"
                if event.result.get("log"):
                    note += f" (log: {event.result['log']})"
            else:
                note = "cancelled"
            self._changed(job, note)

    def _changed(self, job: JobState, note: str) -> None:
        counts = self.counts()
        tqdm.write(f"[{self.prefix}] {job.label}: {note}  [{self.progress_text(counts)}]", file=self.out)
        self.bar.n = counts["done"] + counts["failed"] + counts["cancelled"]
        self.bar.set_postfix_str(self.progress_text(counts), refresh=True)
        self.write_summary()

    # -- views -------------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(("done", "running", "failed", "queued", "cancelled"), 0)
        for job in self.jobs.values():
            status = {"skipped": "done", "waiting": "queued"}.get(job.status, job.status)
            counts[status] += 1
        return counts

    def eta(self, counts: dict[str, int]) -> float | None:
        """Rate-based: the jobs finished by this run so far, over the time since the first one started."""
        ran = [j for j in self.jobs.values() if j.finished and j.status in ("done", "failed")]
        starts = [j.started for j in self.jobs.values() if j.started]
        left = counts["running"] + counts["queued"]
        if not left:
            return 0.0
        if not ran or not starts:
            return None
        per_job = (max(j.finished for j in ran) - min(starts)) / len(ran)
        return per_job * left

    def progress_text(self, counts: dict[str, int] | None = None) -> str:
        counts = counts or self.counts()
        eta = self.eta(counts)
        return (
            f"{counts['done']}/{len(self.jobs)} done, {counts['running']} running, {counts['failed']} failed, "
            f"{counts['queued']} queued"
            + (f", {counts['cancelled']} cancelled" if counts["cancelled"] else "")
            + f", ETA {duration(eta) if eta is not None else '?'}"
        )

    def summary(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "started": _iso(self.began),
            "updated": now_iso(),
            **self.extra,
            "counts": self.counts(),
            "jobs": [job.as_json() for job in self.jobs.values()],
        }

    def write_summary(self) -> None:
        if self.summary_path is None:
            return
        with atomic_file(self.summary_path) as tmp:
            tmp.write_text(json.dumps(self.summary(), indent=2, ensure_ascii=False))

    def close(self, *, table: bool = True) -> None:
        """End the bar and print the final table."""
        self.bar.close()
        self.write_summary()
        if not table:
            return
        rows = [("job", "status", "time", "node", "GPUs", "result")]
        for job in self.jobs.values():
            result = job.result.get("output") if job.status in ("done", "skipped") else job.result.get("error", "")
            rows.append(
                (
                    job.label,
                    job.status,
                    duration(job.seconds),
                    job.node or "-",
                    ",".join(job.gpus) or "-",
                    str(result or ""),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        print(f"[{self.prefix}] {self.title}: {self.progress_text()}", file=self.out)
        for row in rows:
            print(
                "  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[5], file=self.out
            )
        if self.summary_path is not None:
            print(f"[{self.prefix}] summary: {self.summary_path}", file=self.out)
        self.out.flush()
