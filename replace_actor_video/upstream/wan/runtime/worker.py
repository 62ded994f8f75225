"""A warm generation worker: one long-lived process in upstream's Python that imports the official `wan` package
once, builds `WanAnimate` once (T5, CLIP, VAE, the DiT, LoRAs, compile) and then runs job after job, so a second
job skips the minute or more of model loading (and the compilation of `--compile`).

Started by replace_actor_video/upstream/wan/worker_client.py (run_generation.py --worker start, the UI, the batch
command) as `python worker.py --socket PATH --key DIGEST [--idle_timeout S] <launcher options>`; it serves a
Unix socket in a folder only its user can open. Standard library and torch only, like the launcher beside it.

What a job runs is upstream's own code, not a copy of it: generate.py is loaded once as a module (its `__main__`
block does not run) and each job calls its `_parse_args()` (sys.argv = the job's generate.py arguments, so upstream
parses and validates them) and its `generate(args)`: the animate branch's `wan.WanAnimate(...)`, then
`WanAnimate.generate(...)` with the launcher's prompt patch, then `save_video(...)`. The one difference is that
`wan.WanAnimate` answers with the instance it built for the first job when the constructor arguments are equal
(and refuses a job whose arguments differ: another key is another worker). tests/test_worker.py checks generate.py's
source for the calls this relies on, so an upstream change fails a test instead of drifting.

Protocol (JSON lines): {"op": "run", "argv": [<launcher options> "--" <generate.py arguments>]} → {"status": ...},
{"out": "<a line of output>"}..., {"done": {"ok": bool, "cancelled": bool, "error": str, "seconds": float}};
{"op": "cancel"} or closing the connection cancels that job; {"op": "ping"} → state; {"op": "shutdown"}.
One GPU job at a time (others wait in order); a cancelled job ends within one DiT forward and the models stay loaded;
a job that fails in any other way ends the worker (its GPU state is unknown; the next job starts a fresh one); the
worker exits after --idle_timeout seconds without a job, and on SIGTERM, removing its socket and state file.
"""

from __future__ import annotations

import _thread
import argparse
import contextlib
import gc
import json
import os
import queue
import signal
import socket
import sys
import threading
import time
import traceback

TAG = "[rav-worker]"
DRAIN_MARK = "\x00rav-worker-drain\n"  # written to fd 1 to learn when the output pump has caught up
KEY_OPTIONS = (
    "wan22_dir",
    "attention",
    "lora",
    "compile",
    "fp8",
    "vae_bf16",
    "memory_profile",
    "color_match",
    "color_match_strength",
    "color_match_anchor",
)  # the launcher options of the key


class JobCancelled(BaseException):
    """Raised in the main thread (through SIGINT) when the running job's client cancels or goes away."""


class KeyMismatch(Exception):
    """A job whose model options differ from what this worker has built."""


