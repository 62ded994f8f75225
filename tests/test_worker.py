"""The warm generation worker (upstream/wan/runtime/worker.py + upstream/wan/worker_client.py): its contract with
upstream's generate.py (checked on the source of the real clone and of the stand-in), and, run for real against the
contract stand-ins (a fake `wan` whose WanAnimate counts how often it is built): a second job skips model loading, jobs
with other model options do not share a worker, cancel and a killed client end the job but keep the worker, a
failing job, idle timeout and clean shutdown."""

from __future__ import annotations

import ast
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest
from conftest import REPO, STANDINS, run_cli, wait_gone

from replace_actor_video.core.errors import Cancelled, StageFailed
from replace_actor_video.upstream.wan import generate as wan_generate
from replace_actor_video.upstream.wan import worker_client as workers

WAN22 = Path(os.environ.get("WAN22_DIR", REPO / "Wan2.2"))


# ---- the contract with generate.py ---------------------------------------------------------------------------


def function(tree: ast.Module, name: str) -> ast.FunctionDef:
    return next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)


def calls(node: ast.AST) -> list[ast.Call]:
    return [n for n in ast.walk(node) if isinstance(n, ast.Call)]


def call_name(call: ast.Call) -> str:
    return ast.unparse(call.func)


def animate_branch(generate: ast.FunctionDef) -> ast.If:
    """The `elif "animate" in args.task:` branch of generate() (the stand-in has only an assert for it)."""
    for node in ast.walk(generate):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "'animate' in args.task":
            return node
    return generate


def check_generate_py(path: Path) -> None:
    """What the worker relies on when it calls generate.py's own functions (runtime/worker.py docstring)."""
    tree = ast.parse(path.read_text())
    parse_args, generate = function(tree, "_parse_args"), function(tree, "generate")
    assert not parse_args.args.args, "_parse_args() takes no arguments: it reads sys.argv, which the worker sets"
    assert [a.arg for a in generate.args.args] == ["args"]
    main = next(n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test))
    assert [ast.unparse(s) for s in main.body] == ["args = _parse_args()", "generate(args)"]
    branch = animate_branch(generate)
    build = [c for c in calls(branch) if call_name(c) == "wan.WanAnimate"]
    assert len(build) == 1, "the model is built through the package attribute wan.WanAnimate (the worker's cache)"
    assert not build[0].args, "keyword arguments only: the worker compares them"
    assert {k.arg for k in build[0].keywords} == set(workers.MODEL_ARGUMENTS), (
        "WanAnimate's arguments changed upstream: map each new one to a WorkerKey field in MODEL_ARGUMENTS"
    )
    assert [c for c in calls(branch) if call_name(c) == "wan_animate.generate"], "then WanAnimate.generate(...)"
    assert [c for c in calls(generate) if call_name(c) == "save_video"], "then save_video(...)"
    imports = [n for n in tree.body if isinstance(n, ast.ImportFrom) and n.module == "wan.utils.utils"]
    assert any(alias.name == "save_video" for n in imports for alias in n.names)


def test_model_arguments_map_onto_the_worker_key():
    fields = set(workers.WorkerKey.__dataclass_fields__)
    for argument, source in workers.MODEL_ARGUMENTS.items():
        assert source in fields or source.startswith("single GPU") or source.startswith("task"), argument


@pytest.mark.skipif(not (WAN22 / "generate.py").is_file(), reason=f"needs the Wan2.2 clone ({WAN22})")
def test_upstream_generate_py_has_what_the_worker_calls():
    check_generate_py(WAN22 / "generate.py")


def test_stand_in_generate_py_has_the_same_shape():
    check_generate_py(STANDINS / "wan_generate.py")


def test_contract_check_fails_on_a_changed_upstream(tmp_path):
    source = (STANDINS / "wan_generate.py").read_text()
    for old, new in (
        (
            "use_relighting_lora=args.use_relighting_lora\n",
            "use_relighting_lora=args.use_relighting_lora, offload_dit=True\n",
        ),
        ("wan_animate = wan.WanAnimate(", "wan_animate = WanAnimate("),
    ):
        changed = tmp_path / "generate.py"
        changed.write_text(source.replace(old, new))
        with pytest.raises(AssertionError):
            check_generate_py(changed)


