"""Ray as the engine for many jobs: a local instance by default, a running cluster with --address.

Each job is one Ray task that asks for the GPUs it needs; Ray places it on a node with them free and sets
CUDA_VISIBLE_DEVICES for it, so the upstream programs the task starts see exactly those GPUs. Nothing here
schedules: we submit, watch (`ray.wait`), hear when a task starts (a `ray.util.queue.Queue` the tasks write
to) and cancel (`ray.cancel`, which raises KeyboardInterrupt in a running task, so our process runner ends
its upstream tree). Ray is imported only here and only when a batch really runs (a dry run needs none)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import Cancelled, UserError
from ..core.options import option
from ..core.process import GRACE_SECONDS, REPO_ROOT

# We pass only small records between driver and tasks, so a small object store keeps a local instance
# light (Ray's default reserves 30% of RAM).
LOCAL_OBJECT_STORE_BYTES = 128 * 1024 * 1024
# After a cancel, how long running tasks get to end their upstream trees (the runner's SIGTERM → SIGKILL
# grace, twice: pipeline.py ends its own children within one).
CANCEL_WAIT_SECONDS = 3 * GRACE_SECONDS + 5


@dataclass(kw_only=True)
class EngineOptions:
    """Engine (Ray)"""

    address: str | None = option(
        None,
        help="Ray cluster to join: auto (the one `ray start` runs on this machine, "
        "or $RAY_ADDRESS) or ray://HOST:PORT; default: a local Ray instance on this "
        "machine",
        group="engine",
    )
    num_gpus: int | None = option(
        None,
        help="local instance only: GPUs Ray hands out (default: every GPU it "
        "detects; more than the machine has makes logical GPUs, e.g. for tests)",
        group="engine",
    )
    num_cpus: int | None = option(
        None, help="local instance only: CPUs Ray hands out (default: every core)", group="engine"
    )
    cpus_per_job: int = option(
        1,
        help="CPUs Ray reserves for each job; Ray also sets the job's OMP_NUM_THREADS "
        "to it (raise it for CPU-heavy jobs such as --t5_cpu)",
        group="engine",
    )
    max_retries: int = option(
        2,
        help="times a job lost with its node or worker process is started again "
        "(it resumes from its run directory); a job that fails is not retried",
        group="engine",
    )


def validate(opts: EngineOptions) -> None:
    if opts.address is not None and (opts.num_gpus is not None or opts.num_cpus is not None):
        raise UserError(
            "--num_gpus/--num_cpus size a local Ray instance; a cluster joined with --address has "
            "the resources its nodes were started with (ray start --num-gpus)"
        )
    if opts.max_retries < 0 or (opts.num_gpus or 0) < 0 or (opts.num_cpus or 1) < 1 or opts.cpus_per_job < 1:
        raise UserError(
            "--max_retries and --num_gpus cannot be negative; --num_cpus and --cpus_per_job must be at least 1"
        )


@dataclass(frozen=True)
class Task:
    """One job for Ray: `body(*args)` runs on a node with `num_gpus` GPUs reserved and returns a small
    JSON-ready dict with at least "status" ("done" or "failed")."""

    key: str
    label: str
    args: tuple[Any, ...]
    num_gpus: float = 1


@dataclass(frozen=True)
class Event:
    """A task's state change as the driver sees it."""

    kind: str  # queued, running, done, failed, cancelled
    key: str
    time: float
    node: str | None = None
    gpus: tuple[str, ...] = ()
    result: dict[str, Any] = field(default_factory=dict)


