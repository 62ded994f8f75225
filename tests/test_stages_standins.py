"""The preprocess and generate stages and the pipeline, run for real against contract stand-ins of the
upstream scripts (tests/standins), with real ffmpeg/ffprobe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import locations, run_cli
from test_upscale import fake_realesrgan  # noqa: F401  (a pytest fixture: the Real-ESRGAN stand-in clone)

from replace_actor_video.media.probe import probe_video


def manifests(runs: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(runs.rglob("manifest.json"))]


@pytest.mark.parametrize("replace", [False, True])
def test_preprocess_then_generate(media, fake_wan22, fake_ckpt, tmp_path, replace):
    mode = ["--replace"] if replace else []
    loc = locations(fake_wan22, fake_ckpt, tmp_path)
    pre = run_cli(
        "run_preprocessing.py",
        "--video_path",
        media["dance"],
        "--refer_path",
        media["ref"],
        "--save_path",
        tmp_path / "pp",
        "--resolution",
        "640x368",
        "--fps",
        "16",
        *mode,
        "--mask_mode",
        "official",
        *loc,
        cwd=tmp_path,
    )
    assert pre.returncode == 0, pre.stderr
    expected = {"src_ref.png", "src_face.mp4", "src_pose.mp4", "rav_preprocess.json"}
    if replace:
        expected |= {"src_bg.mp4", "src_mask.mp4"}
    assert {p.name for p in (tmp_path / "pp").iterdir()} == expected
    assert not list(tmp_path.glob(".pp.partial-*")), "the temp folder must be gone"

    out = tmp_path / "result.mp4"
    gen = run_cli(
        "run_generation.py",
        "--src_root_path",
        tmp_path / "pp",
        "--save_file",
        out,
        "--prompt",
        "a dancer in red",
        *mode,
        *loc,
        cwd=tmp_path,
    )
    assert gen.returncode == 0, gen.stderr
    # The prompt really reached the (stand-in) model through the launcher patch, attention went to SDPA.
    assert "input_prompt='a dancer in red'" in gen.stdout
    assert "attention=sdpa" in gen.stdout
    # generate.py writes 30 fps; we retime to the preprocessing fps (16), keep 32 frames (2 s × 16), add audio.
    info = probe_video(out, count_frames=True)
    assert (info.fps, info.frames, info.has_audio) == (16, 32, True)
    assert abs(info.duration - 2.0) <= 1 / 16
    runs = manifests(tmp_path / "runs")
    gen_record = next(m for m in runs if "generate" in m["stages"])["stages"]["generate"]
    assert gen_record["status"] == "done" and gen_record["options"]["seed"] >= 0
    assert any("--refert_num" in c["argv"] for c in gen_record["commands"])


def test_generation_fails_loudly_when_upstream_save_fails(media, fake_wan22, fake_ckpt, tmp_path):
    loc = locations(fake_wan22, fake_ckpt, tmp_path)
    assert (
        run_cli(
            "run_preprocessing.py",
            "--video_path",
            media["dance"],
            "--refer_path",
            media["ref"],
            "--save_path",
            tmp_path / "pp",
            "--resolution",
            "640x368",
            *loc,
            cwd=tmp_path,
        ).returncode
        == 0
    )
    out = tmp_path / "result.mp4"
    gen = run_cli(
        "run_generation.py",
        "--src_root_path",
        tmp_path / "pp",
        "--save_file",
        out,
        *loc,
        cwd=tmp_path,
        env={"STANDIN_SAVE_FAILS": "1"},
    )
    assert gen.returncode == 1
    assert "exited 0 but did not write" in gen.stderr
    assert not out.exists()


def test_pipeline_runs_resumes_and_forces(media, fake_wan22, fake_ckpt, tmp_path):
    loc = locations(fake_wan22, fake_ckpt, tmp_path)
    out = tmp_path / "final.mp4"
    args = [
        "--video_path",
        media["dance"],
        "--refer_path",
        media["ref"],
        "--replace",
        "--mask_mode",
        "official",
        "--resolution",
        "640x368",
        "--output_path",
        out,
        "--seed",
        "7",
        *loc,
    ]
    first = run_cli("pipeline.py", *args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    info = probe_video(out, count_frames=True)
    assert (info.fps, info.frames, info.has_audio) == (30, 60, True)
    run_dir = tmp_path / "runs" / "final"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert [manifest["stages"][s]["status"] for s in ("preprocess", "generate")] == ["done", "done"]
    assert manifest["stages"]["preprocess"]["inputs"]["video_path"]["sha256"]
    assert (run_dir / "logs" / "preprocess.log").is_file() and (run_dir / "logs" / "generate.log").is_file()
    mtime = out.stat().st_mtime_ns

    again = run_cli("pipeline.py", *args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "preprocess: up to date" in again.stdout and "generate: up to date" in again.stdout
    assert "stand-in preprocess" not in again.stdout
    assert out.stat().st_mtime_ns == mtime

    changed = run_cli("pipeline.py", *args[: -len(loc)], "--sample_steps", "4", *loc, cwd=tmp_path)
    assert changed.returncode == 0, changed.stderr
    assert "preprocess: up to date" in changed.stdout and "generate: up to date" not in changed.stdout

    forced = run_cli("pipeline.py", *args, "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert "stand-in preprocess" in forced.stdout


def test_pipeline_dry_run_prints_commands_and_runs_nothing(media, fake_wan22, fake_ckpt, tmp_path):
    out = tmp_path / "out.mp4"
    res = run_cli(
        "pipeline.py",
        "--dry-run",
        "--video_path",
        media["dance"],
        "--refer_path",
        media["ref"],
        "--replace",
        "--output_path",
        out,
        "--runs_dir",
        tmp_path / "runs",
        "--wan22_dir",
        fake_wan22,
        "--ckpt_dir",
        fake_ckpt,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    lines = [line for line in res.stdout.splitlines() if line.startswith("[dry-run]")]
    assert "preprocess_data.py" in lines[0] and "--replace_flag" in lines[0]
    assert "replace_actor_video.mask" in lines[1]  # contour mask: the default in replace mode
    generate = lines[2]
    for needle in ("generate.py", "--task animate-14B", "--replace_flag", "--refert_num 1", "--save_file"):
        assert needle in generate
    assert "-map 1:a:0" in lines[3]  # the source has audio: it is muxed back
    assert not out.exists() and not (tmp_path / "runs").exists()


def test_pipeline_dry_run_prints_all_five_stages_in_order(
    media,
    fake_wan22,
    fake_ckpt,
    fake_realesrgan,  # noqa: F811
    tmp_path,
):
    res = run_cli(
        "pipeline.py",
        "--dry-run",
        "--video_path",
        media["dance"],
        "--refer_path",
        media["ref"],
        "--replace",
        "--fps",
        "16",
        "--output_path",
        tmp_path / "out.mp4",
        "--refine",
        "--target_fps",
        "30",
        "--upscale",
        "realesrgan",
        "--runs_dir",
        tmp_path / "runs",
        "--wan22_dir",
        fake_wan22,
        "--ckpt_dir",
        fake_ckpt,
        "--realesrgan_dir",
        fake_realesrgan,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    lines = [line for line in res.stdout.splitlines() if line.startswith("[dry-run]")]
    upstream = [
        next(i for i, line in enumerate(lines) if needle in line)
        for needle in ("preprocess_data.py", "generate.py", "refine_process", "minterpolate", "realesrgan")
    ]
    assert upstream == sorted(upstream), "stages out of order"
    assert (
        sum("preprocess_data.py" in line for line in lines) == 2 and sum("generate.py" in line for line in lines) == 2
    )
    assert str(tmp_path / "out.mp4") in lines[-1], "the last stage writes --output_path"
    assert not (tmp_path / "out.mp4").exists() and not (tmp_path / "runs").exists()


def test_pipeline_with_interpolation_to_30_fps(media, fake_wan22, fake_ckpt, tmp_path):
    out = tmp_path / "final30.mp4"
    res = run_cli(
        "pipeline.py",
        "--video_path",
        media["dance"],
        "--refer_path",
        media["ref"],
        "--fps",
        "16",
        "--resolution",
        "320x240",
        "--target_fps",
        "30",
        "--interp_backend",
        "ffmpeg",
        "--output_path",
        out,
        *locations(fake_wan22, fake_ckpt, tmp_path),
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert "step 3/3: postprocess" in res.stdout
    info = probe_video(out, count_frames=True)
    assert (info.fps, info.frames, info.has_audio) == (30, 60, True)
    assert abs(info.duration - 2.0) <= 1 / 30
    assert (tmp_path / "runs" / "final30" / "generate.mp4").is_file(), "intermediates stay in the run directory"


def test_pipeline_refuses_a_target_fps_not_above_the_preprocessing_fps(media, fake_wan22, fake_ckpt, tmp_path):
    res = run_cli(
        "pipeline.py",
        "--video_path",
        media["dance"],
        "--refer_path",
        media["ref"],
        "--target_fps",
        "30",
        "--runs_dir",
        tmp_path / "runs",
        "--wan22_dir",
        fake_wan22,
        "--ckpt_dir",
        fake_ckpt,
        cwd=tmp_path,
    )
    assert res.returncode == 2 and "--target_fps 30 is not above the preprocessing fps (30)" in res.stderr
