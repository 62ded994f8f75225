"""Run directories: a manifest (inputs with hashes, resolved options, upstream commits, versions,
timings), one log per stage, and the fingerprints that let a rerun skip finished stages."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TextIO

from .. import __version__
from .errors import Cancelled
from .process import Progress, format_argv, run_process

MANIFEST = "manifest.json"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_path(path: str | Path) -> dict[str, Any]:
    """Identity of an input or output: a file's hash, or each file of a directory."""
    path = Path(path)
    if path.is_file():
        return {"path": str(path.resolve()), "bytes": path.stat().st_size, "sha256": sha256_file(path)}
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return {"path": str(path.resolve()),
                "files": {str(p.relative_to(path)): describe_path(p)["sha256"] for p in files}}
    return {"path": str(path), "missing": True}


def fingerprint(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def software_versions() -> dict[str, Any]:
    ffmpeg = None
    try:
        out = subprocess.run(["ffmpeg", "-hide_banner", "-version"], capture_output=True, text=True).stdout
        ffmpeg = out.split("\n", 1)[0]
    except OSError:
        pass
    versions = {"replace-actor-video": __version__, "python": sys.version.split()[0],
                "platform": platform.platform(), "ffmpeg": ffmpeg}
    for pkg in ("torch", "onnxruntime", "onnxruntime-gpu", "sam2", "diffusers", "transformers", "flash_attn"):
        versions[pkg] = _version(pkg)
    return versions


def now_iso() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


@dataclass
class RunContext:
    """Everything a stage needs to run its steps: where to log, whether this is a dry run, and the
    progress/cancel hooks of whoever drives it (CLI, pipeline or UI)."""

    run_dir: Path
    dry_run: bool = False
    on_progress: Callable[[Progress], None] | None = None
    cancel: threading.Event | None = None
    echo: TextIO | None = sys.stdout
    manifest: dict[str, Any] = field(default_factory=dict)
    _started: dict[str, float] = field(default_factory=dict, repr=False)

    @classmethod
    def create(cls, runs_dir: str | Path, name: str, **kwargs: Any) -> "RunContext":
        """A new run directory `<runs_dir>/<timestamp>-<name>` (nothing is created in a dry run)."""
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = Path(runs_dir).resolve() / f"{stamp}-{name}"
        n = 1
        while run_dir.exists():
            n += 1
            run_dir = Path(runs_dir).resolve() / f"{stamp}-{name}-{n}"
        return cls.open(run_dir, **kwargs)

    @classmethod
    def open(cls, run_dir: str | Path, **kwargs: Any) -> "RunContext":
        """Open (or start) the run directory `run_dir`, keeping an existing manifest for resuming."""
        run_dir = Path(run_dir).resolve()
        ctx = cls(run_dir=run_dir, **kwargs)
        manifest_path = run_dir / MANIFEST
        if manifest_path.is_file():
            ctx.manifest = json.loads(manifest_path.read_text())
        else:
            ctx.manifest = {"tool": "replace-actor-video", "created": now_iso(), "stages": {}}
        ctx.manifest.update({"updated": now_iso(), "argv": sys.argv, "cwd": os.getcwd(),
                             "versions": software_versions()})
        return ctx

    # -- logs and scratch -------------------------------------------------------------------------
    def log_path(self, stage: str) -> Path:
        return self.run_dir / "logs" / f"{stage}.log"

    def scratch(self, stage: str) -> Path:
        """A working directory for an upstream program, so files it drops in its cwd stay here."""
        path = self.run_dir / "work" / stage
        if not self.dry_run:
            path.mkdir(parents=True, exist_ok=True)
        return path

    def say(self, text: str) -> None:
        if self.echo:
            self.echo.write(f"[rav] {text}\n")
            self.echo.flush()

    def step(self, label: str, argv: Sequence[str], *, stage: str, expected_outputs: Sequence[Path] = (),
             cwd: Path | None = None, env: dict[str, str] | None = None, runner: Callable[..., Any] | None = None,
             ) -> float:
        """Run one external command of `stage` (or print it in a dry run); returns seconds taken. `runner`, with
        run_process's signature and a describe() method, runs it elsewhere (the warm generation worker)."""
        if self.dry_run:
            via = f" [on the {runner.describe()}]" if runner else ""
            print(f"[dry-run] {label}{via}: {format_argv(argv)}", file=self.echo or sys.stdout)
            return 0.0
        result = (runner or run_process)(argv, log_path=self.log_path(stage), label=label, cwd=cwd, env=env,
                                         expected_outputs=expected_outputs, on_progress=self.on_progress,
                                         echo=self.echo, cancel=self.cancel)
        record = {"label": label, "argv": result.argv, "seconds": round(result.seconds, 2)}
        if runner:
            record["via"] = runner.describe()
        self.stage_record(stage).setdefault("commands", []).append(record)
        self.save()
        return result.seconds

    # -- manifest ---------------------------------------------------------------------------------
    def stage_record(self, stage: str) -> dict[str, Any]:
        return self.manifest.setdefault("stages", {}).setdefault(stage, {})

    def begin_stage(self, stage: str, *, options: dict[str, Any], inputs: dict[str, Any],
                    upstream: dict[str, Any], fp: str) -> None:
        self.manifest["stages"][stage] = {"status": "running", "started": now_iso(), "fingerprint": fp,
                                          "options": options, "inputs": inputs, "upstream": upstream}
        self._started[stage] = time.monotonic()
        self.save()

    def end_stage(self, stage: str, *, status: str, outputs: Sequence[Path] = (), error: str | None = None) -> None:
        record = self.stage_record(stage)
        record["status"] = status
        record["finished"] = now_iso()
        started = self._started.get(stage)
        if started is not None:
            record["seconds"] = round(time.monotonic() - started, 2)
        if outputs:
            record["outputs"] = {str(Path(p).resolve()): describe_path(p) for p in outputs}
        if error:
            record["error"] = error
        self.save()

    @contextlib.contextmanager
    def running(self, stage: str, *, options: dict[str, Any], inputs: dict[str, Any], upstream: dict[str, Any],
                fp: str, outputs: Sequence[Path]) -> Iterator[None]:
        """Record `stage` as running; done (with `outputs` described) when the block ends, or cancelled/failed."""
        self.begin_stage(stage, options=options, inputs=inputs, upstream=upstream, fp=fp)
        try:
            yield
        except BaseException as exc:
            self.abort_stage(stage, exc)
            raise
        self.end_stage(stage, status="done", outputs=outputs)

    def remove_scratch(self, stage: str) -> None:
        """Drop a stage's working directory (frame folders can take gigabytes)."""
        path = self.run_dir / "work" / stage
        shutil.rmtree(path, ignore_errors=True)
        with contextlib.suppress(OSError):
            path.parent.rmdir()

    def abort_stage(self, stage: str, exc: BaseException) -> None:
        """Record why `stage` stopped: cancelled (Ctrl-C, SIGTERM, UI cancel) or failed."""
        cancelled = isinstance(exc, (KeyboardInterrupt, Cancelled))
        self.end_stage(stage, status="cancelled" if cancelled else "failed", error=str(exc) or type(exc).__name__)

    def owns(self, stage: str, path: Path) -> bool:
        """True when `path` was written by an earlier run of `stage` in this run directory."""
        return str(Path(path).resolve()) in self.manifest.get("stages", {}).get(stage, {}).get("outputs", {})

    def is_done(self, stage: str, fp: str) -> bool:
        """True when `stage` finished with the same fingerprint and its outputs are still as recorded."""
        record = self.manifest.get("stages", {}).get(stage)
        if not record or record.get("status") != "done" or record.get("fingerprint") != fp:
            return False
        return all(describe_path(path) == desc for path, desc in record.get("outputs", {}).items())

    def save(self) -> None:
        if self.dry_run:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.manifest["updated"] = now_iso()
        tmp = self.run_dir / f".{MANIFEST}.partial-{os.getpid()}"
        tmp.write_text(json.dumps(self.manifest, indent=2, ensure_ascii=False, default=str))
        os.replace(tmp, self.run_dir / MANIFEST)
