"""run_batch.py on a real local Ray instance with 2 logical GPUs, each job a real pipeline.py run against
the contract stand-ins: jobs run two at a time, a failing job does not stop the others, a rerun does no
work and resumes half-done jobs, Ctrl-C leaves no stand-in process; and the plan check of every row before
anything starts (--dry-run, bad rows by number, --skip_bad)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import REPO, run_cli

from replace_actor_video.batch.jobs import option_specs, pipeline_argv, read_rows
from replace_actor_video.pipeline.run import build_parser

# The generate.py of the test clone: the contract stand-in, after a gate that records when it ran; a marker file
# FAIL-<job> makes it fail and HANG-<job> makes it wait (for the cancel test). <job> is the run directory's
# name (the output file's stem): --save_file is <run_dir>/work/generate/<name>. The gate goes in front of the
# stand-in's own source, so the file keeps the calls the launcher checks its patch sites in.
GATE = """
import atexit, json, os, sys, time
from pathlib import Path
_here = Path(__file__).resolve().parent
_job = Path(sys.argv[sys.argv.index("--save_file") + 1]).parents[2].name
_start = time.time()
if (_here / f"FAIL-{_job}").exists():
    sys.exit(f"RuntimeError: stand-in failure requested for {_job}")
if (_here / f"HANG-{_job}").exists():
    (_here / f"HANGING-{_job}").write_text(str(os.getpid()))
    time.sleep(600)
