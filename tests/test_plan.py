"""The plan check (replace_actor_video/plan.py): the whole run is checked before any work. Every refusal below is
one line on stderr, exit 2, no traceback, and nothing written: no run directory, no stage log, no output (so no
upstream program ran). The same function backs --dry-run, which prints the plan with the seed it resolved once."""

from __future__ import annotations

import json
import shlex
import struct
import zlib
from pathlib import Path

import pytest
from conftest import ffmpeg, run_cli

from replace_actor_video.plan import Plan, check_pipeline, check_stage


def bomb_png(path: Path, side: int = 20000) -> Path:
    """A 20000x20000 1-bit PNG of ~50 KB: Pillow refuses to decode it (DecompressionBombError)."""
    row = b"\0" + b"\0" * ((side + 7) // 8)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(row * side, 9))
        + chunk(b"IEND", b"")
    )
    return path


def zero_size_avi(path: Path) -> Path:
    """A raw-video AVI whose headers say 0x0: ffprobe reports width 0, height 0 (a ZeroDivisionError before)."""
    raw = path.with_name("raw.avi")
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc=size=32x32:rate=24", "-t", "1", "-c:v", "rawvideo", "-pix_fmt", "bgr24", str(raw)
    )
    data = bytearray(raw.read_bytes())
    avih, strf = data.find(b"avih") + 8, data.find(b"strf") + 8
    data[avih + 32 : avih + 40] = bytes(8)  # dwWidth, dwHeight
    data[strf + 4 : strf + 12] = bytes(8)  # biWidth, biHeight
    path.write_bytes(bytes(data))
    raw.unlink()
    return path


@pytest.fixture
def work(tmp_path, media, fake_wan22, fake_ckpt):
    """A working folder with the inputs of a pipeline run, and the arguments every case shares."""
    folder = tmp_path / "work"
    folder.mkdir()
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=24",
        "-frames:v",
        "1",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        str(folder / "one_frame.mp4"),
    )
    bomb_png(folder / "huge.png")
    zero_size_avi(folder / "zero.avi")
    (folder / "a_file").write_text("not a folder")
    (folder / "bad_points.json").write_text('{"frames": [{"frame": 0, "positive": [[1, 2, 3]]}]}')
    (folder / "done.mp4").write_bytes(b"a finished video")
    args = [
        "--video_path",
        media["dance"],
        "--refer_path",
        media["ref"],
        "--wan22_dir",
        fake_wan22,
        "--ckpt_dir",
        fake_ckpt,
        "--runs_dir",
        folder / "runs",
    ]
    return folder, args


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


REFUSED = {  # extra pipeline.py arguments → what the one line says
    "4 GPUs' worth of heads: 3": (["--multi_gpu", "--nproc_per_node", "3"], "40 attention heads"),
    "one-frame video": (["--video_path", "{work}/one_frame.mp4"], "gives 1 frame(s); a video needs at least 2"),
    "target fps nan": (["--target_fps", "nan"], "--target_fps nan: expected a finite number"),
    "target fps inf": (["--target_fps", "inf"], "--target_fps inf: expected a finite number"),
    "target fps not above the source": (
        ["--fps", "16", "--target_fps", "12"],
        "--target_fps 12 is not above the preprocessing fps (16)",
    ),
    "decompression bomb reference": (["--refer_path", "{work}/huge.png"], "400,000,000 pixels"),
    "0x0 video in replace mode": (
        ["--video_path", "{work}/zero.avi", "--replace", "--mask_mode", "official"],
        "no picture size (0x0)",
    ),
    "run_dir is a file": (["--run_dir", "{work}/a_file"], "--run_dir {work}/a_file: this is a file"),
    "save_path is a file": (["--save_path", "{work}/a_file"], "--save_path {work}/a_file: this is a file"),
    "missing path starting with a dash": (["--video_path=-missing.mp4"], "-missing.mp4: file not found"),
    "points JSON with a bad point": (["--replace", "--points", "{work}/bad_points.json"], "bad_points.json"),
    "output exists": (
        ["--output_path", "{work}/done.mp4"],
        "done.mp4: the file exists; choose another output path or pass --overwrite",
    ),
    "output is a folder": (["--output_path", "{work}"], "this is a folder"),
    "output not a video name": (["--output_path", "{work}/out.txt"], "a video is written as .mp4, .m4v, .mov, .mkv"),
    "video is a folder": (["--video_path", "{work}"], "this is a folder; pass a file in it"),
    "flow shift not above 0": (["--sample_shift", "-1"], "--sample_shift -1: must be above 0"),
    "output folder missing": (["--output_path", "{work}/nowhere/out.mp4"], "nowhere does not exist"),
    "output folder not writable": (["--output_path", "/proc/out.mp4"], "/proc: cannot write there"),
    "output is an input": (["--output_path", "{ref}"], "this output location holds the input"),
    "output is an intermediate": (
        ["--output_path", "{work}/R/generate.mp4", "--run_dir", "{work}/R"],
        "the run keeps its own generate.mp4 there",
    ),
    "resolution too large": (["--resolution", "8192x8192"], "at most 4096 px per side"),
    "frame_num too large": (["--frame_num", "401"], "must be 4n+1 from 5 to 161"),
    "refine without replace": (["--refine"], "--refine is a second replace pass"),
}


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "run"])
@pytest.mark.parametrize("case", sorted(REFUSED))
def test_pipeline_refusals_come_before_any_work(case, dry_run, work, media):
    folder, args = work
    extra, message = REFUSED[case]
    fill = {"work": folder, "ref": media["ref"]}
    extra = [a.format(**fill) for a in extra]
    before = listing(folder)
    res = run_cli(
        "pipeline.py",
        *args,
        "--output_path",
        folder / "final.mp4",
        *extra,
        *(["--dry-run"] if dry_run else []),
        cwd=folder,
    )
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr  # one line, no traceback
    assert message.format(**fill) in lines[0], lines[0]
    assert listing(folder) == before  # nothing written: no run directory, no log, no output, no temp file
    assert "[dry-run]" not in res.stdout