def connect(opts: EngineOptions) -> None:
    """Start a local Ray instance (no --address) or join a cluster.

    Every task worker gets this repository first on PYTHONPATH, so the task bodies import from the same
    checkout on every node (which must therefore be at the same path everywhere: docs/SCALE.md)."""
    import ray

    validate(opts)
    pythonpath = os.pathsep.join([str(REPO_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])
    common = {
        "runtime_env": {"env_vars": {"PYTHONPATH": pythonpath}},
        "log_to_driver": False,
        "logging_level": "WARNING",
    }
    # Ray's notice that a new local instance uses token authentication (its default) is not news to act on.
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    try:
        if opts.address is None:
            ray.init(
                address="local",
                num_gpus=opts.num_gpus,
                num_cpus=opts.num_cpus,
                include_dashboard=False,
                object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                **common,
            )
        else:
            ray.init(address=opts.address, **common)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = "start a local Ray instance" if opts.address is None else f"join the Ray cluster at {opts.address}"
        raise UserError(
            f"cannot {where} ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); see docs/SCALE.md"
        ) from None


def shutdown() -> None:
    import ray

    ray.shutdown()


def _task_body(body: Callable[..., dict[str, Any]], key: str, events: Any, *args: Any) -> dict[str, Any]:
    """What runs on the node: say where we are, then the job itself."""
    import ray

    events.put(
        {
            "kind": "running",
            "key": key,
            "time": time.time(),
            "node": node_name(),
            "gpus": [str(g) for g in ray.get_gpu_ids()],
        }
    )
    return body(*args)


def node_name() -> str:
    """The host name and IP of the node running the calling task (for progress lines and error messages)."""
    import ray

    return f"{socket.gethostname()} ({ray.util.get_node_ip_address()})"


class _StopOnSignals:
    """SIGTERM/SIGHUP end the batch like Ctrl-C: the handler only records it (raising from a handler could
    land inside Ray's client code); the wait loop sees it within a poll."""

    def __init__(self) -> None:
        self.received = threading.Event()

    def __enter__(self) -> _StopOnSignals:
        self._old = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGHUP):
                self._old[sig] = signal.signal(sig, lambda _s, _f: self.received.set())
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def run_tasks(
    body: Callable[..., dict[str, Any]],
    tasks: Sequence[Task],
    *,
    opts: EngineOptions,
    on_event: Callable[[Event], None],
    poll: float = 0.5,
) -> dict[str, dict[str, Any]]:
    """Submit every task, report each state change to `on_event`, and return each task's result by key.

    A task that raises or whose node is lost for good becomes a "failed" result; the others go on. Ctrl-C,
    SIGTERM or SIGHUP cancel everything: queued tasks are dropped, running ones get KeyboardInterrupt (their
    upstream trees are ended by the process runner) and are waited for; then Cancelled is raised."""
    import ray
    from ray.util.queue import Queue

    check_fits(tasks, [node["Resources"] for node in ray.nodes() if node.get("Alive")], opts)
    events = Queue(actor_options={"num_cpus": 0})
    remote = ray.remote(max_calls=1)(_task_body)  # a fresh worker process per job: nothing leaks between jobs
    pending: dict[Any, Task] = {}
    for task in tasks:
        ref = remote.options(
            num_gpus=task.num_gpus,
            num_cpus=opts.cpus_per_job,
            max_retries=opts.max_retries,
            retry_exceptions=False,
            name=task.label,
        ).remote(body, task.key, events, *task.args)
        pending[ref] = task
        on_event(Event("queued", task.key, time.time()))
    results: dict[str, dict[str, Any]] = {}
    with _StopOnSignals() as signals:
        try:
            while pending:
                _drain(events, on_event)
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=poll)
                for ref in ready:
                    task = pending.pop(ref)
                    _drain(events, on_event)  # its "running" comes before its end
                    result = _outcome(ref, task)
                    results[task.key] = result
                    on_event(Event(result["status"], task.key, time.time(), result=result))
                if signals.received.is_set():
                    raise Cancelled("received a termination signal")
        except (KeyboardInterrupt, Cancelled) as exc:
            _cancel(pending, events, on_event)
            raise Cancelled(
                f"batch cancelled ({type(exc).__name__ if isinstance(exc, KeyboardInterrupt) else exc}); "
                "queued jobs were dropped and running ones stopped"
            ) from None
    return results


def check_fits(tasks: Sequence[Task], nodes: Sequence[dict[str, float]], opts: EngineOptions) -> None:
    """Refuse a job no node could ever take (Ray would keep it queued forever): a task's GPUs and CPUs must
    all be on one node."""
    gpus = max((node.get("GPU", 0) for node in nodes), default=0)
    cpus = max((node.get("CPU", 0) for node in nodes), default=0)
    for task in tasks:
        if task.num_gpus > gpus:
            raise UserError(
                f"{task.label} needs {task.num_gpus:g} GPU(s) but no node of the Ray cluster has more "
                f"than {gpus:g}; add such a node (ray start --num-gpus), lower --nproc_per_node, or for a "
                "CPU-only try give the local instance logical GPUs with --num_gpus"
            )
    if opts.cpus_per_job > cpus:
        raise UserError(
            f"--cpus_per_job {opts.cpus_per_job}: no node of the Ray cluster has more than {cpus:g} CPUs; lower it"
        )


def _drain(events: Any, on_event: Callable[[Event], None]) -> None:
    for item in _nowait(events):
        on_event(Event(item["kind"], item["key"], item["time"], node=item["node"], gpus=tuple(item["gpus"])))


def _nowait(events: Any) -> Iterator[dict[str, Any]]:
    from ray.util.queue import Empty

    while True:
        try:
            yield events.get_nowait()
        except Empty:
            return


def _outcome(ref: Any, task: Task) -> dict[str, Any]:
    """A task's result, or a "failed" record saying why there is none (an exception in the body, a node
    lost more often than --max_retries allows, a checkout missing on the node)."""
    import ray
    from ray.exceptions import RayError, RayTaskError

    try:
        return ray.get(ref)
    except RayTaskError as exc:
        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
        if isinstance(cause, ModuleNotFoundError):
            return {
                "status": "failed",
                "error": f"the node cannot import {cause.name}: this repository must be at "
                f"{REPO_ROOT} on every node (docs/SCALE.md)",
            }
        return {"status": "failed", "error": f"{type(cause).__name__}: {(str(cause).strip().splitlines() or [''])[-1]}"}
    except RayError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return {"status": "failed", "error": f"lost by Ray ({type(exc).__name__}: {first})"}


def _cancel(pending: dict[Any, Task], events: Any, on_event: Callable[[Event], None]) -> None:
    """Cancel every unfinished task and wait (bounded) for the running ones to end their process trees.
    Further Ctrl-C presses are ignored meanwhile: a half-ended tree would be worse than a short wait."""
    import ray

    old = None
    if threading.current_thread() is threading.main_thread():
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for ref in pending:
            ray.cancel(ref, force=False)
        ray.wait(list(pending), num_returns=len(pending), timeout=CANCEL_WAIT_SECONDS)
        _drain(events, on_event)
        for task in pending.values():
            on_event(Event("cancelled", task.key, time.time(), result={"status": "cancelled"}))
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)
