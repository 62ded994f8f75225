"""The Web UI in a real browser: app_ui.py on a free port with the contract stand-ins as Wan2.2, driven by
Playwright in Debian's Chromium. Screenshots go to test-artifacts/ui/ (and to docs/ui/ with
RAV_UI_SCREENSHOTS=docs, which is how the committed ones are made)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import psutil
import pytest

pytest.importorskip("gradio", reason="the UI needs requirements-ui.txt")
sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need the playwright package")
if not Path("/usr/bin/chromium").is_file():
    pytest.skip("the browser tests need Debian's chromium (apt-get install chromium)", allow_module_level=True)

from replace_actor_video.mask.points import load_points  # noqa: E402
from replace_actor_video.media.probe import probe_video  # noqa: E402
from replace_actor_video.pipeline.registry import STAGES  # noqa: E402
from replace_actor_video.ui.app import PLANNED_TABS  # noqa: E402
from ui_helpers import CHROMIUM, CHROMIUM_ARGS, REPO, start_server  # noqa: E402

expect = sync_api.expect
ARTIFACTS = REPO / "test-artifacts" / "ui"
DOCS = REPO / "docs" / "ui"
NON_EMPTY_NEGATIVE = re.compile(r'"negative": \[\s*\[')
JOB_WAIT = 90_000  # ms: a whole stand-in pipeline on a 2-core CI box, with margin


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("ui-workspace"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server, request):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(server.url)
    expect(page.locator("#tabs")).to_be_visible()
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"end-of-{request.node.name}.png"), full_page=True)  # for failures
    context.close()


def shot(page, name: str, *, top: bool = False) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    if top:
        page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    if os.environ.get("RAV_UI_SCREENSHOTS") == "docs":
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copy(ARTIFACTS / f"{name}.png", DOCS / f"{name}.png")


def open_tab(page, title: str) -> None:
    page.get_by_role("tab", name=title, exact=True).click()


def fill(page, elem_id: str, text: str) -> None:
    box = page.locator(f"#{elem_id} textarea, #{elem_id} input:not([type=file])").first
    box.fill(text)
    box.blur()


def open_group(page, form: str, group: str) -> None:
    page.locator(f"#{form}-group-{group}").get_by_text(group.capitalize(), exact=True).first.click()


def choose(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").first.click()
    page.get_by_role("option", name=option, exact=True).click()


def job_row(page, status: str):
    return page.locator("#jobs-table tbody tr").filter(has_text=status)


def test_points_editor_writes_the_cli_points_json(page, server):
    open_tab(page, "Mask")
    fill(page, "points-video-path", "media/dance.mp4")
    fill(page, "points-frame", "5")
    page.locator("#points-load").click()
    img = page.locator("#points-image img")
    expect(img).to_be_visible()
    box = img.bounding_box()

    def click_at(fx: float, fy: float) -> None:
        img.click(position={"x": box["width"] * fx, "y": box["height"] * fy})

    code = page.locator("#points-json .cm-content")
    click_at(0.5, 0.4)
    expect(code).to_contain_text('"positive"')
    click_at(0.5, 0.7)
    page.locator("#points-mode").get_by_text("negative", exact=True).click()
    click_at(0.1, 0.1)
    expect(code).to_contain_text(NON_EMPTY_NEGATIVE)
    page.locator("#points-undo").click()
    expect(code).to_contain_text('"negative": []')
    click_at(0.9, 0.1)
    expect(code).to_contain_text(NON_EMPTY_NEGATIVE)

    data = json.loads(code.inner_text())
    assert data["coords"] == "pixels" and (data["width"], data["height"]) == (320, 240)
    [frame] = data["frames"]
    assert frame["frame"] == 5 and len(frame["positive"]) == 2 and len(frame["negative"]) == 1
    (x1, y1), (x2, y2) = frame["positive"]
    assert abs(x1 - 160) < 8 and abs(y1 - 96) < 8 and abs(x2 - 160) < 8 and abs(y2 - 168) < 8
    assert abs(frame["negative"][0][0] - 288) < 8

    page.locator("#points-save").click()
    saved = server.runs / "points" / "dance-f5.json"
    expect(page.locator("#points-message")).to_contain_text(str(saved))
    spec = load_points(saved)  # the mask package reads back what the editor wrote
    assert spec.frames[0].frame == 5 and len(spec.frames[0].positive) == 2
    assert spec.width == 320 and spec.height == 240

    page.locator("#points-preview").click()
    # No SAM2 weights in CI (and maybe no torch/sam2): the UI must say so, not crash.
    expect(page.locator("#points-message")).to_contain_text("Preview not available", timeout=60_000)
    page.locator("#points-mode").scroll_into_view_if_needed()
    shot(page, "points-editor")


def test_queue_log_cancel_and_history(page, server, browser):
    server.gate.touch()  # preprocessing stand-ins wait (printing progress) until the gate is removed
    try:
        # A preprocess job with an uploaded reference image: it starts and reports progress.
        open_tab(page, "Preprocess")
        fill(page, "preprocess-video_path-path", "media/dance.mp4")
        page.locator("#preprocess-refer_path input[type=file]").set_input_files(str(server.media["image"]))
        expect(page.locator("#preprocess-refer_path img")).to_be_visible()
        fill(page, "preprocess-resolution", "320x240")
        page.locator("#run-preprocess").click()
        expect(job_row(page, "running")).to_have_count(1)
        expect(page.locator("#job-log textarea")).to_have_value(re.compile("/200"), timeout=30_000)
        expect(page.locator("[data-testid=job-progress-text]")).to_contain_text("ETA")

        # A pipeline job waits behind it (one GPU job at a time).
        open_tab(page, "Full pipeline")
        fill(page, "pipeline-video_path-path", "media/dance.mp4")
        fill(page, "pipeline-refer_path-path", "media/ref.png")
        fill(page, "pipeline-resolution", "320x240")
        fill(page, "pipeline-prompt", "a dancer; $(rm -rf ~) `whoami`")
        page.locator("#pipeline-replace input").check()  # replace mode: the Runs tab then shows a mask overlay
        if page.locator("#pipeline-group-mask").count():
            open_group(page, "pipeline", "mask")
            if page.locator("#pipeline-mask_mode").count():  # the contour mask needs SAM2 weights: not here
                choose(page, "pipeline-mask_mode", "official")
        open_group(page, "pipeline", "performance")
        choose(page, "pipeline-attention", "flash")  # the stand-in clone has no torch-free SDPA route
        page.locator("#run-pipeline").click()
        expect(job_row(page, "queued")).to_have_count(1)
        expect(page.locator("#job-status")).to_contain_text("queued")
        shot(page, "jobs-queued")

        # Cancel the running preprocess job: its whole process tree ends, the pipeline job starts.
        running = json.loads(next(server.runs.glob("*-preprocess/job.json")).read_text())
        choose(page, "job-select", running["id"])
        page.locator("#job-cancel").click()
        expect(page.locator("#job-status")).to_contain_text("cancelled", timeout=30_000)
        expect(page.locator("#job-status")).to_contain_text("the upstream process tree was ended")
        assert not psutil.pid_exists(running["pid"]) or psutil.Process(running["pid"]).status() == psutil.STATUS_ZOMBIE
        pipeline_job = json.loads(next(server.runs.glob("*-pipeline/job.json")).read_text())
        pipeline_id = pipeline_job["id"]
        # Empty optional fields stay off the command line: the CLI's own defaults apply.
        assert "--sample_steps" not in pipeline_job["command"] and "--seed" not in pipeline_job["command"]
        expect(job_row(page, pipeline_id).filter(has_text="running")).to_have_count(1, timeout=30_000)
        choose(page, "job-select", pipeline_id)
        expect(page.locator("#job-log textarea")).to_have_value(re.compile("step 1/2: preprocess"), timeout=30_000)
        shot(page, "jobs-running")
    finally:
        server.gate.unlink(missing_ok=True)

    expect(page.locator("#job-status")).to_contain_text("done", timeout=JOB_WAIT)
    expect(page.locator("[data-testid=job-progress-text]")).to_contain_text("100%")
    result = server.runs / pipeline_id / "output_wanimate.mp4"
    info = probe_video(result, count_frames=True)
    assert (info.fps, info.frames, info.has_audio) == (30, 60, True)
    log = (server.runs / pipeline_id / "logs" / "console.log").read_text()
    assert "input_prompt='a dancer; $(rm -rf ~) `whoami`'" in log  # the prompt reached the model verbatim

    # A reloaded page (a new browser session) finds both runs in the Runs tab, with results.
    page.reload()
    open_tab(page, "Runs")
    expect(page.locator("#runs-table")).to_contain_text(pipeline_id)
    expect(page.locator("#runs-table")).to_contain_text("cancelled")
    choose(page, "run-select", pipeline_id)
    expect(page.locator("#run-summary")).to_contain_text("generate: done")
    expect(page.locator("#run-result video")).to_have_count(1)
    expect(page.locator("#run-mask-overlay img")).to_be_visible()
    downloads = page.locator("#run-downloads")
    expect(downloads).to_contain_text(re.compile(r"output_wanimate\s*\.mp4"))  # gradio splits name and suffix
    expect(downloads).to_contain_text(re.compile(r"src_pose\s*\.mp4"))
    expect(page.locator("#run-settings")).to_contain_text("flash")
    with page.expect_download() as download:
        downloads.locator('a[download="output_wanimate.mp4"]').click()
    assert Path(download.value.path()).read_bytes() == result.read_bytes()
    # Only what the UI chose to show is served: other workspace files and system files are refused.
    for path in (server.media["video"], Path("/etc/passwd"), result):
        assert page.request.get(f"{server.url}gradio_api/file={path}").status == 403
    shot(page, "runs")


def test_every_stage_has_a_tab(page, server):
    """Registered stages get their form (derived from the option specs); planned ones a note until they
    are registered. One screenshot per tab."""
    registered = {e.name: e for e in STAGES}
    for name, title in PLANNED_TABS:
        title = registered[name].title if name in registered else title
        open_tab(page, title)
        if name in registered:
            expect(page.locator(f"#run-{name}")).to_be_visible()
        else:
            expect(page.locator(f"#note-{name}")).to_contain_text("not available yet")
        shot(page, name, top=True)
    open_tab(page, "Full pipeline")
    for option in ("video_path-path", "output_path", "sample_steps", "prompt", "replace"):
        expect(page.locator(f"#pipeline-{option}")).to_be_attached()
    shot(page, "pipeline", top=True)
    open_tab(page, "Runs")
    expect(page.locator("#runs-table")).to_be_visible()
    finished = sorted(p.parent.name for p in server.runs.glob("*-pipeline/job.json"))
    if finished:  # after the queue test: show the pipeline run with its previews
        choose(page, "run-select", finished[-1])
        expect(page.locator("#run-summary")).to_contain_text(finished[-1])
    shot(page, "runs-list", top=True)