# ---- running jobs on the stand-ins ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def setup(tmp_path_factory, media):
    """A fake Wan2.2 tree, a checkpoint folder and one preprocessed folder, shared by the tests here."""
    root = tmp_path_factory.mktemp("worker")
    wan22 = root / "Wan2.2"
    shutil.copytree(STANDINS / "fake_wan" / "wan", wan22 / "wan")
    (wan22 / "wan" / "modules" / "animate" / "preprocess").mkdir(parents=True)
    shutil.copy(
        STANDINS / "wan_preprocess_data.py", wan22 / "wan" / "modules" / "animate" / "preprocess" / "preprocess_data.py"
    )
    shutil.copy(STANDINS / "wan_generate.py", wan22 / "generate.py")
    from conftest import CKPT_FILES

    ckpt = root / "ckpt"
    for name in CKPT_FILES:
        (ckpt / name).parent.mkdir(parents=True, exist_ok=True)
        (ckpt / name).write_bytes(b"stand-in")
    env = {"RAV_REPO": str(REPO)}
    pre = run_cli(
        "run_preprocessing.py",
        "--video_path",
        media["dance"],
        "--refer_path",
        media["ref"],
        "--save_path",
        root / "pp",
        "--resolution",
        "320x240",
        "--fps",
        "8",
        "--wan22_dir",
        wan22,
        "--ckpt_dir",
        ckpt,
        "--runs_dir",
        root / "runs",
        cwd=root,
        env=env,
    )
    assert pre.returncode == 0, pre.stderr
    return {"root": root, "wan22": wan22, "ckpt": ckpt, "pp": root / "pp"}


