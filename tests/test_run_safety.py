"""A whole pipeline (contract stand-ins, real ffmpeg) under the faults a real server sees: a second run on the
same run directory, `kill -9` mid-generate, SIGTERM mid-generate. The generate stand-in samples for as long
as a gate file exists (STANDIN_GENERATE_GATE), with a worker process of its own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
from conftest import REPO, run_cli, wait_gone


def pipeline_args(media, fake_wan22: Path, fake_ckpt: Path, tmp_path: Path) -> list[str]:
    return [
        "--video_path",
        str(media["dance"]),
        "--refer_path",
        str(media["ref"]),
        "--resolution",
        "640x368",
        "--output_path",
        str(tmp_path / "final.mp4"),
        "--run_dir",
        str(tmp_path / "run"),
        "--seed",
        "7",
        "--wan22_dir",
        str(fake_wan22),
        "--ckpt_dir",
        str(fake_ckpt),
    ]


def start_pipeline(args: list[str], tmp_path: Path, gate: Path) -> subprocess.Popen:
    gate.write_text("hold")
    env = {**os.environ, "STANDIN_GENERATE_GATE": str(gate)}
    return subprocess.Popen(
        [sys.executable, str(REPO / "pipeline.py"), *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def ours(tmp_path: Path) -> list[psutil.Process]:
    """Live processes whose command line names this test's folder (stand-ins, their workers, ffmpeg)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if proc.info["status"] != psutil.STATUS_ZOMBIE and any(str(tmp_path) in a for a in proc.info["cmdline"] or []):
            found.append(proc)
    return found


def wait_for_sampling(pipeline: subprocess.Popen, gate: Path) -> list[int]:
    """Wait until generate is sampling (its worker is up); returns the PIDs of the pipeline's whole tree."""
    deadline = time.monotonic() + 180
    while True:
        assert pipeline.poll() is None, pipeline.communicate()
        tree = psutil.Process(pipeline.pid).children(recursive=True)
        if any(str(gate) in " ".join(p.cmdline()) and "standin-worker" in p.cmdline() for p in _alive(tree)):
            return [p.pid for p in tree]
        assert time.monotonic() < deadline, "generate did not start"
        time.sleep(0.1)


def _alive(procs):
    for proc in procs:
        try:
            proc.cmdline()
            yield proc
        except psutil.Error:
            pass


def test_a_second_pipeline_on_the_same_run_directory_is_refused_and_the_first_finishes(
    media, fake_wan22, fake_ckpt, tmp_path
):
    args = pipeline_args(media, fake_wan22, fake_ckpt, tmp_path)
    gate = tmp_path / "gate"
    first = start_pipeline(args, tmp_path, gate)
    try:
        wait_for_sampling(first, gate)
        second = run_cli("pipeline.py", *args, cwd=tmp_path)
        assert second.returncode == 2, second.stderr
        assert second.stderr.count("\n") == 1 and second.stderr.startswith("error: ")
        assert f"is in use: PID {first.pid} is running in it" in second.stderr and "pipeline.py" in second.stderr
        assert "stand-in" not in second.stdout  # it ran nothing
    finally:
        gate.unlink()
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert {name: record["status"] for name, record in manifest["stages"].items()} == {
        "preprocess": "done",
        "generate": "done",
    }
    assert manifest["result"] == str(tmp_path / "final.mp4")


def test_kill_9_mid_generate_leaves_no_process_and_the_rerun_resumes(media, fake_wan22, fake_ckpt, tmp_path):
    args = pipeline_args(media, fake_wan22, fake_ckpt, tmp_path)
    gate = tmp_path / "gate"
    pipeline = start_pipeline(args, tmp_path, gate)
    try:
        tree = wait_for_sampling(pipeline, gate)
        pipeline.kill()
        pipeline.communicate(timeout=60)
        wait_gone(tree, seconds=5)
        assert ours(tmp_path) == []
    finally:
        gate.unlink()
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["stages"]["generate"]["status"] == "running"  # what a kill -9 leaves: the rerun redoes it

    again = run_cli("pipeline.py", *args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "preprocess: up to date" in again.stdout and "stand-in preprocess" not in again.stdout
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["stages"]["generate"]["status"] == "done"
    assert not [p for p in (tmp_path / "run").rglob("*") if ".partial-" in p.name]


def test_sigterm_mid_generate_cancels_cleanly(media, fake_wan22, fake_ckpt, tmp_path):
    args = pipeline_args(media, fake_wan22, fake_ckpt, tmp_path)
    gate = tmp_path / "gate"
    pipeline = start_pipeline(args, tmp_path, gate)
    try:
        tree = wait_for_sampling(pipeline, gate)
        pipeline.send_signal(signal.SIGTERM)
        _, err = pipeline.communicate(timeout=120)
        assert pipeline.returncode == 130, err
        assert err.strip().splitlines()[-1].startswith("cancelled: ") and "received SIGTERM" in err
        wait_gone(tree, seconds=15)
    finally:
        gate.unlink()
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["stages"]["generate"]["status"] == "cancelled"
    assert not (tmp_path / "run" / ".rav" / "processes").exists() or not list(
        (tmp_path / "run" / ".rav" / "processes").iterdir()
    )
