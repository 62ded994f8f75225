"""Finding, starting, using and stopping warm generation workers (runtime/worker.py) from our side of the process
boundary. The seam for the generation stage (`--worker auto|start|off`), the Web UI and the batch command:

    from replace_actor_video.upstream.wan import worker_client as workers
    key = workers.key_for(call)                      # call: upstream.wan.generate.GenerateCall of a single-GPU job
    handle = workers.find_worker(key)                # a running worker with these model options, or None
    handle = handle or workers.start_worker(call)    # start one (it loads the models with its first job)
    ctx.step(label, call.argv(), stage=..., runner=workers.WorkerRunner(handle))   # instead of a cold process
    workers.list_workers(); workers.stop_worker(handle)  # or: python -m ...upstream.wan.worker_client

A worker is keyed by everything that shapes the loaded models (WorkerKey): the Python and Wan2.2 clone, the
checkpoint, the LoRA files (path, weight, size and mtime), the relighting LoRA, the attention route, --compile,
--fp8, --vae_bf16, --t5_cpu, --convert_model_dtype, the memory profile and RAV_GPU_MEMORY_CAP_GIB, the colour
match (its hook goes on at the worker's setup), the visible GPUs and PYTHONPATH. Its socket and state file live in
a folder only this user can open (RAV_WORKER_DIR, default /tmp/rav-workers-<uid>).

WorkerRunner has the process runner's contract (run_process): the job's output goes to the stage log and the
console with progress parsed; Ctrl-C, SIGTERM or the run's cancel event cancel the job (the worker ends it within
one DiT forward and keeps its models; if it does not answer within the grace period its process tree is ended);
a failed job raises StageFailed with the last error line, a missing output too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import psutil

from ...core.errors import Cancelled, StageFailed, UserError
from ...core.process import ProcessResult, format_argv, kill_tree, start_detached, tail_hint
from ...core.progress import Progress, parse_progress
from .generate import LAUNCHER_FILE as LAUNCHER
from .generate import GenerateCall, lora_files
from .memory_plan import CAP_ENV

WORKER_SCRIPT = Path(__file__).with_name("runtime") / "worker.py"
IDLE_TIMEOUT_S = 900.0  # default; RAV_WORKER_IDLE_S overrides
START_TIMEOUT_S = 60.0  # until the new worker's socket answers (it binds before importing anything heavy)
CANCEL_GRACE_S = 30.0  # a cancelled job ends within one DiT forward (~10 s at 720p on an H200)


def worker_dir() -> Path:
    """The folder of the workers' sockets and state files: this user's alone (0700)."""
    path = Path(os.environ.get("RAV_WORKER_DIR") or f"/tmp/rav-workers-{os.getuid()}")
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise UserError(
            f"{path}: the warm-worker folder must belong to you with mode 0700; remove it or set "
            "RAV_WORKER_DIR to a private folder"
        )
    return path


def idle_timeout() -> float:
    return float(os.environ.get("RAV_WORKER_IDLE_S", IDLE_TIMEOUT_S))


# Every argument generate.py passes to wan.WanAnimate(...), and where the key covers it (tests/test_worker.py checks
# this list against the clone's generate.py: a new upstream argument fails the test until it is mapped here).
MODEL_ARGUMENTS = {
    "config": "task (always animate-14B)",
    "checkpoint_dir": "ckpt_dir",
    "device_id": "gpus",
    "rank": "single GPU (rank 0)",
    "t5_fsdp": "single GPU (no FSDP)",
    "dit_fsdp": "single GPU (no FSDP)",
    "use_sp": "single GPU (no sequence parallel)",
    "t5_cpu": "t5_cpu",
    "convert_model_dtype": "convert_model_dtype",
    "use_relighting_lora": "use_relighting_lora",
}


@dataclass(frozen=True)
class WorkerKey:
    """Everything that shapes a worker's loaded models; two jobs with equal keys can share one worker."""

    python: str
    wan22_dir: str
    ckpt_dir: str
    attention: str
    loras: tuple[tuple[str, float, int, int], ...]  # path, weight, size, mtime_ns
    compile: bool
    fp8: bool
    vae_bf16: bool
    use_relighting_lora: bool
    t5_cpu: bool
    convert_model_dtype: bool
    gpus: str  # CUDA_VISIBLE_DEVICES
    pythonpath: str
    fastload: str  # RAV_FASTLOAD
    memory_profile: str  # where the DiT's weights live (runtime/memory.py), resolved (never auto)
    memory_cap: str  # RAV_GPU_MEMORY_CAP_GIB
    color_match: tuple[str, float, str]  # method, strength, anchor: hooked into generate() once, at the worker's setup

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(dataclasses.asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def _file_identity(path: Path) -> tuple[int, int]:
    try:
        info = path.stat()
    except OSError:
        return (-1, -1)
    return (info.st_size, info.st_mtime_ns)


def key_for(call: GenerateCall, *, python: str = sys.executable, env: Mapping[str, str] | None = None) -> WorkerKey:
    env = os.environ if env is None else env
    opts = call.opts
    return WorkerKey(
        python=str(python),
        wan22_dir=str(Path(opts.wan22_dir).resolve()),
        ckpt_dir=str(Path(opts.ckpt_dir).resolve()),
        attention=opts.attention,
        loras=tuple((str(p), float(w), *_file_identity(p)) for p, w in lora_files(opts)),
        compile=opts.compile,
        fp8=opts.fp8,
        vae_bf16=opts.vae_bf16,
        use_relighting_lora=opts.use_relighting_lora,
        t5_cpu=opts.t5_cpu,
        convert_model_dtype=opts.convert_model_dtype,
        gpus=env.get("CUDA_VISIBLE_DEVICES", ""),
        pythonpath=env.get("PYTHONPATH", ""),
        fastload=env.get("RAV_FASTLOAD", "1"),
        memory_profile=opts.memory_profile,
        memory_cap=env.get(CAP_ENV, ""),
        color_match=(opts.color_match, opts.color_match_strength, opts.color_match_anchor),
    )


@dataclass(frozen=True)
class WorkerHandle:
    digest: str
    pid: int
    socket: Path
    log: Path


def _paths(digest: str) -> tuple[Path, Path, Path]:
    base = worker_dir() / digest
    return base.with_suffix(".sock"), base.with_suffix(".json"), base.with_suffix(".log")


def _request(path: Path, message: dict[str, Any], timeout: float = 5.0) -> dict[str, Any] | None:
    """One request, one answer (ping, shutdown); None when nothing answers."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall((json.dumps(message) + "\n").encode())
            line = sock.makefile("rb").readline()
    except OSError:
        return None
    try:
        return json.loads(line) if line else None
    except ValueError:
        return None


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _handle_from_state(state_path: Path) -> WorkerHandle | None:
    """The worker a state file describes, if it is alive and answers as that key; stale files are removed."""
    try:
        state = json.loads(state_path.read_text())
    except (OSError, ValueError):
        return None
    sock, _, log = _paths(state_path.stem)
    answer = _request(sock, {"op": "ping"}) if _alive(int(state.get("pid", -1))) else None
    if answer is None or answer.get("key") != state_path.stem:
        if not _alive(int(state.get("pid", -1))):
            for path in (state_path, sock):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        return None
    return WorkerHandle(state_path.stem, int(state["pid"]), sock, log)


def find_worker(key: WorkerKey) -> WorkerHandle | None:
    """A running worker whose models match `key`."""
    return _handle_from_state(_paths(key.digest())[1])


def list_workers() -> list[dict[str, Any]]:
    """Every running worker of this user: its handle fields and its state (busy, jobs, models loaded, idle)."""
    out = []
    for state_path in sorted(worker_dir().glob("*.json")):
        handle = _handle_from_state(state_path)
        if handle is None:
            continue
        state = json.loads(state_path.read_text())
        out.append(
            {
                **dataclasses.asdict(handle),
                "own": state.get("own", {}),
                **(_request(handle.socket, {"op": "ping"}) or {}),
            }
        )
    return out


def launcher_options(call: GenerateCall) -> list[str]:
    """The launcher options of `call.argv()` (between the launcher path and `--`)."""
    argv = call.argv()
    start = argv.index(str(LAUNCHER)) + 1
    return argv[start : argv.index("--")]


def start_worker(
    call: GenerateCall,
    *,
    python: str = sys.executable,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> WorkerHandle:
    """Start a worker for the model options of `call` (a single-GPU job) and wait until its socket answers. Its
    models load with its first job; it exits `timeout` seconds (default RAV_WORKER_IDLE_S or 900) after its last."""
    if call.nproc > 1:
        raise UserError("a warm worker runs single-GPU jobs; --multi_gpu runs cold")
    env = dict(os.environ if env is None else env)
    key = key_for(call, python=python, env=env)
    running = find_worker(key)
    if running is not None:
        return running
    sock, state, log = _paths(key.digest())
    own = launcher_options(dataclasses.replace(call, opts=dataclasses.replace(call.opts, negative_prompt=None)))
    # (the negative prompt comes per job)
    argv = [
        python,
        str(WORKER_SCRIPT),
        "--socket",
        str(sock),
        "--key",
        key.digest(),
        "--state",
        str(state),
        "--idle_timeout",
        str(idle_timeout() if timeout is None else timeout),
        "--",
        *own,
    ]
    pid = start_detached(argv, log_path=log, env=env, cwd=worker_dir())
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if _request(sock, {"op": "ping"}, timeout=1.0) is not None:
            return WorkerHandle(key.digest(), pid, sock, log)
        if not _alive(pid):
            break
        time.sleep(0.1)
    kill_tree(pid)
    raise StageFailed(f"the warm worker did not start{tail_hint(log)}; its log: {log}")


def ping(handle: WorkerHandle) -> dict[str, Any] | None:
    """The worker's state: ready (setup done), busy, queued, jobs, models_loaded, idle_s; None if it is gone."""
    return _request(handle.socket, {"op": "ping"})


def stop_worker(handle: WorkerHandle, *, timeout: float = CANCEL_GRACE_S) -> None:
    """Ask the worker to exit (a running job is cancelled); end its process tree if it does not."""
    _request(handle.socket, {"op": "shutdown"})
    deadline = time.monotonic() + timeout
    while _alive(handle.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(handle.pid):
        kill_tree(handle.pid)


class _Signals:
    """SIGTERM/SIGHUP while a job runs (main thread only) become a cancel, as in the process runner."""

    def __enter__(self):
        self.received: str | None = None
        self._old = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGHUP):
                self._old[sig] = signal.signal(sig, self._note)
        return self

    def _note(self, signum, _frame):
        self.received = self.received or signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        return False


@dataclass
class WorkerRunner:
    """run_process's contract, for the launcher argv of a single-GPU generation, on a warm worker."""

    handle: WorkerHandle

    def describe(self) -> str:
        return f"warm worker pid {self.handle.pid} ({self.handle.digest}; log {self.handle.log})"

    def __call__(
        self,
        argv: Sequence[str],
        *,
        log_path: Path,
        label: str,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        expected_outputs: Sequence[Path] = (),
        on_progress: Callable[[Progress], None] | None = None,
        echo: TextIO | None = sys.stdout,
        cancel: threading.Event | None = None,
    ) -> ProcessResult:
        argv = [str(a) for a in argv]
        if len(argv) < 2 or Path(argv[1]) != LAUNCHER:
            raise ValueError(f"a warm worker runs the Wan launcher's argv, not {format_argv(argv[:2])}")
        log_path = Path(log_path)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with open(log_path, "a", encoding="utf-8") as log, _Signals() as signals:

            def say(line: str) -> None:
                log.write(line)
                log.flush()
                if echo:
                    echo.write(line)
                    echo.flush()
                progress = parse_progress(line) if on_progress else None
                if progress:
                    on_progress(progress)

            say(f"[rav] {label} on the {self.describe()}: {format_argv(argv)}\n")
            result = self._run(argv[2:], say, signals, cancel, label)
            seconds = time.monotonic() - started
            log.write(f"[rav] {label}: worker job {'done' if result.get('ok') else 'ended'} after {seconds:.1f}s\n")
        if result.get("cancelled"):
            raise Cancelled(f"{label} cancelled; the warm worker ended the job")
        if not result.get("ok"):
            raise StageFailed(
                f"{label} failed on the warm worker ({result.get('error') or 'no answer'})"
                f"{tail_hint(log_path)}; full log: {log_path}"
            )
        missing = [str(p) for p in expected_outputs if not Path(p).exists() or Path(p).stat().st_size == 0]
        if missing:
            raise StageFailed(
                f"{label} ended but did not write {', '.join(missing)}{tail_hint(log_path)}; full log: {log_path}"
            )
        return ProcessResult(argv, seconds, log_path)

    def _run(self, job_argv, say, signals, cancel, label) -> dict[str, Any]:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(self.handle.socket))
        except OSError as exc:
            sock.close()
            raise StageFailed(f"{label}: the warm worker pid {self.handle.pid} does not answer ({exc})") from None
        messages = _Messages(sock)
        sock.sendall((json.dumps({"op": "run", "argv": job_argv}) + "\n").encode())
        cancel_sent = None
        try:
            while True:
                for message in messages.poll(0.2):
                    if "out" in message:
                        say(message["out"])
                    elif "done" in message:
                        return message["done"]
                    elif message.get("status") == "queued" and message.get("ahead"):
                        say(f"[rav] {label}: waiting for {message['ahead']} job(s) on the warm worker\n")
                if messages.closed:
                    return {"ok": False, "error": "the warm worker closed the connection (it died?)"}
                wanted = signals.received or (cancel is not None and cancel.is_set())
                if wanted and cancel_sent is None:
                    cancel_sent = self._cancel(sock, say, label)
                if cancel_sent is not None and time.monotonic() - cancel_sent > CANCEL_GRACE_S:
                    say(
                        f"[rav] {label}: the warm worker did not end the job within {CANCEL_GRACE_S:.0f} s: "
                        "ending its process tree\n"
                    )
                    kill_tree(self.handle.pid)
                    return {"ok": False, "cancelled": True}
        except KeyboardInterrupt:
            if cancel_sent is None:
                self._cancel(sock, say, label)
            return self._await_cancel(messages, say, label)
        finally:
            sock.close()

    def _cancel(self, sock, say, label) -> float:
        say(f"[rav] {label}: cancelling the job on the warm worker\n")
        with contextlib.suppress(OSError):
            sock.sendall(b'{"op": "cancel"}\n')
        return time.monotonic()

    def _await_cancel(self, messages, say, label) -> dict[str, Any]:
        deadline = time.monotonic() + CANCEL_GRACE_S
        try:
            while time.monotonic() < deadline and not messages.closed:
                for message in messages.poll(0.2):
                    if "out" in message:
                        say(message["out"])
                    elif "done" in message:
                        return {**message["done"], "cancelled": True}
        except KeyboardInterrupt:
            pass
        kill_tree(self.handle.pid)
        return {"ok": False, "cancelled": True}


