"""The UI's job queue, forms and server settings without a browser: real stage CLIs on contract stand-ins, real
processes. Needs no gradio (the UI's queue, forms, checks and runs modules do not import it)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from ui_helpers import REPO, make_fake_ckpt, make_fake_wan22, make_media

from replace_actor_video.core.errors import UserError
from replace_actor_video.core.options import add_to_parser
from replace_actor_video.pipeline import run as pipeline
from replace_actor_video.pipeline.registry import STAGES
from replace_actor_video.ui.checks import check_form
from replace_actor_video.ui.commands import (
    Workspace,
    check_command,
    on_form,
    pipeline_form,
    resolve,
    stage_form,
    to_args,
)
from replace_actor_video.ui.jobs import CANCELLED, DONE, FAILED, QUEUED, RUNNING, Job, JobQueue, LogFollower
from replace_actor_video.ui.runs import list_runs
from replace_actor_video.ui.settings import LOCATION, WEIGHTS, ServerSettings, read_config, server_specs

PREPROCESS = next(e for e in STAGES if e.name == "preprocess")
SAMPLE = {"video": "media/dance.mp4", "image": "media/ref.png", "dir": "media"}  # a valid value per widget


def required_values(form) -> dict[str, str]:
    return {s.name: SAMPLE[s.meta.widget] for s in form.fields if s.required}


@pytest.fixture
def world(tmp_path, monkeypatch):
    media = make_media(tmp_path / "media")
    wan22 = make_fake_wan22(tmp_path / "Wan2.2")
    ckpt = make_fake_ckpt(tmp_path / "ckpt")
    gate = tmp_path / "gate"
    loras = tmp_path / "loras"
    loras.mkdir()
    (loras / "style.safetensors").write_bytes(b"stand-in")
    monkeypatch.setenv("RAV_REPO", str(REPO))
    monkeypatch.setenv("UI_STANDIN_GATE", str(gate))
    ws = Workspace(tmp_path, tmp_path / "runs", tmp_path / "uploads")
    ws.runs_dir.mkdir()
    ws.uploads.mkdir()
    settings = ServerSettings(
        {"wan22_dir": str(wan22), "ckpt_dir": str(ckpt)}, {"lora": (loras,)}, ws.runs_dir.resolve()
    )
    return {
        "media": media,
        "wan22": wan22,
        "ckpt": ckpt,
        "gate": gate,
        "ws": ws,
        "tmp": tmp_path,
        "settings": settings,
        "loras": loras,
    }


def wait_for(predicate, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def command_for(form, values, world, job_dir, **kw):
    resolved = resolve(form, values, job_dir=job_dir, workspace=world["ws"], settings=world["settings"], **kw)
    assert resolved.ok, resolved.problems
    return resolved, to_args(form, resolved.values)


def submit_preprocess(queue: JobQueue, world: dict, **extra) -> Job:
    form = stage_form(PREPROCESS)
    job_dir = queue.new_job_dir(form.name)
    values = {
        "video_path": str(world["media"]["video"]),
        "refer_path": str(world["media"]["image"]),
        "resolution": "320x240",
        "fps": 12,
        **extra,
    }
    resolved, args = command_for(form, values, world, job_dir)
    return queue.submit(
        stage=form.name, title=form.title, job_dir=job_dir, script=form.script, args=args, values=resolved.chosen
    )


def processes_in(folder: Path) -> list[psutil.Process]:
    """Live processes whose command line mentions `folder` (the job's own and its children)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            mentions = any(str(folder) in part for part in proc.info["cmdline"] or ())
            if mentions and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            pass
    return found


# -- forms: what a browser may set ---------------------------------------------------------------------------
def test_server_options_are_never_on_a_form():
    """Every upstream location is a server setting: no form offers it, so no browser can set it."""
    locations = {s.name for s in server_specs(LOCATION)}
    assert {
        "wan22_dir",
        "ckpt_dir",
        "rife_bin",
        "rife_pytorch_dir",
        "seedvr_dir",
        "seedvr_python",
        "realesrgan_dir",
        "sam2_config",
        "runs_dir",
    } <= locations
    assert {s.name for s in server_specs(WEIGHTS)} == {"lora", "sam2_checkpoint"}
    for form in [pipeline_form(), *(stage_form(e) for e in STAGES)]:
        shown = {s.name for s in form.fields}
        assert not shown & locations, form.name
        assert "dry_run" not in shown and "overwrite" not in shown  # the UI's: Preview commands, fresh folders
        assert all(s.meta.widget != "file" for s in form.fields), "no upload field may take an arbitrary file"


def test_pipeline_form_argv_is_what_the_pipeline_cli_parses(world):
    form = pipeline_form()
    job_dir = world["tmp"] / "runs" / "job"
    values = {
        "video_path": "media/dance.mp4",
        "refer_path": str(world["media"]["image"]),
        "replace": "Replace",
        "resolution": "640 368",
        "sample_steps": "12",
        "sample_shift": " ",
        "seed": -1,
        "retarget": False,
        "attention": "sdpa",
        "prompt": "a dancer; rm -rf / $(whoami)",
        "lora": ["style.safetensors:0.5"],
    }
    resolved, args = command_for(form, values, world, job_dir)
    parsed = vars(pipeline.build_parser().parse_args(args))
    cfg = pipeline.config_from(parsed)
    assert cfg.preprocess.video_path == str(world["media"]["video"])  # relative paths start at the workspace
    assert cfg.preprocess.replace and cfg.generate.replace and not cfg.preprocess.retarget
    assert cfg.preprocess.resolution == (640, 368) and cfg.generate.sample_steps == 12
    assert cfg.generate.prompt == "a dancer; rm -rf / $(whoami)"  # one argv item, never a shell word
    assert cfg.pipeline.run_dir == str(job_dir) and cfg.pipeline.output_path == str(job_dir / "output_wanimate.mp4")
    assert cfg.preprocess.wan22_dir == str(world["wan22"])  # the server's, not a browser's
    assert cfg.generate.lora == f"{world['loras'] / 'style.safetensors'}:0.5"  # picked by name from its folder
    assert args.count("--replace") == 1  # an option two stages share is passed once
    assert "--sample_shift" not in args and "--seed" not in args  # empty or default: left out
    assert resolved.chosen["replace"] == "Replace" and resolved.chosen["lora"] == ["style.safetensors:0.5"]
    bad = resolve(
        form, {**values, "sample_steps": "many"}, job_dir=job_dir, workspace=world["ws"], settings=world["settings"]
    )
    assert bad.problems == [("sample_steps", "Sampling steps: 'many' is not a whole number")]


def test_every_registered_stage_form_round_trips_through_its_parser(world):
    for entry in STAGES:
        form = stage_form(entry)
        parser = argparse.ArgumentParser()
        seen: set[str] = set()
        for cls in form.classes:
            add_to_parser(parser, cls, seen=seen)
        values = required_values(form)
        job_dir = world["tmp"] / "runs" / entry.name
        _, args = command_for(form, values, world, job_dir)
        parsed = vars(parser.parse_args(args))
        assert parsed["runs_dir"] == str(job_dir)
        for spec in form.options:
            if spec.required and not on_form(spec):  # e.g. postprocess --output: the job folder's
                assert Path(parsed[spec.name]).parent == job_dir, (entry.name, spec.name)


def test_problems_are_collected_per_field(world):
    form = stage_form(PREPROCESS)
    job_dir = world["tmp"] / "runs" / "j"
    result = resolve(
        form,
        {"video_path": "/etc/passwd", "refer_path": "media/dance.mp4", "fps": "x"},
        job_dir=job_dir,
        workspace=world["ws"],
        settings=world["settings"],
    )
    problems = dict(result.problems)
    assert "outside the workspace" in problems["video_path"]
    assert "not a readable image" in problems["refer_path"]  # a video where an image belongs: by content
    assert "'x' is not a whole number" in problems["fps"]
    missing = resolve(
        form, {"video_path": "media/dance.mp4"}, job_dir=job_dir, workspace=world["ws"], settings=world["settings"]
    )
    assert [p for p, _ in missing.problems] == ["refer_path"] and "required" in missing.problems[0][1]


def test_a_request_naming_a_server_option_is_refused(world):
    """Defence in depth: even a crafted submission that names a location is refused, not ignored."""
    form = pipeline_form()
    values = {"video_path": "media/dance.mp4", "refer_path": "media/ref.png", "wan22_dir": str(world["tmp"])}
    result = resolve(
        form, values, job_dir=world["tmp"] / "runs" / "j", workspace=world["ws"], settings=world["settings"]
    )
    assert result.problems == [(None, "wan22_dir: is set on the server (app_ui.py), never from a browser; refused")]
    picked = resolve(
        form,
        {**{k: v for k, v in values.items() if k != "wan22_dir"}, "lora": ["../../evil.pt"]},
        job_dir=world["tmp"] / "runs" / "j",
        workspace=world["ws"],
        settings=world["settings"],
    )
    assert picked.problems and "not one of the files the server offers" in picked.problems[0][1]


def test_uploads_are_media_checked_by_content_and_stored_under_our_name(world):
    uploads = world["ws"].uploads
    video = uploads / "a1" / "generate.py"  # a real video with a code file's name
    video.parent.mkdir()
    shutil.copy(world["media"]["video"], video)
    code = uploads / "b2" / "clip.mp4"  # code with a video's name
    code.parent.mkdir()
    code.write_text("import os\nos.system('touch /tmp/pwned')\n")
    image = uploads / "c3" / "__init__.py"
    image.parent.mkdir()
    shutil.copy(world["media"]["image"], image)
    form = stage_form(PREPROCESS)
    job_dir = world["tmp"] / "runs" / "j"
    ok = resolve(
        form,
        {"video_path": str(video), "refer_path": str(image)},
        job_dir=job_dir,
        workspace=world["ws"],
        settings=world["settings"],
        uploaded={"video_path", "refer_path"},
        store=True,
    )
    assert ok.ok, ok.problems
    stored = sorted(p.name for p in (job_dir / "inputs").iterdir())
    assert stored == ["refer_path-init.png", "video_path-generate.mp4"]  # never a .py, never a package
    assert ok.values["video_path"] == str(job_dir / "inputs" / "video_path-generate.mp4")
    bad = resolve(
        form,
        {"video_path": str(code), "refer_path": str(image)},
        job_dir=world["tmp"] / "runs" / "k",
        workspace=world["ws"],
        settings=world["settings"],
        uploaded={"video_path", "refer_path"},
        store=True,
    )
    assert [p for p, _ in bad.problems] == ["video_path"] and "not a readable media file" in bad.problems[0][1]
    assert not (world["tmp"] / "runs" / "k" / "inputs" / "video_path-clip.mp4").exists()


@pytest.mark.parametrize(
    "extra, refused",
    [
        (["--wan22_dir", "/tmp/evil"], "--wan22_dir /tmp/evil: set on the server only"),
        (["--ckpt_dir", "/tmp/evil"], "--ckpt_dir /tmp/evil: set on the server only"),
        (["--lora", "/tmp/evil.safetensors:1"], "--lora"),
        (["--runs_dir", "/tmp"], "--runs_dir /tmp: set on the server only"),
        (["--config", "/tmp/evil.toml"], "--config, which no form sets"),
    ],
)
def test_the_queue_guard_refuses_a_command_naming_another_location(world, extra, refused):
    form = pipeline_form()
    _, args = command_for(
        form, {"video_path": "media/dance.mp4", "refer_path": "media/ref.png"}, world, world["tmp"] / "runs" / "j"
    )
    check_command(form, args, world["settings"])  # what the UI built passes
    with pytest.raises(UserError, match=refused.replace("(", r"\(")):
        check_command(form, [*args, *extra], world["settings"])


def test_server_settings_come_from_flags_config_and_environment(tmp_path, monkeypatch):
    from replace_actor_video.ui.app import build_parser, parse_args

    (tmp_path / "sam2").mkdir()
    (tmp_path / "sam2" / "sam2.1_hiera_tiny.pt").write_bytes(b"x")
    config = tmp_path / "ui.toml"
    config.write_text('wan22_dir = "/srv/Wan2.2"\nsam2_checkpoint_dir = ["%s"]\nport = 7999\n' % (tmp_path / "sam2"))
    monkeypatch.setenv("RAV_LORA_DIR", str(tmp_path / "loras"))
    args = parse_args(["--config", str(config), "--ckpt_dir", "ck"])
    assert args.port == 7999 and args.wan22_dir == "/srv/Wan2.2"
    settings = ServerSettings.from_args(args, base=tmp_path, runs_dir=tmp_path / "runs")
    assert settings.locations["wan22_dir"] == "/srv/Wan2.2" and settings.locations["ckpt_dir"] == str(tmp_path / "ck")
    assert settings.weight_dirs["lora"] == (tmp_path / "loras",)
    assert list(settings.weight_files("sam2_checkpoint")) == ["sam2.1_hiera_tiny.pt"]
    bad = tmp_path / "bad.toml"
    bad.write_text("wan22_dir = 3\n")
    with pytest.raises(UserError, match=r"bad.toml:wan22_dir: 3 is not text"):
        read_config(str(bad), build_parser())
    bad.write_text('evil = "x"\n')
    with pytest.raises(UserError, match=r"bad.toml:evil: unknown setting"):
        read_config(str(bad), build_parser())


def test_check_form_runs_the_plan_check_and_sorts_problems_by_field(world):
    form = pipeline_form()
    job_dir = world["tmp"] / "runs" / ".check"
    job_dir.mkdir(parents=True)
    result = check_form(
        form,
        {"video_path": "media/ref.png", "refer_path": "media/ref.png"},
        job_dir=job_dir,
        workspace=world["ws"],
        settings=world["settings"],
    )
    assert not result.ok and set(result.by_field) == {"video_path"}
    assert "still image" in result.by_field["video_path"]
    good = check_form(
        form,
        {"video_path": "media/dance.mp4", "refer_path": "media/ref.png"},
        job_dir=job_dir,
        workspace=world["ws"],
        settings=world["settings"],
    )
    assert good.ok, (good.by_field, good.general)
    assert good.command()[:2] == ["python", "pipeline.py"]


def test_a_replace_mode_folder_takes_another_character_without_running_anything(tmp_path):
    from replace_actor_video.upstream.wan.preprocess import REPLACE_OUTPUTS, with_reference

    folder = tmp_path / "preprocess"
    (folder / "official_mask").mkdir(parents=True)
    for name in (*REPLACE_OUTPUTS, "mask_points.json", "official_mask/src_mask.mp4"):
        (folder / name).write_bytes(name.encode())
    other = tmp_path / "other.png"
    other.write_bytes(b"another character")
    out = with_reference(folder, other, tmp_path / "new")
    assert (out / "src_ref.png").read_bytes() == b"another character"
    assert (folder / "src_ref.png").read_bytes() == b"src_ref.png"  # the source folder is untouched
    for name in ("src_pose.mp4", "src_mask.mp4", "mask_points.json", "official_mask/src_mask.mp4"):
        assert (out / name).stat().st_ino == (folder / name).stat().st_ino, name  # reused, not recomputed
    (folder / "src_mask.mp4").unlink()
    with pytest.raises(UserError, match="not a replace-mode preprocessing folder"):
        with_reference(folder, other, tmp_path / "newer")
    assert not (tmp_path / "newer").exists()


# -- the queue -------------------------------------------------------------------------------------------------
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
        assert again.progress(job.id).fraction == 1.0
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


def test_queued_jobs_survive_a_restart_keep_their_order_and_then_run(world):
    world["gate"].touch()
    queue = JobQueue(world["ws"].runs_dir, poll_seconds=0.1)
    running = submit_preprocess(queue, world)
    a, b, c = (submit_preprocess(queue, world, fps=n) for n in (10, 11, 12))
    wait_for(lambda: queue.progress(running.id).fraction, what="the job to report progress")
    assert [j.id for j in queue.queued()] == [a.id, b.id, c.id]
    assert "number 1" in queue.move(c.id, -2)
    assert "already first" in queue.move(c.id, -1)
    assert queue.move(running.id, 1).endswith("only a queued job can be moved")
    assert [queue.position(j.id) for j in (c, a, b)] == [1, 2, 3]
    assert "removed from the list" in queue.remove(b.id) and queue.get(b.id).hidden
    assert b.id not in {j.id for j in queue.jobs()} and queue.get(b.id).status == CANCELLED
    assert "cancel it first" in queue.remove(running.id)
    queue.close()  # the UI stops; its running job does not

    again = JobQueue(world["ws"].runs_dir, poll_seconds=0.1)
    try:
        assert again.get(running.id).status == RUNNING
        assert [j.id for j in again.queued()] == [c.id, a.id]  # still queued, in the order the user chose
        world["gate"].unlink()
        wait_for(lambda: again.get(running.id).status == DONE, timeout=90, what="the running job to finish")
        wait_for(lambda: again.get(c.id).status != QUEUED, what="the first queued job to start")
        assert again.get(a.id).status == QUEUED  # one at a time, in order
        wait_for(lambda: again.get(a.id).status == DONE, timeout=120, what="the queue to drain")
        assert again.get(c.id).status == DONE
    finally:
        again.close()


def test_a_restarted_ui_finds_a_running_job_and_can_cancel_it(world):
    world["gate"].touch()
    queue = JobQueue(world["ws"].runs_dir, poll_seconds=0.1)
    running = submit_preprocess(queue, world)
    wait_for(lambda: queue.progress(running.id).fraction, what="the job to report progress")
    queue.close()

    again = JobQueue(world["ws"].runs_dir, poll_seconds=0.1)
    try:
        assert again.get(running.id).status == RUNNING
        wait_for(lambda: again.progress(running.id).fraction, what="progress read back from the log")
        again.cancel(running.id)
        wait_for(lambda: again.get(running.id).status == CANCELLED, what="the cancel")
        assert again.get(running.id).exit_code == 130  # read from the exit file: not our child any more
        wait_for(lambda: not processes_in(Path(running.dir)), timeout=15, what="the process tree to end")
        record = json.loads((Path(running.dir) / "job.json").read_text())
        assert record["status"] == CANCELLED
    finally:
        again.close()


def test_the_guard_refuses_a_crafted_job_before_it_starts(world):
    """A job.json edited to point at another Wan2.2 (say, an uploaded `wan` package) never starts."""
    evil = world["tmp"] / "runs" / ".ui-cache" / "uploads" / "x"
    (evil / "wan").mkdir(parents=True)
    (evil / "wan" / "__init__.py").write_text(f"open({str(world['tmp'] / 'pwned')!r}, 'w').close()\n")
    (evil / "generate.py").write_text(f"open({str(world['tmp'] / 'pwned')!r}, 'w').close()\n")
    form = pipeline_form()
    job_dir = world["ws"].runs_dir / "crafted"
    (job_dir / "logs").mkdir(parents=True)
    _, args = command_for(form, {"video_path": "media/dance.mp4", "refer_path": "media/ref.png"}, world, job_dir)
    Job(
        id="crafted",
        stage="pipeline",
        title="Full pipeline",
        dir=str(job_dir),
        command=["python", "pipeline.py", *args, "--wan22_dir", str(evil)],
        values={},
    ).save()

    def guard(job: Job) -> None:
        check_command(form, job.command[2:], world["settings"])

    queue = JobQueue(world["ws"].runs_dir, poll_seconds=0.1, guard=guard)
    try:
        wait_for(lambda: queue.get("crafted").status == FAILED, what="the refusal")
        assert queue.get("crafted").message.startswith(f"refused: --wan22_dir {evil}: set on the server only")
        assert queue.get("crafted").pid is None and not (job_dir / "logs" / "console.log").exists()
    finally:
        queue.close()
    assert not (world["tmp"] / "pwned").exists()


def test_the_guard_runs_only_the_forms_own_scripts(world):
    pytest.importorskip("gradio", reason="the UI needs requirements-ui.txt")
    from replace_actor_video.ui.app import all_forms, job_guard

    guard = job_guard(all_forms(), world["settings"])
    form = pipeline_form()
    _, args = command_for(
        form, {"video_path": "media/dance.mp4", "refer_path": "media/ref.png"}, world, world["tmp"] / "runs" / "j"
    )
    guard(Job(id="j", stage="pipeline", title="", dir="", command=["python", "pipeline.py", *args], values={}))
    for command in (["python", "runs/.ui-cache/uploads/x/generate.py", *args], ["bash", "pipeline.py", *args]):
        with pytest.raises(UserError, match="is not the command of a form"):
            guard(Job(id="j", stage="pipeline", title="", dir="", command=command, values={}))
    with pytest.raises(UserError, match="is not the command of a form"):
        guard(Job(id="j", stage="evil", title="", dir="", command=["python", "pipeline.py"], values={}))


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
    """A points field takes a points JSON or a keyword (its default, e.g. 'auto'): the keyword passes
    through untouched, a file is checked by content (a points JSON) in the workspace."""
    points = world["tmp"] / "points" / "p.json"
    points.parent.mkdir()
    points.write_text(json.dumps({"frames": [{"frame": 0, "positive": [[1, 2]]}]}))
    for form in [pipeline_form(), *(stage_form(e) for e in STAGES)]:
        for spec in (s for s in form.fields if s.meta.widget == "points"):
            values = required_values(form)
            job_dir = world["tmp"] / "runs" / form.name
            kept, _ = command_for(form, {**values, spec.name: spec.default}, world, job_dir)
            assert kept.values[spec.name] == spec.default
            typed, _ = command_for(form, {**values, spec.name: "points/p.json"}, world, job_dir)
            assert typed.values[spec.name] == str(points)
            wrong = resolve(
                form,
                {**values, spec.name: "media/ref.png"},
                job_dir=job_dir,
                workspace=world["ws"],
                settings=world["settings"],
            )
            assert [p for p, _ in wrong.problems] == [spec.name]


@pytest.mark.parametrize("exposed", [["--share"], ["--host", "0.0.0.0"]])
def test_exposing_the_ui_needs_auth(exposed, tmp_path):
    pytest.importorskip("gradio", reason="the UI needs requirements-ui.txt")
    env = {k: v for k, v in os.environ.items() if k != "RAV_UI_AUTH"}
    res = subprocess.run(
        [sys.executable, str(REPO / "app_ui.py"), *exposed, "--runs_dir", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert res.returncode == 2
    assert "add --auth user:password" in res.stderr and len(res.stderr.strip().splitlines()) == 1
