"""The Web UI in a real browser: app_ui.py on a free port with the contract stand-ins as Wan2.2, driven by
Playwright in Debian's Chromium (and by gradio_client for what a hostile script would send). Screenshots go
to test-artifacts/ui/ (and to docs/ui/ with RAV_UI_SCREENSHOTS=docs, which is how the committed ones are
made)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

pytest.importorskip("gradio", reason="the UI needs requirements-ui.txt")
sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need the playwright package")
if not Path("/usr/bin/chromium").is_file():
    pytest.skip("the browser tests need Debian's chromium (apt-get install chromium)", allow_module_level=True)

from ui_helpers import CHROMIUM, CHROMIUM_ARGS, REPO, queue_jobs, start_server, tiny_sam2_checkpoint  # noqa: E402

from replace_actor_video.mask.points import load_points  # noqa: E402
from replace_actor_video.media.probe import probe_video  # noqa: E402
from replace_actor_video.ui.settings import LOCATION, server_specs  # noqa: E402

pytestmark = pytest.mark.browser
expect = sync_api.expect
ARTIFACTS = REPO / "test-artifacts" / "ui"
DOCS = REPO / "docs" / "ui"
JOB_WAIT = 90_000  # ms: a whole stand-in pipeline on a 2-core CI box, with margin
WIDE, NARROW = {"width": 1280, "height": 800}, {"width": 400, "height": 800}


@pytest.fixture(scope="module")
def sam2_dir(tmp_path_factory) -> Path | None:
    """A folder with a random-weight SAM2 checkpoint for the server to offer; None without torch/sam2."""
    try:
        import sam2  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        return None
    folder = tmp_path_factory.mktemp("sam2")
    tiny_sam2_checkpoint(folder)
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory, sam2_dir):
    extra = ("--sam2_checkpoint_dir", str(sam2_dir)) if sam2_dir else ()
    srv = start_server(tmp_path_factory.mktemp("ui-workspace"), extra_args=extra)
    yield srv
    srv.gate.unlink(missing_ok=True)
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_page(browser, url: str, viewport=WIDE):
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(url)
    expect(page.locator("#tabs")).to_be_visible()
    expect(page.locator("#job-list .rav-jobs")).to_be_attached()  # the first refresh came: the page is live
    return page


@pytest.fixture
def page(browser, server, request):
    page = open_page(browser, server.url)
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"end-of-{request.node.name}.png"), full_page=True)  # for failures
    page.context.close()


def shot(page, name: str, *, top: bool = False, full: bool = False) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    if top:
        page.evaluate("window.scrollTo(0, 0)")
        page.wait_for_timeout(200)
    if page.locator(".toast-close").count():  # notices off, once they have faded
        page.evaluate("() => document.querySelectorAll('.toast-close').forEach(b => b.click())")
        page.wait_for_timeout(600)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full)
    if os.environ.get("RAV_UI_SCREENSHOTS") == "docs":
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copy(ARTIFACTS / f"{name}.png", DOCS / f"{name}.png")


def box(page, elem_id: str):
    return page.locator(f"#{elem_id} textarea, #{elem_id} input:not([type=file])").first


def fill(page, elem_id: str, text: str) -> None:
    field = box(page, elem_id)
    field.fill(text)
    field.blur()


def open_tab(page, title: str, stage: str | None = None) -> None:
    page.get_by_role("tab", name=title, exact=True).click()
    if stage:
        page.locator("#stage-tabs").get_by_role("tab", name=stage, exact=True).click()


def choose(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").first.click()
    page.get_by_role("option", name=option, exact=True).click()


def job_folders(runs: Path) -> set[str]:
    return {p.name for p in runs.iterdir() if p.is_dir() and not p.name.startswith(".")} if runs.exists() else set()


def new_jobs(runs: Path, before: set[str], count: int = 1, timeout: float = 15.0) -> list[str]:
    """The job folders that appeared since `before`, once there are `count` of them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(job_folders(runs) - before)
        if len(found) >= count:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{count} new job(s) expected in {runs}, found {sorted(job_folders(runs) - before)}")


