"""Run directories: a manifest (inputs with hashes, resolved options, upstream commits, versions,
timings), one log per stage, and the fingerprints that let a rerun skip finished stages.

A run holds its directory's lock (core/runlock.py) from `open()` to the end of the process (or `close()`):
a second run on it is refused with exit 2. At the start, what a killed earlier run left behind is
cleared: its still-running upstream processes are ended (core/childrecords.py) and its temp files
(`.*.partial-<pid>`, of dead PIDs only) removed. Manifest saves merge this run's changes, stage by stage,
into the file as it is on disk and replace it atomically."""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

from .. import __version__
from . import childrecords
from .atomic import remove_dead_leftovers, write_text_atomic
from .errors import Cancelled, UserError
from .process import Progress, format_argv, run_process
from .runlock import STATE_DIR, RunDirBusy, RunLock

MANIFEST = "manifest.json"
_ABSENT = object()
# flock refused by the file system itself (an NFS mount without a lock daemon, some FUSE file systems): a
# run can still work there, only unguarded.
_NO_LOCKING = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS}


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
        return {
            "path": str(path.resolve()),
            "files": {str(p.relative_to(path)): describe_path(p)["sha256"] for p in files},
        }
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
        out = subprocess.run(["ffmpeg", "-hide_banner", "-version"], check=False, capture_output=True, text=True).stdout
        ffmpeg = out.split("\n", 1)[0]
    except OSError:
        pass
    versions = {
        "replace-actor-video": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "ffmpeg": ffmpeg,
    }
    for pkg in ("torch", "onnxruntime", "onnxruntime-gpu", "sam2", "diffusers", "transformers", "flash_attn"):
        versions[pkg] = _version(pkg)
    return versions