time.sleep(1.5)  # long enough for two jobs to overlap visibly
atexit.register(lambda: (_here / f"times-{_job}.json").write_text(json.dumps([_start, time.time()])))
"""
RAY = ["--num_gpus", "2", "--num_cpus", "2"]


@pytest.fixture
def gated_wan22(fake_wan22) -> Path:
    standin = (fake_wan22 / "generate.py").read_text()
    (fake_wan22 / "generate.py").write_text(GATE + standin)
    return fake_wan22


def write_jobs(tmp_path: Path, media, names: list[str], **extra: str) -> Path:
    columns = ["video_path", "refer_path", "output_path", "resolution", *extra]
    lines = [",".join(columns)]
    for name in names:
        lines.append(",".join([str(media["dance"]), str(media["ref"]), f"out/{name}.mp4", "320x240", *extra.values()]))
    path = tmp_path / "jobs.csv"
    path.write_text("\n".join(lines) + "\n")
    (tmp_path / "out").mkdir(exist_ok=True)  # an output's folder must exist (the plan check)
    return path


def batch(jobs: Path, wan22: Path, ckpt: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return run_cli(
        "run_batch.py",
        jobs,
        *RAY,
        *args,
        cwd=tmp_path,
        env={"WAN22_DIR": str(wan22), "WAN_ANIMATE_CKPT": str(ckpt), "RAV_RUNS_DIR": str(tmp_path / "runs")},
    )


def summary(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "runs" / "batch-jobs" / "batch_summary.json").read_text())


def standin_processes(marker: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if any(str(marker) in part for part in proc.info["cmdline"] or ()):
            found.append(proc)
    return found


def test_four_jobs_two_at_a_time_then_a_rerun_does_no_work(media, gated_wan22, fake_ckpt, tmp_path):
    jobs = write_jobs(tmp_path, media, ["a", "b", "c", "d"])
    first = batch(jobs, gated_wan22, fake_ckpt, tmp_path)
    assert first.returncode == 0, first.stderr + first.stdout
    assert all((tmp_path / "out" / f"{n}.mp4").is_file() for n in "abcd")
    spans = sorted(json.loads((gated_wan22 / f"times-{n}.json").read_text()) for n in "abcd")
    # From the stand-ins' own clocks: two generations overlap, never three (2 logical GPUs).
    overlaps = [(a, b) for i, a in enumerate(spans) for b in spans[i + 1 :] if a[0] < b[1] and b[0] < a[1]]
    assert overlaps, spans
    for t in (start for start, _ in spans):
        assert sum(s <= t < e for s, e in spans) <= 2, spans
    report = summary(tmp_path)
    assert report["counts"] == {"done": 4, "running": 0, "failed": 0, "queued": 0, "cancelled": 0}
    assert {tuple(job["gpus"]) for job in report["jobs"]} <= {("0",), ("1",)}
    assert "running on" in first.stdout and "4/4 done" in first.stdout
    for n in "abcd":  # each job has its own run directory and manifest, as pipeline.py makes them
        manifest = json.loads((tmp_path / "runs" / n / "manifest.json").read_text())
        assert manifest["stages"]["generate"]["status"] == "done"

    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()}
    for n in "abcd":
        (gated_wan22 / f"times-{n}.json").unlink()
    again = batch(jobs, gated_wan22, fake_ckpt, tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("finished earlier, skipped") == 4
    assert "running on" not in again.stdout and not list(gated_wan22.glob("times-*"))
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()} == stamps


def test_a_failing_job_does_not_stop_the_others_and_resumes_on_rerun(media, gated_wan22, fake_ckpt, tmp_path):
    jobs = write_jobs(tmp_path, media, ["a", "b", "c"])
    (gated_wan22 / "FAIL-b").write_text("")
    first = batch(jobs, gated_wan22, fake_ckpt, tmp_path)
    assert first.returncode == 1
    assert "1 job(s) failed" in first.stderr
    assert "row 3 (b.mp4): FAILED" in first.stdout and "stand-in failure requested for b" in first.stdout
    assert (tmp_path / "out" / "a.mp4").is_file() and (tmp_path / "out" / "c.mp4").is_file()
    assert not (tmp_path / "out" / "b.mp4").exists()
    failed = [job for job in summary(tmp_path)["jobs"] if job["status"] == "failed"]
    assert len(failed) == 1 and Path(failed[0]["log"]).is_file()

    (gated_wan22 / "FAIL-b").unlink()
    second = batch(jobs, gated_wan22, fake_ckpt, tmp_path)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("finished earlier, skipped") == 2
    log = (tmp_path / "runs" / "b" / "logs" / "batch-job.log").read_text()
    last_run = log.split(f"row 3 (b.mp4): pipeline.py: {sys.executable}")[-1]
    assert "preprocess: up to date" in last_run and "stand-in preprocess" not in last_run  # half done: resumed
    assert (tmp_path / "out" / "b.mp4").is_file()


def test_ctrl_c_cancels_queued_jobs_and_ends_running_trees(media, gated_wan22, fake_ckpt, tmp_path):
    jobs = write_jobs(tmp_path, media, ["a", "b", "c"])
    for n in "abc":
        (gated_wan22 / f"HANG-{n}").write_text("")
    env = {
        **os.environ,
        "WAN22_DIR": str(gated_wan22),
        "WAN_ANIMATE_CKPT": str(fake_ckpt),
        "RAV_RUNS_DIR": str(tmp_path / "runs"),
    }
    # In its own session, so that the Ctrl-C below reaches the whole process group as a terminal's would.
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "run_batch.py"), str(jobs), *RAY],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 120
        while len(list(gated_wan22.glob("HANGING-*"))) < 2:
            assert proc.poll() is None and time.time() < deadline, proc.communicate()
            time.sleep(0.2)
        assert standin_processes(gated_wan22), "the hanging stand-ins should be running"
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "cancelled" in err
    deadline = time.time() + 5
    while standin_processes(gated_wan22) and time.time() < deadline:
        time.sleep(0.2)
    assert not standin_processes(gated_wan22), [p.info["cmdline"] for p in standin_processes(gated_wan22)]
    states = {job["label"]: job["status"] for job in summary(tmp_path)["jobs"]}
    assert sorted(states.values()) == ["cancelled"] * 3, states

    for n in "abc":
        (gated_wan22 / f"HANG-{n}").unlink()
    again = batch(jobs, gated_wan22, fake_ckpt, tmp_path)
    assert again.returncode == 0, again.stderr
    assert all((tmp_path / "out" / f"{n}.mp4").is_file() for n in "abc")


def test_dry_run_prints_each_plan_and_flags_bad_rows_by_number(media, fake_wan22, fake_ckpt, tmp_path):
    (tmp_path / "out").mkdir()
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(
        "video_path,refer_path,output_path,replace,sample_steps,resolution\n"
        f"{media['dance']},{media['ref']},out/a.mp4,,,320x240\n"
        f"{media['dance']},{tmp_path / 'nope.png'},out/b.mp4,,,320x240\n"
        f"{media['dance']},{media['ref']},out/c.mp4,maybe,x,320x240\n"
        f"{media['dance']},{media['ref']},out/a.mp4,true,4,320x240\n"
    )
    res = batch(jobs, fake_wan22, fake_ckpt, tmp_path, "--dry-run")
    assert res.returncode == 2
    errors = res.stderr.strip().splitlines()
    assert any("row 3:" in line and "nope.png" in line for line in errors), errors
    assert any("row 4: replace: 'maybe' is not true or false" in line for line in errors), errors
    assert any("row 4: sample_steps: 'x' is not a whole number" in line for line in errors), errors
    assert any("row 5:" in line and "also used by row 2" in line for line in errors), errors
    assert "row 2 (a.mp4): will ask Ray for 1 GPU(s)" in res.stdout
    assert "preprocess_data.py" in res.stdout and "generate.py" in res.stdout
    assert not (tmp_path / "runs").exists() and not list((tmp_path / "out").iterdir())

    skip = batch(jobs, fake_wan22, fake_ckpt, tmp_path, "--dry-run", "--skip_bad")
    assert skip.returncode == 0, skip.stderr
    assert "nothing was started" in skip.stdout
    # Without --dry-run a bad row stops the whole batch before Ray starts.
    real = batch(jobs, fake_wan22, fake_ckpt, tmp_path)
    assert real.returncode == 2 and "nothing was started" in real.stderr
    assert not (tmp_path / "runs").exists()


def test_toml_jobs_with_config_defaults_and_multi_gpu_needs_a_count(media, fake_wan22, fake_ckpt, tmp_path):
    (tmp_path / "out").mkdir()
    config = tmp_path / "defaults.toml"
    config.write_text(f'resolution = "320x240"\nsample_steps = 4\nruns_dir = "{tmp_path / "elsewhere"}"\n')
    jobs = tmp_path / "jobs.toml"
    jobs.write_text(
        f'[[job]]\nvideo_path = "{media["dance"]}"\nrefer_path = "{media["ref"]}"\n'
        'output_path = "out/a.mp4"\nsample_steps = 8\n'
        f'[[job]]\nvideo_path = "{media["dance"]}"\nrefer_path = "{media["ref"]}"\n'
        'output_path = "out/b.mp4"\nmulti_gpu = true\n'
        f'[[job]]\nvideo_path = "{media["dance"]}"\nrefer_path = "{media["ref"]}"\n'
        'output_path = "out/c.mp4"\nreplace = "false"\ncolour = 3\n'
    )
    res = batch(jobs, fake_wan22, fake_ckpt, tmp_path, "--dry-run", "--config", config)
    assert res.returncode == 2
    assert "--resolution_area 320 240" in res.stdout and "--sample_steps 8" in res.stdout  # the row wins
    assert f"run directory {tmp_path / 'elsewhere' / 'a'}" in res.stdout  # the config's, not the CLI's default
    assert "row 2: --multi_gpu in a batch needs --nproc_per_node N" in res.stderr
    assert "row 3: replace: 'false' is not true or false" in res.stderr
    assert "row 3: unknown option 'colour'" in res.stderr


def test_job_argv_reproduces_the_values(tmp_path):
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(
        "video_path,refer_path,replace,retarget,resolution,lora,seed,target_fps\n"
        "v.mp4,r.png,yes,false,1280 720,a.safetensors b.safetensors:0.5,7,30\n"
    )
    values = read_rows(jobs)[0].values
    parsed = vars(build_parser().parse_args(pipeline_argv(values)))
    # Options with their own parser get the cell's text as one word, which that parser reads as typed.
    assert {k: parsed[k] for k in values} == {**values, "lora": [values["lora"]], "resolution": [values["resolution"]]}
    assert parsed["replace"] is True and parsed["retarget"] is False and parsed["seed"] == 7
    assert set(values) <= set(option_specs())