def row(page, job_id: str):
    """The job's row by its exact id: two jobs queued in one second are <id> and <id>-2, so text would match both."""
    return page.locator(f'#job-list .rav-job[data-job="{job_id}"]')


def in_view(page, locator) -> bool:
    """Wholly inside the viewport, the page not scrolled."""
    rect = locator.bounding_box()
    height = page.viewport_size["height"]
    return (
        page.evaluate("window.scrollY") == 0
        and rect is not None
        and rect["y"] >= 0
        and rect["y"] + rect["height"] <= height
    )


def fill_pipeline(page, prompt: str) -> None:
    fill(page, "pipeline-video_path-path", "media/dance.mp4")
    fill(page, "pipeline-refer_path-path", "media/ref.png")
    fill(page, "pipeline-resolution", "320x240")
    fill(page, "pipeline-prompt", prompt)
    page.locator("#pipeline-group-performance").get_by_text("Speed and memory", exact=False).first.click()
    choose(page, "pipeline-attention", "flash")  # the stand-in clone has no torch-free SDPA route


# -- instant checks -------------------------------------------------------------------------------------------
def test_a_bad_video_is_refused_next_to_its_field_at_once_and_nothing_is_queued(page, server):
    before = job_folders(server.runs)
    shot(page, "pipeline-1280", top=True)
    cases = [
        ("media/missing.mp4", "file not found"),  # missing
        ("media/ref.png", "still image, not a video"),  # an image where the video belongs
        ("media/notes.txt", "not a readable media file"),
    ]  # not media at all
    (server.workspace / "media" / "notes.txt").write_text("hello")
    fill(page, "pipeline-refer_path-path", "media/ref.png")
    for text, said in cases:
        fill(page, "pipeline-video_path-path", text)
        start = time.monotonic()
        page.locator("#run-pipeline").click()
        message = page.locator("#pipeline-video_path-path").get_by_text(said)
        expect(message).to_be_visible(timeout=2_000)  # next to the field, within 2 s
        assert time.monotonic() - start < 2.0, text
    # A typed path also says what is wrong with the character image, in its own place.
    fill(page, "pipeline-refer_path-path", "media/dance.mp4")
    page.locator("#run-pipeline").click()
    expect(page.locator("#pipeline-refer_path-path").get_by_text("not a readable image")).to_be_visible(timeout=2_000)
    page.locator("#pipeline-video_path-path").scroll_into_view_if_needed()
    shot(page, "refused-1280")
    # An uploaded file is judged by its content, not its name: code named clip.mp4 is refused too.
    fake = server.workspace / "clip.mp4"
    fake.write_text("import os\nos.system('touch pwned')\n")
    fill(page, "pipeline-video_path-path", "")
    fill(page, "pipeline-refer_path-path", "media/ref.png")
    page.locator("#pipeline-video_path input[type=file]").set_input_files(str(fake))
    page.locator("#run-pipeline").click()
    expect(page.locator("#pipeline-video_path")).to_contain_text("not a readable media file", timeout=10_000)
    assert job_folders(server.runs) == before
    expect(page.locator("#job-list")).to_contain_text("No jobs yet")