def _launcher():
    """launcher.py beside this file (its setup, patches and option parser), loaded by path like its siblings."""
    import importlib.util

    if "rav_launcher" not in sys.modules:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "launcher.py")
        spec = importlib.util.spec_from_file_location("rav_launcher", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return sys.modules["rav_launcher"]


class Connection:
    """One client: JSON lines both ways; sends from several threads (output, status, done) are serialized."""

    def __init__(self, sock):
        self.sock = sock
        self.reader = sock.makefile("rb")
        self.lock = threading.Lock()

    def send(self, message) -> bool:
        data = (json.dumps(message, ensure_ascii=False) + "\n").encode()
        with self.lock:
            try:
                self.sock.sendall(data)
                return True
            except OSError:
                return False

    def receive(self):
        try:
            line = self.reader.readline()
        except OSError:
            return None
        if not line:
            return None
        try:
            return json.loads(line)
        except ValueError:
            return None

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.close()


class Job:
    def __init__(self, number, connection, argv):
        self.number, self.connection, self.argv = number, connection, argv
        self.cancel_requested = threading.Event()
        self.done = threading.Event()


class ModelCache:
    """Stands in for `wan.WanAnimate` inside generate(): builds the class once, then answers equal calls with the
    same instance."""

    def __init__(self, cls, log):
        self.cls, self.log = cls, log
        self.instance = None
        self.arguments = None
        self.built_s = 0.0

    @staticmethod
    def _comparable(args, kwargs):
        # `config` is upstream's WAN_CONFIGS entry: the same object in every job of this process
        return repr(args), {k: (id(v) if k == "config" else v) for k, v in kwargs.items()}

    def __call__(self, *args, **kwargs):
        arguments = self._comparable(args, kwargs)
        if self.instance is None:
            started = time.perf_counter()
            self.instance = self.cls(*args, **kwargs)
            self.arguments, self.built_s = arguments, time.perf_counter() - started
            self.log(f"models built in {self.built_s:.1f} s; they stay loaded for the next jobs")
            return self.instance
        if arguments != self.arguments:
            changed = sorted(
                k for k in set(arguments[1]) | set(self.arguments[1]) if arguments[1].get(k) != self.arguments[1].get(k)
            )
            raise KeyMismatch(f"this worker's models were built with other WanAnimate arguments ({', '.join(changed)})")
        self.log(f"models already loaded (built in {self.built_s:.1f} s for an earlier job): loading skipped")
        return self.instance


class Worker:
    def __init__(self, options, own):
        self.options, self.own = options, own
        self.jobs = queue.Queue()
        self.lock = threading.Lock()
        self.current = None
        self.in_job = False  # the main thread is inside run_job: a cancel may interrupt it there
        self.interrupting = False  # a cancel has asked for the SIGINT that interrupts the running job
        self.count = 0
        self.shutdown = threading.Event()
        self.ready = False
        self.started = time.time()
        self.last_active = time.monotonic()
        self.route = None
        self.generate_py = None
        self.namespace = None
        self.cache = None
        self.output = None  # the worker log (the fd that was stdout before output capture)
        self.drained = threading.Event()
        self.preamble = []  # the setup's output (imports, patches), given to the first job's client too

    # ---- output --------------------------------------------------------------------------------------------------

    def capture_output(self):
        """fds 1 and 2 (upstream's logging, tqdm, prints, C-level output) go through a pipe: every line goes to the
        worker log and to the client of the running job."""
        self.output = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8", errors="replace")
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, 1)
        os.dup2(write_fd, 2)
        os.close(write_fd)
        sys.stdout = os.fdopen(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
        sys.stderr = os.fdopen(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
        threading.Thread(target=self._pump, args=(read_fd,), name="rav-worker-output", daemon=True).start()

    def _pump(self, fd):
        buffer = b""
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return
            buffer += chunk
            while True:
                cuts = [i for i in (buffer.find(b"\n"), buffer.find(b"\r")) if i >= 0]
                if not cuts:
                    break
                line, buffer = buffer[: min(cuts) + 1].decode("utf-8", "replace"), buffer[min(cuts) + 1 :]
                self._line(line)

    def _line(self, line):
        if line == DRAIN_MARK:
            self.drained.set()
            return
        self.output.write(line)
        self.output.flush()
        job = self.current
        if job is not None:
            job.connection.send({"out": line})
        elif self.preamble is not None:
            self.preamble.append(line)

    def log(self, text):
        print(f"{TAG} {text}", flush=True)

    def drain(self, timeout=5.0):
        """Wait until everything written to stdout/stderr so far has passed through the pump (to the client)."""
        sys.stdout.flush()
        sys.stderr.flush()
        self.drained.clear()
        os.write(1, DRAIN_MARK.encode())
        self.drained.wait(timeout)

    # ---- serving -------------------------------------------------------------------------------------------------

    def serve(self, path):
        if os.path.exists(path):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(path)
                sys.exit(f"{TAG} a worker already serves {path}")
            except OSError:
                os.unlink(path)  # a dead worker's socket
            finally:
                probe.close()
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            server.bind(path)
        finally:
            os.umask(old)
        server.listen(16)
        threading.Thread(target=self._accept, args=(server,), name="rav-worker-accept", daemon=True).start()
        return server

    def _accept(self, server):
        while not self.shutdown.is_set():
            try:
                sock, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(Connection(sock),), daemon=True).start()

    def _handle(self, connection):
        request = connection.receive() or {}
        op = request.get("op")
        if op == "ping":
            connection.send(self.state())
            connection.close()
            return
        if op == "shutdown":
            connection.send({"ok": True})
            connection.close()
            self.stop("shutdown requested")
            return
        if op != "run" or not isinstance(request.get("argv"), list):
            connection.send({"done": {"ok": False, "cancelled": False, "error": f"unknown request {op!r}"}})
            connection.close()
            return
        with self.lock:
            self.count += 1
            job = Job(self.count, connection, [str(a) for a in request["argv"]])
        ahead = self.jobs.qsize() + (self.current is not None)
        connection.send({"status": "queued", "job": job.number, "ahead": ahead})
        self.jobs.put(job)
        while not job.done.is_set():  # the client's cancel, or the client going away, cancels the job
            message = connection.receive()
            if message is None or message.get("op") == "cancel":
                if not job.done.is_set():
                    self.cancel(job)
                break
        job.done.wait()
        connection.close()

    def state(self):
        loaded = bool(self.cache and self.cache.instance)
        return {
            "pid": os.getpid(),
            "key": self.options.key,
            "ready": self.ready,
            "busy": self.current is not None,
            "queued": self.jobs.qsize(),
            "jobs": self.count,
            "models_loaded": loaded,
            "started": self.started,
            "idle_s": round(time.monotonic() - self.last_active, 1),
        }

    def cancel(self, job):
        job.cancel_requested.set()
        with self.lock:
            if self.current is job:
                self.interrupting = True
                _thread.interrupt_main(signal.SIGINT)  # the job runs in the main thread: raise there

    def stop(self, why):
        if not self.shutdown.is_set():
            self.shutdown.set()
            self.log(f"stopping: {why}")
        job = self.current
        if job is not None:
            self.cancel(job)

    def _on_signal(self, signum, _frame):
        """Runs in the main thread. SIGINT from cancel(): ends the running job (only while it is inside run_job,
        so the job bookkeeping around it is never cut); SIGTERM or a Ctrl-C: clean shutdown, the running job
        cancelled first."""
        if signum == signal.SIGINT and self.interrupting:
            self.interrupting = False
        else:
            self.shutdown.set()
        if self.in_job:
            raise JobCancelled()

    # ---- jobs ----------------------------------------------------------------------------------------------------

    def prepare(self):
        """The launcher's setup, once: `import wan`, patches, hooks, fast loading, timing; generate.py as a module."""
        import runpy

        launcher = _launcher()
        self.route = launcher.prepare(self.own, [])
        self.generate_py = os.path.join(os.path.abspath(self.own.wan22_dir), "generate.py")
        sys.argv = [self.generate_py]
        self.namespace = runpy.run_path(self.generate_py, run_name="rav_worker_generate")
        import wan

        self.cache = ModelCache(wan.WanAnimate, self.log)
        wan.WanAnimate = self.cache  # generate.py calls wan.WanAnimate(...) by the package attribute
        self.ready = True
        self.log(f"ready: pid {os.getpid()}, attention route {self.route}")

    def run_job(self, job):
        launcher = _launcher()
        own_argv, upstream_argv = launcher._split_argv(job.argv)
        own = launcher.build_parser().parse_args(own_argv)
        changed = [name for name in KEY_OPTIONS if getattr(own, name) != getattr(self.own, name)]
        if changed:
            raise KeyMismatch(f"this worker runs other launcher options ({', '.join(changed)})")
        if self.cache.instance is None:  # the first job names the checkpoint: read it ahead while models build
            fastload = launcher._sibling("fastload")
            ckpt_dir, relighting = launcher.upstream_checkpoint(upstream_argv)
            if fastload.enabled() and ckpt_dir:
                fastload.prefetch(fastload.checkpoint_files(ckpt_dir, relighting=relighting))
        launcher.PROMPTS.update(prompt=launcher.upstream_prompt(upstream_argv), negative_prompt=own.negative_prompt)
        sys.argv = [self.generate_py, *upstream_argv]
        args = self.namespace["_parse_args"]()
        with launcher.attention_context(self.route):
            self.namespace["generate"](args)

    def loop(self, idle_timeout):
        while not self.shutdown.is_set():
            try:
                job = self.jobs.get(timeout=1.0)
            except queue.Empty:
                if time.monotonic() - self.last_active > idle_timeout:
                    self.log(f"no job for {idle_timeout:.0f} s: exiting")
                    return
                continue
            if not self.execute(job):
                return

    def execute(self, job) -> bool:
        """Run one job; False when the worker must end (a failure that may have left the GPU state broken)."""
        result = {"ok": False, "cancelled": False, "error": "", "seconds": 0.0}
        keep_running = True
        started = time.perf_counter()
        try:
            if job.cancel_requested.is_set():
                raise JobCancelled()
            job.connection.send({"status": "running", "job": job.number})
            self.drain()
            for line in self.preamble or ():
                job.connection.send({"out": line})
            self.preamble = None
            with self.lock:
                self.current = job
            self.log(f"job {job.number}: start")
            self.in_job = True
            if job.cancel_requested.is_set() or self.shutdown.is_set():  # asked before in_job could see it
                raise JobCancelled()
            self.run_job(job)
            self.in_job = False
            result["ok"] = True
        except JobCancelled:
            result["cancelled"] = True
            result["error"] = "cancelled"
        except (KeyMismatch, SystemExit) as exc:  # a job that cannot run here, or upstream's argument check
            result["error"] = str(exc) if isinstance(exc, KeyMismatch) else f"generate.py exited with {exc.code}"
        except BaseException as exc:  # noqa: BLE001  (any other failure ends the worker: its state is unknown)
            traceback.print_exc()
            result["error"] = f"{type(exc).__name__}: {exc}"
            keep_running = False
        finally:
            self.in_job = False
            result["seconds"] = round(time.perf_counter() - started, 2)
            self.last_active = time.monotonic()
        self.log(f"job {job.number}: {'done' if result['ok'] else result['error']} after {result['seconds']} s")
        self.drain()  # the job's last lines reach its client before the result
        with self.lock:
            self.current = None
            self.interrupting = False
        job.connection.send({"done": result})
        job.done.set()
        gc.collect()
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()
        return keep_running and not self.shutdown.is_set()

    def fail_queued(self, why):
        while True:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                return
            job.connection.send({"done": {"ok": False, "cancelled": False, "error": why, "seconds": 0.0}})
            job.done.set()


def build_parser():
    parser = argparse.ArgumentParser(prog="worker.py", description="warm Wan2.2-Animate generation worker")
    parser.add_argument("--socket", required=True, help="Unix socket path to serve")
    parser.add_argument("--key", required=True, help="the client's digest of the model options")
    parser.add_argument("--state", required=True, help="JSON file describing this worker (removed on exit)")
    parser.add_argument("--idle_timeout", type=float, default=900.0, help="exit after this many seconds without a job")
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    cut = argv.index("--") if "--" in argv else len(argv)
    options = build_parser().parse_args(argv[:cut])
    own = _launcher().build_parser().parse_args(argv[cut + 1 :])
    worker = Worker(options, own)
    worker.capture_output()
    signal.signal(signal.SIGINT, worker._on_signal)
    signal.signal(signal.SIGTERM, worker._on_signal)
    server = worker.serve(options.socket)
    state = {
        "pid": os.getpid(),
        "key": options.key,
        "socket": options.socket,
        "started": worker.started,
        "python": sys.executable,
        "own": vars(own),
    }
    tmp = f"{options.state}.partial-{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump(state, fh)
    os.replace(tmp, options.state)
    code = 0
    try:
        try:
            worker.prepare()
        except SystemExit as exc:  # the launcher refused an option: tell the waiting clients why
            worker.fail_queued(f"the worker could not start: {exc}")
            code = 2
        else:
            worker.loop(options.idle_timeout)
    except JobCancelled:
        pass
    finally:
        worker.shutdown.set()
        worker.fail_queued("the worker stopped")
        server.close()
        worker.log("exited")
        worker.drain()  # the log is complete before the socket goes (what waiting clients look for)
        for path in (options.socket, options.state):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    return code


if __name__ == "__main__":
    sys.exit(main())