def now_iso() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def new_run_dir(runs_dir: str | Path, name: str) -> Path:
    """`<runs_dir>/<timestamp>-<name>`, with -2, -3 ... when it exists (a stage CLI's fresh run directory)."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path(runs_dir).resolve() / f"{stamp}-{name}"
    n = 1
    while run_dir.exists():
        n += 1
        run_dir = Path(runs_dir).resolve() / f"{stamp}-{name}-{n}"
    return run_dir


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
    _base: dict[str, Any] = field(default_factory=dict, repr=False)  # the manifest as last read or written
    _mutex: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _release: Callable[[], None] | None = field(default=None, repr=False)

    @classmethod
    def create(cls, runs_dir: str | Path, name: str, **kwargs: Any) -> RunContext:
        """A new run directory `<runs_dir>/<timestamp>-<name>` (nothing is created in a dry run)."""
        return cls.open(new_run_dir(runs_dir, name), **kwargs)

    def nested(self, name: str) -> RunContext:
        """A run directory inside this one, with the same dry-run, progress, cancel and echo (refine keeps its inner
        stages' records there, apart from the first pass's)."""
        return type(self).open(
            self.run_dir / name, dry_run=self.dry_run, on_progress=self.on_progress, cancel=self.cancel, echo=self.echo
        )

    @classmethod
    def open(cls, run_dir: str | Path, **kwargs: Any) -> RunContext:
        """Open (or start) the run directory `run_dir`, keeping an existing manifest for resuming. Except in
        a dry run (which creates nothing), this takes the directory's lock for the rest of the process
        (or until `close()`) and clears what a killed earlier run left there; UserError if another run
        holds it."""
        run_dir = Path(run_dir).resolve()
        ctx = cls(run_dir=run_dir, **kwargs)
        if not ctx.dry_run:
            ctx._claim()
        try:
            on_disk = ctx._read_manifest()
        except UserError:
            ctx.close()
            raise
        ctx._base = json.loads(json.dumps(on_disk or {}))
        ctx.manifest = on_disk or {"tool": "replace-actor-video", "created": now_iso(), "stages": {}}
        ctx.manifest.update(
            {"updated": now_iso(), "argv": sys.argv, "cwd": os.getcwd(), "versions": software_versions()}
        )
        return ctx

    def _claim(self) -> None:
        created = [p for p in (self.run_dir, *self.run_dir.parents) if not p.exists()]
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(
                f"{self.run_dir}: cannot use it as a run directory ({exc.strerror}); "
                "choose another --run_dir / --runs_dir"
            ) from None
        lock = RunLock(self.run_dir)
        try:
            lock.acquire()
        except RunDirBusy as exc:
            _release(lock, created)
            raise UserError(_busy_message(self.run_dir, exc)) from None
        except OSError as exc:
            if exc.errno not in _NO_LOCKING:
                _release(lock, created)
                raise UserError(
                    f"{self.run_dir}: cannot use it as a run directory ({exc.strerror}); "
                    "choose another --run_dir / --runs_dir"
                ) from None
            self.say(
                f"warning: {self.run_dir} cannot be locked on this file system ({exc.strerror}): a second "
                "run on it at the same time would not be refused"
            )
        self._release = weakref.finalize(self, _release, lock, created)
        try:
            self._clear_leftovers()
        except BaseException:
            self.close()
            raise

    def _clear_leftovers(self) -> None:
        """Before anything starts here: end the processes a killed earlier run left running, and remove
        its temp files (those of dead PIDs: a live writer, such as the Web UI, keeps its own)."""
        try:
            ended = childrecords.end_leftovers(self.run_dir)
        except childrecords.LiveRunProcesses as exc:
            raise UserError(f"{self.run_dir}: {exc}; wait for that run to finish or stop it") from None
        if ended:
            self.say(
                f"ended {len(ended)} process(es) an earlier run on {self.run_dir} left running "
                f"(PIDs {', '.join(map(str, ended))})"
            )
        removed = remove_dead_leftovers(self.run_dir)
        if removed:
            self.say(
                f"removed {len(removed)} temp file(s) of an earlier run: "
                f"{', '.join(str(p.relative_to(self.run_dir)) for p in removed[:5])}"
                f"{' ...' if len(removed) > 5 else ''}"
            )

    def close(self) -> None:
        """Release the run directory's lock (a run directory this context created and left empty is removed).
        Also happens when the context is garbage-collected or the process ends."""
        if self._release is not None:
            self._release()

    def __enter__(self) -> RunContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read_manifest(self) -> dict[str, Any] | None:
        path = self.run_dir / MANIFEST
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise UserError(
                f"{path}: cannot read it ({exc}); move it away to start this run directory afresh, "
                "or choose another --run_dir"
            ) from None
        if not isinstance(data, dict):
            raise UserError(f"{path}: not a manifest; move it away or choose another --run_dir")
        return data

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

    def note(self, stage: str, text: str) -> None:
        """A line of our own in the stage's log (beside the upstream output) and on the console."""
        if not self.dry_run:
            path = self.log_path(stage)
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as log:
                log.write(f"[rav] {text}\n")
        self.say(text)

    def step(
        self,
        label: str,
        argv: Sequence[str],
        *,
        stage: str,
        expected_outputs: Sequence[Path] = (),
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        runner: Callable[..., Any] | None = None,
        inputs: Sequence[Path] = (),
    ) -> float:
        """Run one external command of `stage` (or print it in a dry run); returns seconds taken. `runner`, with
        run_process's signature and a describe() method, runs it elsewhere (the warm generation worker). `inputs`,
        what the step reads, is for the plan (core/planning.PlanContext records the steps of a dry run)."""
        if self.dry_run:
            via = f" [on the {runner.describe()}]" if runner else ""
            print(f"[dry-run] {label}{via}: {format_argv(argv)}", file=self.echo or sys.stdout)
            return 0.0
        common = {
            "log_path": self.log_path(stage),
            "label": label,
            "cwd": cwd,
            "env": env,
            "expected_outputs": expected_outputs,
            "on_progress": self.on_progress,
            "echo": self.echo,
            "cancel": self.cancel,
        }
        if runner is not None:
            result = runner(argv, **common)
        else:
            result = run_process(argv, **common, record_dir=childrecords.records_dir(self.run_dir), tag=stage)
        record = {"label": label, "argv": result.argv, "seconds": round(result.seconds, 2)}
        if runner:
            record["via"] = runner.describe()
        self.stage_record(stage).setdefault("commands", []).append(record)
        self.save()
        return result.seconds

    # -- manifest ---------------------------------------------------------------------------------
    def stage_record(self, stage: str) -> dict[str, Any]:
        return self.manifest.setdefault("stages", {}).setdefault(stage, {})

    def begin_stage(
        self, stage: str, *, options: dict[str, Any], inputs: dict[str, Any], upstream: dict[str, Any], fp: str
    ) -> None:
        self.manifest["stages"][stage] = {
            "status": "running",
            "started": now_iso(),
            "fingerprint": fp,
            "options": options,
            "inputs": inputs,
            "upstream": upstream,
        }
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
    def running(
        self,
        stage: str,
        *,
        options: dict[str, Any],
        inputs: dict[str, Any],
        upstream: dict[str, Any],
        fp: str,
        outputs: Sequence[Path],
    ) -> Iterator[None]:
        """Record `stage` as running; done (with `outputs` described) when the block ends, or cancelled/failed."""
        self.begin_stage(stage, options=options, inputs=inputs, upstream=upstream, fp=fp)
        try:
            yield
        except BaseException as exc:
            with contextlib.suppress(UserError):  # the manifest cannot be written (disk full): keep the first error
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
        """Merge this run's changes (per top-level key, per stage record) into the manifest as it is on disk,
        and replace the file atomically. UserError (one line) when it cannot be written, e.g. disk full."""
        if self.dry_run:
            return
        path = self.run_dir / MANIFEST
        with self._mutex:
            mine = json.loads(json.dumps(self.manifest, ensure_ascii=False, default=str))
            merged = _merge(self._read_manifest() or {}, self._base, mine)
            merged["updated"] = now_iso()
            text = json.dumps(merged, indent=2, ensure_ascii=False)
            try:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                write_text_atomic(path, text)
            except OSError as exc:
                raise UserError(
                    f"cannot write {path}: {exc.strerror or exc}; free some space (or fix the "
                    "permissions) and run again: finished stages are kept"
                ) from None
            self._base = json.loads(text)
            self.manifest.clear()
            self.manifest.update(json.loads(text))