def test_preview_commands_answers_while_a_job_runs_and_creates_no_run(page, server):
    server.gate.touch()  # preprocessing stand-ins wait (printing progress) until the gate is removed
    try:
        open_tab(page, "Single stages", "Preprocess")
        fill(page, "preprocess-video_path-path", "media/dance.mp4")
        page.locator("#preprocess-refer_path input[type=file]").set_input_files(str(server.media["image"]))
        expect(page.locator("#preprocess-refer_path img")).to_be_visible()
        fill(page, "preprocess-resolution", "320x240")
        page.locator("#run-preprocess").click()
        expect(page.locator("[data-testid=job-progress-text]")).to_contain_text("/200", timeout=30_000)
        running = job_folders(server.runs)
        job = json.loads((server.runs / next(iter(running)) / "job.json").read_text())
        # The upload was checked and stored in the job folder under our own name.
        assert job["values"]["refer_path"].startswith(str(server.runs / job["id"] / "inputs" / "refer_path-"))

        open_tab(page, "Full pipeline")
        fill_pipeline(page, "a dancer")
        start = time.monotonic()
        page.locator("#preview-pipeline").click()
        commands = page.locator("#pipeline-commands")
        expect(commands).to_contain_text("python pipeline.py", timeout=5_000)
        assert time.monotonic() - start < 5.0  # not queued behind the running job
        expect(commands).to_contain_text("<job folder>/output_wanimate.mp4")
        expect(commands).to_contain_text("--attention flash")
        assert job_folders(server.runs) == running  # no run folder appeared
        assert json.loads((server.runs / job["id"] / "job.json").read_text())["status"] == "running"
        commands.evaluate("e => e.scrollIntoView({block: 'start'})")
        shot(page, "preview-commands-1280")
        page.locator("#now-cancel").click()
        expect(row(page, job["id"])).to_contain_text("cancelled", timeout=30_000)
    finally:
        server.gate.unlink(missing_ok=True)


def test_the_same_job_twice_asks_before_queueing_it_again(page, server):
    server.gate.touch()
    try:
        before = job_folders(server.runs)
        fill_pipeline(page, "twice")
        page.locator("#run-pipeline").click()
        [first] = new_jobs(server.runs, before)
        expect(page.locator("#job-status")).to_contain_text(first)  # the Run event is over: it opened the job
        page.locator("#run-pipeline").click()  # a double click, or a second thought
        expect(page.locator("#pipeline-problems")).to_contain_text("press Run again to queue it twice", timeout=15_000)
        assert len(job_folders(server.runs) - before) == 1
        page.locator("#run-pipeline").click()  # yes, twice
        expect(page.locator("#job-list .rav-job").filter(has_text="twice")).to_have_count(2)
        assert len(job_folders(server.runs) - before) == 2
        for job_id in sorted(job_folders(server.runs) - before, reverse=True):  # the queued one first
            row(page, job_id).click()
            expect(page.locator("#job-status")).to_contain_text(job_id)
            page.locator("#job-cancel").click()
            expect(row(page, job_id)).to_contain_text("cancelled", timeout=30_000)
    finally:
        server.gate.unlink(missing_ok=True)


