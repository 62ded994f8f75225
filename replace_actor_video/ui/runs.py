"""The Runs tab's model: every run under the runs folder (UI jobs and runs started from a terminal), read
back from job.json and the manifests the stage CLIs write. No gradio."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.rundir import MANIFEST
from ..media.probe import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from .jobs import CONSOLE, JOB_FILE, Job, tail_text

# What a preprocessing folder holds, in the order the UI shows it.
PREPROCESS_FILES = (
    "src_ref.png",
    "src_pose.mp4",
    "src_face.mp4",
    "src_bg.mp4",
    "src_mask.mp4",
    "mask_preview.mp4",
    "mask_points.json",
)


@dataclass
class RunEntry:
    name: str
    folder: Path
    job: Job | None
    manifests: list[tuple[Path, dict[str, Any]]] = field(default_factory=list)

    @property
    def stage(self) -> str:
        if self.job:
            return self.job.title
        stages = [s for _, m in self.manifests for s in m.get("stages", {})]
        return " → ".join(stages) or "?"

    @property
    def status(self) -> str:
        if self.job:
            return self.job.status
        states = [r.get("status", "?") for _, m in self.manifests for r in m.get("stages", {}).values()]
        for state in ("running", "failed", "cancelled"):
            if state in states:
                return state
        return "done" if states else "?"

    @property
    def created(self) -> str:
        if self.job:
            return self.job.created
        return min((m.get("created", "") for _, m in self.manifests), default="")

    def stage_records(self) -> dict[str, dict[str, Any]]:
        """Every stage record of every manifest of this run, by stage name."""
        return {name: record for _, m in self.manifests for name, record in m.get("stages", {}).items()}

    def inputs(self) -> list[Path]:
        """The input files (videos, images) of this run: the job's copies, else what the manifest names."""
        paths = []
        for record in self.stage_records().values():
            for desc in record.get("inputs", {}).values():
                if isinstance(desc, dict) and desc.get("path") and Path(desc["path"]).is_file():
                    paths.append(Path(desc["path"]))
        if not paths and self.job:
            paths = sorted((self.folder / "inputs").glob("*"))
        return _unique(p for p in paths if p.suffix.lower() in VIDEO_SUFFIXES + IMAGE_SUFFIXES)

    def outputs(self) -> list[Path]:
        """Files and folders the stages recorded as written (and still present)."""
        found = [Path(p) for record in self.stage_records().values() for p in record.get("outputs", {})]
        found += [Path(m["result"]) for _, m in self.manifests if m.get("result")]
        return _unique(p for p in found if p.exists())

    def preprocess_folders(self) -> list[Path]:
        return [p for p in self.outputs() if p.is_dir() and (p / "src_pose.mp4").is_file()]

    def result_files(self) -> list[Path]:
        return [p for p in self.outputs() if p.is_file()]

    def downloads(self) -> list[Path]:
        files = list(self.result_files())
        for folder in self.preprocess_folders():
            files += [folder / n for n in PREPROCESS_FILES if (folder / n).is_file()]
        files += self.logs()
        return _unique(files)

    def logs(self) -> list[Path]:
        logs = [self.folder / CONSOLE] if (self.folder / CONSOLE).is_file() else []
        for run_dir, _ in self.manifests:
            logs += sorted((run_dir / "logs").glob("*.log"))
        return _unique(logs)

    def log_tail(self, lines: int = 60) -> str:
        logs = self.logs()
        return tail_text(logs[0], lines) if logs else ""

    def settings(self) -> dict[str, Any]:
        """What was asked (the form) and what each stage resolved it to (the manifest)."""
        out: dict[str, Any] = {}
        if self.job:
            out["command"] = self.job.display_command
            out["form"] = self.job.values
        for name, record in self.stage_records().items():
            out[f"{name} options"] = record.get("options", {})
        return out


def _unique(paths) -> list[Path]:
    seen, out = set(), []
    for p in paths:
        key = Path(p).resolve()
        if key not in seen:
            seen.add(key)
            out.append(Path(p))
    return out


def _manifest(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def manifests_of(folder: Path, extra: str | None) -> list[tuple[Path, dict[str, Any]]]:
    """The manifests of a job folder: its own (pipeline), nested run directories (stages) and a linked one."""
    candidates = [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]
    if extra:
        candidates.append(Path(extra))
    found = []
    for c in _unique(candidates):
        m = _manifest(c)
        if m is not None:
            found.append((c.resolve(), m))
    return found


def list_runs(runs_dir: Path, jobs: dict[str, Job]) -> list[RunEntry]:
    """Newest first. `jobs` are the queue's live records (fresher than job.json while a job runs)."""
    entries, linked = [], set()
    if not runs_dir.is_dir():
        return []
    folders = sorted((p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")), reverse=True)
    for folder in folders:
        if (folder / JOB_FILE).is_file():
            job = jobs.get(folder.name)
            if job is None:
                try:
                    job = Job.load(folder)
                except (ValueError, TypeError, OSError):
                    job = None
            entry = RunEntry(folder.name, folder, job, manifests_of(folder, job.run_dir if job else None))
            if job and job.run_dir:
                linked.add(Path(job.run_dir).resolve())
            entries.append(entry)
        elif (folder / MANIFEST).is_file():
            entries.append(RunEntry(folder.name, folder, None, manifests_of(folder, None)))
    entries = [e for e in entries if e.job or e.folder.resolve() not in linked]
    return sorted(entries, key=lambda e: (e.created, e.name), reverse=True)


def kind_of(path: Path) -> str:
    suffix = path.suffix.lower()
    return "video" if suffix in VIDEO_SUFFIXES else "image" if suffix in IMAGE_SUFFIXES else "file"