def test_every_problem_is_reported_at_once(work, media):
    folder, args = work
    res = run_cli(
        "pipeline.py",
        *args,
        "--target_fps",
        "nan",
        "--refer_path",
        folder / "huge.png",
        "--multi_gpu",
        "--nproc_per_node",
        "3",
        "--dry-run",
        cwd=folder,
    )
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("error: ") for line in lines), res.stderr
    for needle in ("expected a finite number", "400,000,000 pixels", "40 attention heads"):
        assert any(needle in line for line in lines), (needle, lines)


def test_a_stage_cli_refuses_before_its_run_directory_exists(work, media, fake_wan22, fake_ckpt):
    folder, _ = work
    loc = ["--wan22_dir", fake_wan22, "--ckpt_dir", fake_ckpt, "--runs_dir", folder / "runs"]
    assert (
        run_cli(
            "run_preprocessing.py",
            "--video_path",
            media["dance"],
            "--refer_path",
            media["ref"],
            "--save_path",
            folder / "pp",
            *loc,
            cwd=folder,
        ).returncode
        == 0
    )
    before = listing(folder)
    res = run_cli(
        "run_generation.py",
        "--src_root_path",
        folder / "pp",
        "--save_file",
        folder / "g.mp4",
        "--multi_gpu",
        "--nproc_per_node",
        "3",
        *loc,
        cwd=folder,
    )
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1 and "40 attention heads" in res.stderr
    assert listing(folder) == before  # no second run directory, no generate log
    res = run_cli(
        "run_postprocess.py",
        "--input",
        media["dance"],
        "--output",
        folder / "i.mp4",
        "--target_fps",
        "inf",
        *loc[-2:],
        cwd=folder,
    )
    assert res.returncode == 2 and "--target_fps inf: expected a finite number" in res.stderr
    assert listing(folder) == before


def test_a_dash_path_reaches_ffprobe_as_a_file(work, media):
    folder, args = work
    (folder / "-clip.mp4").write_bytes(media["dance"].read_bytes())
    res = run_cli("pipeline.py", *args, "--video_path=-clip.mp4", "--dry-run", cwd=folder)
    assert res.returncode == 0, res.stderr
    assert f"--video_path {folder / '-clip.mp4'}" in res.stdout


def dry_run_commands(stdout: str) -> dict[str, list[str]]:
    return {
        line.split(": ", 1)[0][len("[dry-run] ") :]: shlex.split(line.split(": ", 1)[1])
        for line in stdout.splitlines()
        if line.startswith("[dry-run] ")
    }


def test_the_dry_run_seed_reproduces_the_commands_of_the_real_run(work, media):
    """The seed is drawn once and printed; a run with that seed runs exactly the printed generate command."""
    folder, args = work
    common = [*args, "--output_path", folder / "out.mp4", "--run_dir", folder / "R", "--resolution", "320x240"]
    dry = run_cli("pipeline.py", *common, "--dry-run", cwd=folder)
    assert dry.returncode == 0, dry.stderr
    seed = int(next(line for line in dry.stdout.splitlines() if line.startswith("[plan] seed: ")).split()[-1])
    planned = dry_run_commands(dry.stdout)
    generate_argv = planned["generate (official generate.py via launcher)"]
    assert generate_argv[generate_argv.index("--base_seed") + 1] == str(seed)
    assert run_cli("pipeline.py", *common, "--dry-run", cwd=folder).stdout != dry.stdout  # -1: a new seed each time
    real = run_cli("pipeline.py", *common, "--seed", str(seed), cwd=folder)
    assert real.returncode == 0, real.stderr
    manifest = json.loads((folder / "R" / "manifest.json").read_text())
    ran = {c["label"]: c["argv"] for stage in manifest["stages"].values() for c in stage.get("commands", [])}
    assert ran["generate (official generate.py via launcher)"] == generate_argv
    pre = "preprocess (official preprocess_data.py)"

    def but_save_path(argv: list[str]) -> list[str]:  # the run writes into a temporary name, renamed when complete
        cut = argv.index("--save_path")
        return argv[:cut] + argv[cut + 2 :]

    assert but_save_path(ran[pre]) == but_save_path(planned[pre])