# -- a finished job: result, re-run, load settings ---------------------------------------------------------------
def test_a_finished_job_shows_its_result_and_can_be_rerun_or_loaded_into_the_form(page, server):
    before = job_folders(server.runs)
    fill_pipeline(page, "a dancer; $(rm -rf ~) `whoami`")
    page.locator("#pipeline-replace").get_by_text("Replace", exact=True).click()  # the Animate / Replace switch
    page.locator("#pipeline-group-mask").get_by_text("Mask (replace mode)", exact=False).first.click()
    choose(page, "pipeline-mask_mode", "official")  # the contour mask needs SAM2 weights: not in this run
    page.locator("#run-pipeline").click()
    [job_id] = new_jobs(server.runs, before)
    expect(row(page, job_id)).to_contain_text("done", timeout=JOB_WAIT)
    row(page, job_id).click()
    expect(page.locator("#job-status")).to_contain_text("done")
    expect(page.locator("#job-result video")).to_have_count(1)  # the result inline
    downloads = page.locator("#job-downloads")
    expect(downloads).to_contain_text(re.compile(r"output_wanimate\s*\.mp4"))
    with page.expect_download() as download:
        downloads.locator('a[download="output_wanimate.mp4"]').click()
    result = server.runs / job_id / "output_wanimate.mp4"
    assert Path(download.value.path()).read_bytes() == result.read_bytes()
    info = probe_video(result, count_frames=True)
    assert (info.fps, info.frames, info.has_audio) == (30, 60, True)
    log = (server.runs / job_id / "logs" / "console.log").read_text()
    assert "input_prompt='a dancer; $(rm -rf ~) `whoami`'" in log  # the prompt reached the model verbatim
    expect(page.locator("#job-cancel")).to_be_disabled()  # nothing to cancel on a finished job
    page.locator("#job-detail").scroll_into_view_if_needed()
    shot(page, "job-result-1280")
    # Only what the UI chose to show is served: other workspace files and system files are refused.
    for path in (server.media["video"], Path("/etc/passwd"), result):
        assert page.request.get(f"{server.url}gradio_api/file={path}").status == 403

    # Load settings: a fresh page's form gets the job's values back, replace mode included.
    fresh = open_page(page.context.browser, server.url)
    try:
        row(fresh, job_id).click()
        expect(fresh.locator("#job-status")).to_contain_text(job_id)
        fresh.locator("#job-load").click()
        expect(box(fresh, "pipeline-prompt")).to_have_value("a dancer; $(rm -rf ~) `whoami`")
        expect(box(fresh, "pipeline-resolution")).to_have_value("320x240")
        expect(box(fresh, "pipeline-video_path-path")).to_have_value(str(server.media["video"]))
        expect(fresh.locator("#pipeline-replace input[value=Replace]")).to_be_checked()
    finally:
        fresh.context.close()

    # Re-run: a new job with the same values, queued at once.
    page.locator("#job-rerun").click()
    expect(page.locator("#job-list .rav-job")).to_have_count(len(before) + 2)
    [again] = new_jobs(server.runs, before | {job_id})
    assert (
        json.loads((server.runs / again / "job.json").read_text())["values"]
        == json.loads((server.runs / job_id / "job.json").read_text())["values"]
    )
    expect(row(page, again)).to_contain_text("done", timeout=JOB_WAIT)

    # New character, same mask: a generation from this job's preprocessing, no preprocessing and no SAM2 again.
    other = server.workspace / "other.png"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=200x300", "-frames:v", "1", str(other)],
        check=True,
    )
    row(page, job_id).click()
    expect(page.locator("#job-status")).to_contain_text(job_id)
    page.locator("#job-reuse").get_by_text("New character, same mask").click()
    page.locator("#job-reuse-image input[type=file]").set_input_files(str(other))
    expect(page.locator("#job-reuse-image img")).to_be_visible()
    page.locator("#job-reuse-run").click()
    [reused] = new_jobs(server.runs, before | {job_id, again})
    expect(row(page, reused)).to_contain_text("done", timeout=JOB_WAIT)
    expect(row(page, reused)).to_contain_text("Generation (new character)")
    source, made = server.runs / job_id / "preprocess", server.runs / reused / "process_results"
    assert (made / "src_ref.png").read_bytes() == other.read_bytes()
    assert (made / "src_mask.mp4").stat().st_ino == (source / "src_mask.mp4").stat().st_ino  # the same mask
    log = (server.runs / reused / "logs" / "console.log").read_text()
    assert "preprocess_data.py" not in log and "contour mask" not in log and "generate.py" in log

    # The Runs tab lists every run folder (terminal runs too) with its previews.
    open_tab(page, "Runs")
    choose(page, "run-select", job_id)
    expect(page.locator("#run-summary")).to_contain_text("generate: done")
    expect(page.locator("#run-mask-overlay img")).to_be_visible()
    shot(page, "runs-1280", top=True)