@pytest.fixture
def worker_env(monkeypatch):
    """A private worker folder per test (short: a Unix socket path has at most 107 bytes); every worker left
    running is stopped afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="rw"))
    monkeypatch.setenv("RAV_WORKER_DIR", str(folder))
    monkeypatch.setenv("RAV_REPO", str(REPO))
    yield {"RAV_WORKER_DIR": str(folder), "RAV_REPO": str(REPO)}
    for w in workers.list_workers():
        workers.stop_worker(workers.WorkerHandle(w["digest"], w["pid"], Path(w["socket"]), Path(w["log"])), timeout=5)
    shutil.rmtree(folder, ignore_errors=True)


def generate_cli(setup, out: Path, *extra: str, env: dict) -> subprocess.CompletedProcess:
    return run_cli(
        "run_generation.py",
        "--src_root_path",
        setup["pp"],
        "--save_file",
        out,
        "--wan22_dir",
        setup["wan22"],
        "--ckpt_dir",
        setup["ckpt"],
        "--runs_dir",
        setup["root"] / "runs",
        "--seed",
        "3",
        *extra,
        cwd=setup["root"],
        env=env,
    )


def test_second_job_on_a_warm_worker_skips_model_loading(setup, worker_env, tmp_path):
    first = generate_cli(setup, tmp_path / "a.mp4", "--worker", "start", "--prompt", "first", env=worker_env)
    assert first.returncode == 0, first.stderr + first.stdout
    assert "started a warm worker" in first.stdout and "[rav-worker] models built in" in first.stdout
    assert "[rav-timing] load.total" in first.stdout
    second = generate_cli(setup, tmp_path / "b.mp4", "--prompt", "second", env=worker_env)  # --worker auto
    assert second.returncode == 0, second.stderr + second.stdout
    assert "holds these models: it runs the job (no model loading)" in second.stdout
    assert "[rav-worker] models already loaded" in second.stdout and "loading skipped" in second.stdout
    assert "[rav-timing] load." not in second.stdout  # nothing loaded
    assert "input_prompt='second'" in second.stdout  # the per-job prompt reached the model
    (worker,) = workers.list_workers()
    assert worker["jobs"] == 2 and worker["models_loaded"]
    built = [line for line in Path(worker["log"]).read_text().splitlines() if "stand-in WanAnimate built" in line]
    assert len(built) == 1 and f"pid {worker['pid']}" in built[0]
    for name in ("a.mp4", "b.mp4"):
        assert (tmp_path / name).stat().st_size > 0
    manifest = max((setup["root"] / "runs").rglob("manifest.json"), key=lambda p: p.stat().st_mtime)
    command = json.loads(manifest.read_text())["stages"]["generate"]["commands"][0]
    assert command["via"].startswith(f"warm worker pid {worker['pid']}") and "--refert_num" in command["argv"]


def test_other_model_options_do_not_share_a_worker(setup, worker_env, tmp_path):
    assert generate_cli(setup, tmp_path / "a.mp4", "--worker", "start", env=worker_env).returncode == 0
    other = generate_cli(setup, tmp_path / "b.mp4", "--attention", "sdpa", env=worker_env)  # auto: none matches
    assert other.returncode == 0, other.stderr
    assert "[rav-worker]" not in other.stdout and "warm worker(s) with other model options" in other.stdout
    off = generate_cli(setup, tmp_path / "c.mp4", "--worker", "off", env=worker_env)
    assert off.returncode == 0 and "[rav-worker]" not in off.stdout
    assert len(workers.list_workers()) == 1


def call_for(setup, out: Path, nproc: int = 1, **changes) -> wan_generate.GenerateCall:
    """The call the generation stage builds from its options (paths resolved, the seed drawn, the memory profile
    resolved)."""
    base = {
        "wan22_dir": str(setup["wan22"]),
        "ckpt_dir": str(setup["ckpt"]),
        "src_root_path": str(setup["pp"]),
        "save_file": str(out),
        "sample_steps": 20,
        "seed": 1,
        "memory_profile": "full",
    }
    opts = wan_generate.GenerateOptions(
        **{**base, **{k: str(v) if isinstance(v, Path) else v for k, v in changes.items()}}
    )
    return wan_generate.GenerateCall(opts, offload_model=None, nproc=nproc)


def ready(handle):
    """Wait for the worker's setup (imports) so that a test's timing starts with the job itself."""
    deadline = time.monotonic() + 60
    while not (workers.ping(handle) or {}).get("ready"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return handle


def run_on(handle, call, tmp_path, cancel=None):
    return workers.WorkerRunner(handle)(
        call.argv(),
        log_path=tmp_path / "job.log",
        label="generate",
        echo=None,
        expected_outputs=[Path(call.opts.save_file)],
        cancel=cancel,
    )


def test_cancel_ends_the_job_and_keeps_the_warm_models(setup, worker_env, tmp_path, monkeypatch):
    monkeypatch.setenv("STANDIN_STEP_SECONDS", "0.2")  # 20 steps: 4 s of "sampling"
    call = call_for(setup, tmp_path / "a.mp4")
    handle = ready(workers.start_worker(call))
    cancel = threading.Event()
    threading.Timer(1.5, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(Cancelled, match="warm worker ended the job"):
        run_on(handle, call, tmp_path, cancel)
    assert time.monotonic() - started < 3.5  # within a step of the cancel, not after the 20 steps
    assert not (tmp_path / "a.mp4").exists()
    log = (tmp_path / "job.log").read_text()
    assert "cancelling the job on the warm worker" in log and "[rav-worker] job 1: start" in log
    assert "20/20" not in log
    again = run_on(handle, call_for(setup, tmp_path / "b.mp4", sample_steps=2), tmp_path)  # the same worker, warm
    assert again.seconds < 3 and (tmp_path / "b.mp4").stat().st_size > 0
    assert "models already loaded" in (tmp_path / "job.log").read_text()
    assert workers.find_worker(workers.key_for(call)).pid == handle.pid


def test_a_killed_client_does_not_leave_the_worker_stuck(setup, worker_env, tmp_path, monkeypatch):
    monkeypatch.setenv("STANDIN_STEP_SECONDS", "0.2")
    call = call_for(setup, tmp_path / "a.mp4")
    handle = workers.start_worker(call)
    client_log = tmp_path / "client.log"
    client = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CLIENT,
            str(handle.socket),
            str(handle.pid),
            handle.digest,
            str(client_log),
            json.dumps(call.argv()),
        ],
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    deadline = time.monotonic() + 20
    while not (client_log.exists() and "3/20" in client_log.read_text(errors="ignore")):
        assert time.monotonic() < deadline and client.poll() is None
        time.sleep(0.1)
    client.send_signal(signal.SIGKILL)
    client.wait()
    deadline = time.monotonic() + 10
    while "job 1: cancelled" not in handle.log.read_text():
        assert time.monotonic() < deadline, handle.log.read_text()[-2000:]
        time.sleep(0.1)
    result = run_on(handle, call_for(setup, tmp_path / "b.mp4", sample_steps=2), tmp_path)
    assert result.seconds < 5 and "models already loaded" in (tmp_path / "job.log").read_text()


CLIENT = """
import json, sys
from pathlib import Path
from replace_actor_video.upstream.wan import worker_client as w
sock, pid, digest, log, argv = sys.argv[1:]
runner = w.WorkerRunner(w.WorkerHandle(digest, int(pid), Path(sock), Path(log)))
runner(json.loads(argv), log_path=Path(log), label="generate", echo=None)
"""


def test_a_failing_job_is_reported_and_an_unknown_failure_ends_the_worker(setup, worker_env, tmp_path):
    call = call_for(setup, tmp_path / "a.mp4")
    handle = workers.start_worker(call)
    bad = call.argv()
    bad[bad.index("--frame_num") + 1] = "many"  # upstream's parser refuses it: the job fails, the worker stays
    with pytest.raises(StageFailed, match="failed on the warm worker .generate.py exited with 2"):
        workers.WorkerRunner(handle)(bad, log_path=tmp_path / "bad.log", label="generate", echo=None)
    assert "invalid int value: 'many'" in (tmp_path / "bad.log").read_text()
    assert workers.find_worker(workers.key_for(call)) is not None
    missing = call_for(setup, tmp_path / "b.mp4", src_root_path=tmp_path / "nowhere")  # fails inside generate()
    with pytest.raises(StageFailed, match="CalledProcessError"):
        run_on(handle, missing, tmp_path)
    wait_gone([handle.pid], seconds=10)
    assert workers.find_worker(workers.key_for(call)) is None and not handle.socket.exists()


def test_idle_timeout_and_clean_shutdown(setup, worker_env, tmp_path):
    call = call_for(setup, tmp_path / "a.mp4")
    idle = workers.start_worker(call, timeout=1.5)
    state = Path(worker_env["RAV_WORKER_DIR"]) / f"{idle.digest}.json"
    assert state.is_file() and idle.socket.exists()
    deadline = time.monotonic() + 15
    while idle.socket.exists():
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert not state.exists() and "no job for 2 s: exiting" in idle.log.read_text()
    handle = workers.start_worker(call)
    workers.stop_worker(handle)
    assert not psutil.pid_exists(handle.pid) or psutil.Process(handle.pid).status() == psutil.STATUS_ZOMBIE
    assert not handle.socket.exists() and "stopping: shutdown requested" in handle.log.read_text()


def test_multi_gpu_jobs_stay_cold(setup, worker_env, tmp_path):
    with pytest.raises(Exception, match="single-GPU"):
        workers.start_worker(call_for(setup, tmp_path / "a.mp4", nproc=2))


def test_a_worker_started_inside_a_supervised_run_outlives_it(tmp_path):
    """The batch and the UI run pipeline.py under the process runner's supervisor, which ends every process of the
    run's tree: a warm worker (start_detached) is not part of it, an ordinary child is."""
    from replace_actor_video.core.process import run_process

    script = tmp_path / "starts.py"
    script.write_text(
        "import subprocess, sys\n"
        "from pathlib import Path\n"
        "from replace_actor_video.core.process import start_detached\n"
        f"pid = start_detached([sys.executable, '-c', 'import time; time.sleep(60)'], log_path=Path({str(tmp_path)!r}) "
        "/ 'detached.log')\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], start_new_session=True)\n"
        f"Path({str(tmp_path)!r}, 'pids').write_text(f'{{pid}} {{child.pid}}')\n"
    )
    run_process(
        [sys.executable, str(script)],
        log_path=tmp_path / "run.log",
        label="starts",
        echo=None,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    detached_pid, child_pid = map(int, (tmp_path / "pids").read_text().split())
    try:
        assert psutil.pid_exists(child_pid) is False or psutil.Process(child_pid).status() == psutil.STATUS_ZOMBIE
        assert psutil.Process(detached_pid).status() != psutil.STATUS_ZOMBIE
    finally:
        with contextlib.suppress(psutil.Error):
            psutil.Process(detached_pid).kill()