def _merge(disk: dict[str, Any], base: dict[str, Any], mine: dict[str, Any]) -> dict[str, Any]:
    """`disk` with what changed from `base` to `mine` applied: top-level keys one by one, and under "stages"
    one stage record at a time, so a record written meanwhile by another writer is kept."""

    def apply(target: dict[str, Any], old: dict[str, Any], new: dict[str, Any], skip: str | None = None) -> None:
        for key in old.keys() | new.keys():
            if key == skip:
                continue
            if key not in new:
                target.pop(key, None)
            elif new[key] != old.get(key, _ABSENT):
                target[key] = new[key]

    merged = dict(disk)
    apply(merged, base, mine, skip="stages")
    stages = dict(disk.get("stages") or {})
    apply(stages, base.get("stages") or {}, mine.get("stages") or {})
    merged["stages"] = stages
    return merged


def _busy_message(run_dir: Path, exc: RunDirBusy) -> str:
    holder = exc.holder
    if holder is None:
        who = f"another process holds its lock ({run_dir / STATE_DIR / 'lock'})"
    else:
        command = holder.command if len(holder.command) <= 240 else holder.command[:237] + "..."
        where = "" if holder.host == _hostname() else f" on {holder.host}"
        who = f"PID {holder.pid}{where} is running in it since {holder.since} ({command})"
    return f"{run_dir} is in use: {who}; wait for that run to finish or stop it, or choose another run directory"


def _hostname() -> str:
    import socket

    return socket.gethostname()


def _release(lock: RunLock, created: list[Path]) -> None:
    """Unlock; a run directory we created and that holds nothing but its lock goes again (a refused or
    failed-before-start run leaves nothing behind)."""
    if created and lock.run_dir.is_dir() and [p.name for p in lock.run_dir.iterdir()] in ([], [STATE_DIR]):
        shutil.rmtree(lock.state_dir, ignore_errors=True)
        _forget_created(created)
    lock.release()


def _forget_created(created: list[Path]) -> None:
    """Remove the folders we created (deepest first) while they are empty."""
    for folder in created:
        try:
            folder.rmdir()
        except OSError:
            return