# -- the mask tool ------------------------------------------------------------------------------------------------
def test_mask_tool_points_on_several_frames_preview_and_use(page, server, sam2_dir):
    if sam2_dir is None:
        pytest.skip("the mask preview needs torch and sam2 (requirements-mask-cpu.txt)")
    open_tab(page, "Mask tool")
    fill(page, "mask-video-path", "media/dance.mp4")
    fill(page, "mask-resolution", "320x240")
    page.locator("#mask-load").click()
    img = page.locator("#mask-frame img")
    expect(img).to_be_visible()
    expect(page.locator("#mask-timeline")).to_contain_text("320x240 at 30 fps")

    def click_at(fx: float, fy: float) -> None:
        """A click at (fx, fy) of the picture (the element letterboxes it: object-fit contain)."""
        page.wait_for_function("() => document.querySelector('#mask-frame img').naturalWidth > 0")
        rect = img.bounding_box()
        nw, nh = img.evaluate("e => [e.naturalWidth, e.naturalHeight]")
        scale = min(rect["width"] / nw, rect["height"] / nh)
        x0, y0 = (rect["width"] - nw * scale) / 2, (rect["height"] - nh * scale) / 2
        img.click(position={"x": x0 + nw * scale * fx, "y": y0 + nh * scale * fy})

    def seek(frame: int) -> None:
        """Move the timeline to `frame` and wait for that frame's picture (clicks go to the frame on show)."""
        old = img.get_attribute("src")
        number = page.locator("#mask-timeline input[type=number]")
        number.fill(str(frame))
        number.press("Enter")
        page.wait_for_function("old => document.querySelector('#mask-frame img').src !== old", arg=old)

    points = page.locator("#mask-points")
    seek(3)
    expect(page.locator("#mask-timeline input[type=number]")).to_have_value("3")
    click_at(0.5, 0.4)
    expect(points).to_contain_text("1. frame 3: positive")
    page.locator("#mask-click-mode").get_by_text("negative", exact=True).click()
    click_at(0.1, 0.1)
    expect(points).to_contain_text("2. frame 3: negative")
    seek(8)
    page.locator("#mask-click-mode").get_by_text("positive", exact=True).click()
    click_at(0.6, 0.5)
    expect(points).to_contain_text("3. frame 8: positive")
    click_at(0.9, 0.9)
    expect(points).to_contain_text("4. frame 8: positive")
    points.get_by_text("4. frame 8: positive").click()  # tick it, then remove it
    page.locator("#mask-remove").click()
    expect(points).not_to_contain_text("4. frame 8")
    data = json.loads(page.locator("#mask-json .cm-content").inner_text())
    assert data["coords"] == "pixels" and (data["width"], data["height"]) == (320, 240)
    assert [(f["frame"], len(f["positive"]), len(f["negative"])) for f in data["frames"]] == [(3, 1, 1), (8, 1, 0)]
    (x, y), (nx, ny), (x8, y8) = (
        data["frames"][0]["positive"][0],
        data["frames"][0]["negative"][0],
        data["frames"][1]["positive"][0],
    )
    assert abs(x - 160) < 8 and abs(y - 96) < 8 and abs(nx - 32) < 8 and abs(ny - 24) < 8  # pixels of the frame
    assert abs(x8 - 192) < 8 and abs(y8 - 120) < 8

    page.locator("#mask-save").click()
    expect(page.locator("#mask-message")).to_contain_text("Saved")
    saved = sorted((server.runs / "points").glob("dance-*.json"))
    assert saved and [f.frame for f in load_points(saved[-1]).frames] == [3, 8]  # what the mask stage reads

    choose(page, "mask-sam2_checkpoint", "sam2.1_hiera_tiny.pt")
    fill(page, "mask-sam2_image_size", "128")  # random weights on 2 CPU cores: a small input keeps it quick
    fill(page, "mask-first", "3")
    fill(page, "mask-last", "9")
    page.locator("#mask-preview").click()
    expect(page.locator("#mask-preview-video video")).to_have_count(1, timeout=120_000)
    expect(page.locator("#mask-message")).to_contain_text("Mask of frames 3–9")
    shot(page, "mask-tool-1280", full=True)

    page.locator("#mask-use").click()
    expect(page.locator("#tab-pipeline")).to_be_visible()
    expect(box(page, "pipeline-points-path")).to_have_value(re.compile(r"/runs/points/dance-\w+\.json$"))
    expect(box(page, "pipeline-video_path-path")).to_have_value("media/dance.mp4")
    expect(page.locator("#pipeline-replace input[value=Replace]")).to_be_checked()