def test_the_plan_api_takes_form_text_and_never_raises(work, media, fake_wan22, fake_ckpt):
    folder, _ = work
    values = {
        "video_path": str(media["dance"]),
        "refer_path": str(media["ref"]),
        "wan22_dir": str(fake_wan22),
        "ckpt_dir": str(fake_ckpt),
        "runs_dir": str(folder / "runs"),
        "output_path": str(folder / "o.mp4"),
        "sample_steps": "8",
        "seed": "42",
        "resolution": "320x240",
        "target_fps": "30",
        "fps": "16",
    }
    plan = check_pipeline(values)
    assert isinstance(plan, Plan) and plan.ok, plan.problems
    assert plan.facts["seed"] == 42 and plan.facts["frames"] == 32 and plan.facts["fps"] == 16
    # animate mode: the reference's 256x320 aspect at the 320x240 area, each side floored to 16
    assert plan.facts["clips"] == 1 and plan.facts["size"] == (240, 304) and plan.facts["final_frames"] == 60
    stages = [step.stage for step in plan.steps]
    assert stages[0] == "preprocess" and "generate" in stages and stages[-1] == "postprocess"
    last = plan.steps[-1]
    assert last.outputs == [str(folder / "o.mp4")] and last.inputs == [str(folder / "runs" / "o" / "generate.mp4")]
    assert not (folder / "runs").exists()  # a plan writes nothing
    bad = check_pipeline(
        {
            **values,
            "sample_steps": "many",
            "replace": "false",
            "nproc_per_node": "3",
            "multi_gpu": True,
            "refer_path": str(folder / "huge.png"),
        }
    )
    assert not bad.ok and not bad.steps
    by_option = {p.option: p.message for p in bad.problems}
    assert by_option["sample_steps"] == "--sample_steps 'many': expected a whole number"
    assert by_option["replace"] == "--replace 'false': expected true or false"
    assert "400,000,000 pixels" in by_option["refer_path"]
    stage_plan = check_stage(
        "generate",
        {
            "src_root_path": str(folder / "missing"),
            "runs_dir": str(folder / "runs"),
            "wan22_dir": str(fake_wan22),
            "ckpt_dir": str(fake_ckpt),
        },
    )
    assert [p.option for p in stage_plan.problems] == ["src_root_path"]
    assert check_stage("nonsense", {}).problems


CONFIG_ERRORS = {
    'replace = "false"': 'job.toml:replace = "false": expected true or false',
    'attention = "warp"': 'job.toml:attention = "warp": expected one of auto, fast',
    "sample_steps = true": "job.toml:sample_steps = true: expected a whole number",
    "fps = 16.5": "job.toml:fps = 16.5: expected a whole number",
    'prompt = ["a", "b"]': 'job.toml:prompt = ["a", "b"]: expected text',
    "target_fps = nan": "job.toml:target_fps = nan: expected a finite number",
    'resolution = "big"': "job.toml:resolution = \"big\": 'big' is not a resolution",
    "no_such_option = 1": "job.toml:no_such_option: unknown option",
}


@pytest.mark.parametrize("line", sorted(CONFIG_ERRORS))
def test_config_values_go_through_the_option_specs(line, work):
    folder, args = work
    (folder / "job.toml").write_text(f"[generation]\n{line}\n")
    before = listing(folder)
    res = run_cli("pipeline.py", *args, "--config", "job.toml", "--dry-run", cwd=folder)
    assert res.returncode == 2, res.stdout
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and CONFIG_ERRORS[line] in lines[0], res.stderr
    assert listing(folder) == before


def test_a_good_config_is_typed_and_the_command_line_wins(work, media):
    folder, args = work
    (folder / "job.toml").write_text(
        f'video_path = "{media["dance"]}"\nrefer_path = "{media["ref"]}"\n'
        "[sampling]\nsample_steps = 6\nseed = 7\nresolution = [320, 240]\n"
        "[finishing]\ntarget_fps = 30\nfps = 16\n"
    )
    res = run_cli("pipeline.py", *args[4:], "--config", "job.toml", "--seed", "9", "--dry-run", cwd=folder)
    assert res.returncode == 0, res.stderr
    generate = dry_run_commands(res.stdout)["generate (official generate.py via launcher)"]
    assert generate[generate.index("--sample_steps") + 1] == "6" and generate[generate.index("--base_seed") + 1] == "9"
    assert "[plan] size: 240x304" in res.stdout and "[plan] target_fps: 30" in res.stdout
    (folder / "two.toml").write_text('replace = "false"\nfps = 16.5\n')
    res = run_cli("pipeline.py", *args, "--config", "two.toml", "--dry-run", cwd=folder)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 2  # both bad keys, one line each