class _Messages:
    """JSON lines from a socket, read without blocking longer than the poll interval."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = b""
        self.closed = False

    def poll(self, timeout: float) -> list[dict[str, Any]]:
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return []
        except OSError:
            self.closed = True
            return []
        if not chunk:
            self.closed = True
        self.buffer += chunk
        out = []
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m replace_actor_video.upstream.wan.worker_client [list | stop [DIGEST|--all]]`"""
    args = list(sys.argv[1:] if argv is None else argv) or ["list"]
    workers = list_workers()
    if args[0] == "list":
        for w in workers:
            print(
                f"{w['digest']}  pid {w['pid']}  {'busy' if w.get('busy') else 'idle'} {w.get('idle_s', '?')} s  "
                f"jobs {w.get('jobs', 0)}  models {'loaded' if w.get('models_loaded') else 'not loaded'}  "
                f"attention {w['own'].get('attention')}  log {w['log']}"
            )
        if not workers:
            print("no warm generation worker is running")
        return 0
    if args[0] == "stop":
        chosen = [w for w in workers if "--all" in args[1:] or w["digest"] in args[1:]]
        for w in chosen:
            stop_worker(WorkerHandle(w["digest"], w["pid"], Path(w["socket"]), Path(w["log"])))
            print(f"stopped {w['digest']} (pid {w['pid']})")
        return 0 if chosen or not args[1:] else 1
    print(
        "usage: python -m replace_actor_video.upstream.wan.worker_client [list | stop DIGEST... | stop --all]",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