# -- security: no way to make the server run code ----------------------------------------------------------------
def test_the_ui_cannot_be_turned_into_a_code_runner(server, tmp_path):
    """The attack of issue 12: upload a `generate.py` and a `wan` package, then point a generation at them.
    A hostile script talks to the real server (gradio_client): there is no field for any location, and the
    uploads are refused by content; nothing is queued and nothing runs."""
    import httpx
    from gradio_client import Client, handle_file

    marker = tmp_path / "pwned"
    payload = f"open({str(marker)!r}, 'w').close()\n"
    (tmp_path / "wan").mkdir()
    (tmp_path / "wan" / "__init__.py").write_text(payload)
    (tmp_path / "generate.py").write_text(payload)
    before = job_folders(server.runs)

    config = json.loads(page_get(server.url + "config"))
    names = {s.name for s in server_specs(LOCATION)}
    for component in config["components"]:
        props = component.get("props", {})
        elem = str(props.get("elem_id") or "")
        assert not any(elem.endswith(f"-{name}") or elem.endswith(f"-{name}-path") for name in names), elem

    client = Client(server.url, verbose=False)
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    params = api["/run_pipeline"]["parameters"]
    labels = [p["label"] for p in params]
    assert not any("Wan2.2 clone" in label or "interpreter" in label.lower() for label in labels)
    video_at = labels.index("Driving video")
    image_at = labels.index("Character image")
    args = [p.get("parameter_default") for p in params]
    args[video_at] = handle_file(str(tmp_path / "generate.py"))
    args[image_at] = handle_file(str(server.media["image"]))
    with pytest.raises(Exception, match=r"Driving video: .*generate\.py: not a readable media file"):
        client.predict(*args, api_name="/run_pipeline")
    args[video_at] = handle_file(str(server.media["video"]))
    args[image_at] = handle_file(str(tmp_path / "wan" / "__init__.py"))
    with pytest.raises(httpx.HTTPStatusError, match="400 Bad Request"):  # Gradio's own image check, before ours
        client.predict(*args, api_name="/run_pipeline")
    # The upload did land in Gradio's cache; a path box pointing at it is refused by content too.
    uploaded = sorted(server.runs.glob(".ui-cache/uploads/*/generate.py"))
    assert uploaded, "gradio_client uploaded the file"
    args[video_at] = None
    args[labels.index("Driving video: or a path on the server")] = str(uploaded[0])
    args[image_at] = handle_file(str(server.media["image"]))
    with pytest.raises(Exception, match="not a readable media file"):
        client.predict(*args, api_name="/run_pipeline")
    assert job_folders(server.runs) == before
    assert not marker.exists()


