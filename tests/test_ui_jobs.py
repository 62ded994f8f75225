"""The UI's job queue and forms without a browser: real stage CLIs on contract stand-ins, real processes.
Needs no gradio (the UI's queue, forms and runs modules do not import it)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from replace_actor_video.core.errors import UserError
from replace_actor_video.core.options import add_to_parser
from replace_actor_video.pipeline import run as pipeline
from replace_actor_video.pipeline.registry import STAGES
from replace_actor_video.ui.commands import Workspace, build_command, pipeline_form, stage_form
from replace_actor_video.ui.jobs import CANCELLED, DONE, FAILED, QUEUED, RUNNING, JobQueue, LogFollower
from replace_actor_video.ui.runs import list_runs
from ui_helpers import REPO, make_fake_ckpt, make_fake_wan22, make_media

PREPROCESS = next(e for e in STAGES if e.name == "preprocess")


@pytest.fixture
def world(tmp_path, monkeypatch):
    media = make_media(tmp_path / "media")
    wan22 = make_fake_wan22(tmp_path / "Wan2.2")
    ckpt = make_fake_ckpt(tmp_path / "ckpt")
    gate = tmp_path / "gate"
    monkeypatch.setenv("RAV_REPO", str(REPO))
    monkeypatch.setenv("UI_STANDIN_GATE", str(gate))
    ws = Workspace(tmp_path, tmp_path / "runs", tmp_path / "uploads")
    return {"media": media, "wan22": wan22, "ckpt": ckpt, "gate": gate, "ws": ws, "tmp": tmp_path}


def wait_for(predicate, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def submit_preprocess(queue: JobQueue, world: dict, **extra) -> object:
    form = stage_form(PREPROCESS)
    job_dir = queue.new_job_dir(form.name)
    values = {"video_path": str(world["media"]["video"]), "refer_path": str(world["media"]["image"]),
              "resolution": "320x240", "fps": 12, "wan22_dir": str(world["wan22"]), "ckpt_dir": str(world["ckpt"]),
              **extra}
    command = build_command(form, values, job_dir=job_dir, workspace=world["ws"])
    return queue.submit(stage=form.name, title=form.title, job_dir=job_dir, script=form.script, args=command.args,
                        values=command.values, run_dir=command.run_dir)


def processes_in(folder: Path) -> list[psutil.Process]:
    """Live processes whose command line mentions `folder` (the job's own and its children)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(str(folder) in part for part in proc.info["cmdline"] or ()) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            pass
    return found


def test_pipeline_form_argv_is_what_the_pipeline_cli_parses(world):
    form = pipeline_form()
    job_dir = world["tmp"] / "runs" / "job"
    values = {"video_path": "media/dance.mp4", "refer_path": str(world["media"]["image"]), "replace": True,
              "resolution": "640 368", "sample_steps": "12", "sample_shift": " ", "seed": -1, "retarget": False, "attention": "sdpa",
              "prompt": "a dancer; rm -rf / $(whoami)", "save_path": ""}
    command = build_command(form, values, job_dir=job_dir, workspace=world["ws"])
    parsed = vars(pipeline.build_parser().parse_args(command.args))
    cfg = pipeline.config_from(parsed)
    assert cfg.preprocess.video_path == str(world["media"]["video"])  # relative paths start at the workspace
    assert cfg.preprocess.replace and cfg.generate.replace and not cfg.preprocess.retarget
    assert cfg.preprocess.resolution == (640, 368) and cfg.generate.sample_steps == 12
    assert cfg.generate.prompt == "a dancer; rm -rf / $(whoami)"  # one argv item, never a shell word
    assert cfg.pipeline.run_dir == str(job_dir) and cfg.pipeline.output_path == str(job_dir / "output_wanimate.mp4")
    assert cfg.preprocess.save_path == str(job_dir / "preprocess")  # empty: the pipeline's own default
    assert command.args.count("--replace") == 1  # an option two stages share is passed once
    assert "--sample_shift" not in command.args and "--seed" not in command.args  # empty or default: left out
    with pytest.raises(UserError, match="sample_steps: 'many' is not a whole number"):
        build_command(form, {**values, "sample_steps": "many"}, job_dir=job_dir, workspace=world["ws"])


def test_every_registered_stage_form_round_trips_through_its_parser(world):
    for entry in STAGES:
        form = stage_form(entry)
        parser = argparse.ArgumentParser()
        seen: set[str] = set()
        for cls in form.classes:
            add_to_parser(parser, cls, seen=seen)
        values = {s.name: "media/dance.mp4" for s in form.fields if s.required}
        command = build_command(form, values, job_dir=world["tmp"] / "runs" / entry.name, workspace=world["ws"])
        parsed = vars(parser.parse_args(command.args))
        assert parsed["runs_dir"] == str(world["tmp"] / "runs" / entry.name)


def test_paths_outside_the_workspace_and_missing_inputs_are_refused(world):
    form = stage_form(PREPROCESS)
    with pytest.raises(UserError, match="outside the workspace"):
        build_command(form, {"video_path": "/etc/passwd", "refer_path": "media/ref.png"},
                      job_dir=world["tmp"] / "runs" / "j", workspace=world["ws"])
    with pytest.raises(UserError, match="outside the workspace"):
        build_command(form, {"video_path": "media/dance.mp4", "refer_path": "media/ref.png",
                             "save_path": "../../elsewhere"}, job_dir=world["tmp"] / "runs" / "j", workspace=world["ws"])
    with pytest.raises(UserError, match="refer_path: required"):
        build_command(form, {"video_path": "media/dance.mp4"}, job_dir=world["tmp"] / "runs" / "j",
                      workspace=world["ws"])


def test_uploads_are_copied_into_the_job(world):
    upload = world["ws"].uploads / "abc123" / "face.png"
    upload.parent.mkdir(parents=True)
    upload.write_bytes(world["media"]["image"].read_bytes())
    job_dir = world["tmp"] / "runs" / "j"
    command = build_command(stage_form(PREPROCESS), {"video_path": "media/dance.mp4", "refer_path": str(upload)},
                            job_dir=job_dir, workspace=world["ws"], uploaded={"refer_path"})
    assert command.values["refer_path"] == str(job_dir / "inputs" / "face.png")
    assert (job_dir / "inputs" / "face.png").read_bytes() == upload.read_bytes()


def test_a_job_runs_the_stage_cli_and_survives_a_ui_restart(world):
    queue = JobQueue(world["ws"].runs_dir, poll_seconds=0.1)
    job = submit_preprocess(queue, world)
    wait_for(lambda: queue.get(job.id).status in (DONE, FAILED), what="the job to end")
    assert queue.get(job.id).status == DONE, queue.log_tail(job.id)
    assert queue.get(job.id).exit_code == 0
    assert "stand-in preprocess" in queue.log_tail(job.id)
    assert (Path(job.dir) / "process_results" / "src_pose.mp4").is_file()
    queue.close()

    again = JobQueue(world["ws"].runs_dir)  # a restarted UI reads everything back from the folders
    try:
        assert again.get(job.id).status == DONE
        [entry] = list_runs(world["ws"].runs_dir, {})
        assert entry.status == DONE and entry.stage == "Preprocess"
        assert entry.stage_records()["preprocess"]["status"] == "done"
        assert [p.name for p in entry.preprocess_folders()] == ["process_results"]
        assert entry.settings()["form"]["resolution"] == "320x240"
    finally:
        again.close()


def test_queue_runs_one_job_at_a_time_and_cancel_ends_the_tree(world):
    world["gate"].touch()
    queue = JobQueue(world["ws"].runs_dir, poll_seconds=0.1)
    try:
        first = submit_preprocess(queue, world)
        second = submit_preprocess(queue, world)
        wait_for(lambda: queue.progress(first.id).fraction, what="progress from the first job")
        assert queue.get(first.id).status == RUNNING and queue.get(second.id).status == QUEUED
        view = queue.progress(first.id)
        assert view.eta_s is not None and "/200" in view.text
        assert processes_in(Path(first.dir)), "the job runs as a process of its own"

        assert "removed from the queue" in queue.cancel(second.id)
        assert queue.get(second.id).status == CANCELLED
        queue.cancel(first.id)
        wait_for(lambda: queue.get(first.id).status == CANCELLED, what="the cancel")
        assert queue.get(first.id).exit_code == 130
        assert queue.get(first.id).message.startswith("cancelled:")
        wait_for(lambda: not processes_in(Path(first.dir)), timeout=15, what="the process tree to end")
    finally:
        queue.close()


def test_a_restarted_ui_finds_a_running_job_and_can_cancel_it(world):
    world["gate"].touch()
    queue = JobQueue(world["ws"].runs_dir, poll_seconds=0.1)
    running = submit_preprocess(queue, world)
    waiting = submit_preprocess(queue, world)
    wait_for(lambda: queue.progress(running.id).fraction, what="the job to report progress")
    queue.close()  # the UI stops; its job does not

    again = JobQueue(world["ws"].runs_dir, poll_seconds=0.1)
    try:
        assert again.get(running.id).status == RUNNING
        assert again.get(waiting.id).status == CANCELLED and "UI stopped" in again.get(waiting.id).message
        wait_for(lambda: again.progress(running.id).fraction, what="progress read back from the log")
        again.cancel(running.id)
        wait_for(lambda: again.get(running.id).status == CANCELLED, what="the cancel")
        assert again.get(running.id).exit_code == 130  # read from the exit file: not our child any more
        wait_for(lambda: not processes_in(Path(running.dir)), timeout=15, what="the process tree to end")
        record = json.loads((Path(running.dir) / "job.json").read_text())
        assert record["status"] == CANCELLED
    finally:
        again.close()


def test_log_follower_reads_tqdm_redraws_and_pipeline_steps(tmp_path):
    log = tmp_path / "console.log"
    log.write_text("[rav] step 2/2: generate\n\r 50%|#####     | 10/20 [00:10<00:10,  1.00s/it]")
    follower = LogFollower(log)
    follower.poll()
    assert follower.view().fraction == 0.5  # step 2 of 2 begun; the bar's line is not complete yet
    with open(log, "a") as fh:
        fh.write("\r")
    follower.poll()
    view = follower.view()
    assert view.fraction == pytest.approx(0.75) and view.eta_s == 10.0 and "step 2/2: generate" in view.text


def test_points_keyword_is_not_taken_for_a_path(world):
    """A points field takes a points JSON path or a keyword (its default, e.g. 'auto'): the keyword passes
    through untouched, a path is resolved in the workspace."""
    for form in [pipeline_form(), *(stage_form(e) for e in STAGES)]:
        for spec in (s for s in form.fields if s.meta.widget == "points"):
            values = {s.name: "media/dance.mp4" for s in form.fields if s.required}
            job_dir = world["tmp"] / "runs" / form.name
            kept = build_command(form, {**values, spec.name: spec.default}, job_dir=job_dir, workspace=world["ws"])
            assert kept.values[spec.name] == spec.default
            typed = build_command(form, {**values, spec.name: "points/p.json"}, job_dir=job_dir, workspace=world["ws"])
            assert typed.values[spec.name] == str(world["tmp"] / "points" / "p.json")


@pytest.mark.parametrize("exposed", [["--share"], ["--host", "0.0.0.0"]])
def test_exposing_the_ui_needs_auth(exposed, tmp_path):
    pytest.importorskip("gradio", reason="the UI needs requirements-ui.txt")
    env = {k: v for k, v in os.environ.items() if k != "RAV_UI_AUTH"}
    res = subprocess.run([sys.executable, str(REPO / "app_ui.py"), *exposed, "--runs_dir", str(tmp_path / "runs")],
                         capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert res.returncode == 2
    assert "add --auth user:password" in res.stderr and len(res.stderr.strip().splitlines()) == 1