def page_get(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read().decode()


# -- layout -----------------------------------------------------------------------------------------------------
def test_layout_at_400_px(browser, server):
    page = open_page(browser, server.url, NARROW)
    try:
        assert page.evaluate("document.documentElement.scrollWidth") <= 400  # nothing wider than the phone
        shot(page, "pipeline-400", top=True)
        run = page.locator("#run-pipeline")
        assert in_view(page, run), "the Run button stays in view on a long form"
        page.locator("#queue-panel").scroll_into_view_if_needed()
        expect(page.locator("#now-running")).to_be_visible()
        shot(page, "queue-400")
        open_tab(page, "Mask tool")
        shot(page, "mask-tool-400", top=True)
    finally:
        page.context.close()


# -- a busy queue, and a restart -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def busy(tmp_path_factory):
    """A server that starts with 16 jobs waiting (written as the UI writes them): the first runs (held at the
    gate), 15 stay queued. The second carries a crafted --wan22_dir pointing at an uploaded `wan` package."""
    workspace = tmp_path_factory.mktemp("ui-busy")
    srv = start_server(workspace)  # makes the media and the stand-in clone, then stops: the jobs come next
    srv.stop()
    evil = workspace / "runs" / ".ui-cache" / "uploads" / "0badc0de"
    (evil / "wan").mkdir(parents=True)
    payload = f"open({str(workspace / 'pwned')!r}, 'w').close()\n"
    (evil / "wan" / "__init__.py").write_text(payload)
    (evil / "generate.py").write_text(payload)
    ids = queue_jobs(workspace, 16, extra=["--wan22_dir", str(evil)])
    srv.gate.touch()
    srv = start_server(workspace)
    srv.ids = ids
    yield srv
    srv.gate.unlink(missing_ok=True)
    srv.stop()


def test_with_15_queued_the_running_job_and_its_log_stay_in_view(browser, busy):
    page = open_page(browser, busy.url)
    try:
        progress = page.locator("[data-testid=job-progress-text]")
        expect(progress).to_contain_text("/200", timeout=30_000)
        expect(page.locator("#job-list .rav-job.queued")).to_have_count(15)
        expect(page.locator("#now-running")).to_contain_text("15 queued")
        log = page.locator("#now-log .rav-log")
        assert in_view(page, progress) and in_view(page, log)

        script = (
            "() => { const b = document.querySelector('#now-log .rav-log');"
            " return [b.scrollTop, b.scrollHeight - b.clientHeight, b.textContent]; }"
        )

        def place():
            return page.evaluate(script)

        def next_refresh():
            """Wait for the log to get new text."""
            text = place()[2]
            page.wait_for_function(f"() => ({script})()[2] !== {json.dumps(text)}", timeout=15_000)

        def scroll(top: str) -> None:
            page.evaluate(
                f"() => {{ const b = document.querySelector('#now-log .rav-log'); b.scrollTop = {top};"
                " b.dispatchEvent(new Event('scroll')); }"
            )

        # The log follows its newest line...
        page.wait_for_function(f"() => ({script})()[1] > 20", timeout=30_000)  # longer than its box
        next_refresh()
        top, bottom, text = place()
        assert bottom - top <= 8
        assert re.search(r"\d+/200", text.strip().splitlines()[-1])
        # ...until the user scrolls up: then it stays where they are while lines keep coming...
        scroll("5")
        next_refresh()
        next_refresh()
        assert place()[0] == 5
        # ...and follows again once they scroll back to the bottom.
        scroll("b.scrollHeight")
        next_refresh()
        top, bottom, _ = place()
        assert bottom - top <= 8
        shot(page, "queue-15-1280")

        # Rows say where each job stands; a click opens one; a queued job moves and can be cancelled.
        last_id = busy.ids[-1]
        expect(row(page, last_id)).to_contain_text("#15")
        expect(row(page, last_id)).to_contain_text("Preprocess dance.mp4 · Animate · 320x240")
        row(page, last_id).click()
        expect(page.locator("#job-status")).to_contain_text("Number 15 in the queue")
        page.locator("#job-up").click()
        expect(page.locator("#job-status")).to_contain_text("Number 14 in the queue")
        expect(row(page, last_id)).to_contain_text("#14")
        page.locator("#job-down").click()
        expect(page.locator("#job-status")).to_contain_text("Number 15 in the queue")
        page.locator("#job-cancel").click()
        expect(row(page, last_id)).to_contain_text("cancelled")
        page.locator("#job-remove").click()
        expect(row(page, last_id)).to_have_count(0)
        assert json.loads((busy.runs / last_id / "job.json").read_text())["hidden"] is True  # the folder stays
    finally:
        page.context.close()


def test_a_queued_job_is_still_queued_after_a_restart_and_then_runs(browser, busy):
    first, crafted, nxt = busy.ids[0], busy.ids[1], busy.ids[2]
    busy.stop()  # the UI stops; the running job goes on (its own session)
    restarted = start_server(busy.workspace)
    busy.proc, busy.url = restarted.proc, restarted.url
    page = open_page(browser, busy.url)
    try:
        expect(row(page, first)).to_contain_text("running")
        expect(row(page, nxt)).to_contain_text("queued")
        expect(row(page, nxt)).to_contain_text("#2")
        busy.gate.unlink()
        expect(row(page, first)).to_contain_text("done", timeout=JOB_WAIT)
        # The crafted job's turn: refused before it starts; its `wan` package is never imported.
        expect(row(page, crafted)).to_contain_text("failed", timeout=30_000)
        record = json.loads((busy.runs / crafted / "job.json").read_text())
        assert record["message"].startswith("refused: --wan22_dir") and record["pid"] is None
        expect(row(page, nxt)).to_contain_text("done", timeout=JOB_WAIT)
        assert not (busy.workspace / "pwned").exists()
    finally:
        page.context.close()
