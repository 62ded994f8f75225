"""run_refine.py for real: the preprocess and generate stages in replace mode over a generated video,
against the contract stand-ins of preprocess_data.py and generate.py (tests/standins)."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli

from replace_actor_video.media.probe import probe_video


def locations(fake_wan22, fake_ckpt, tmp_path) -> list:
    return ["--wan22_dir", fake_wan22, "--ckpt_dir", fake_ckpt, "--runs_dir", tmp_path / "runs"]


def test_refine_is_a_replace_pass_that_keeps_fps_frames_and_audio(media, fake_wan22, fake_ckpt, tmp_path):
    out = tmp_path / "refined.mp4"
    res = run_cli(
        "run_refine.py",
        "--input",
        media["dance"],
        "--refer_path",
        media["ref"],
        "--save_file",
        out,
        "--save_path",
        tmp_path / "refine_pp",
        "--resolution",
        "320x240",
        "--prompt",
        "same dancer",
        "--sample_steps",
        "4",
        "--seed",
        "3",
        "--mask_mode",
        "official",
        "--iterations",
        "2",
        *locations(fake_wan22, fake_ckpt, tmp_path),
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr
    info = probe_video(out, count_frames=True)
    # --fps defaults to -1: the generated video's own rate (24), all 48 frames, its audio carried through
    assert (float(info.fps), info.frames, info.has_audio) == (24.0, 48, True)
    assert {"src_bg.mp4", "src_mask.mp4"} <= {p.name for p in (tmp_path / "refine_pp").iterdir()}
    (run_dir,) = (tmp_path / "runs").iterdir()
    outer = json.loads((run_dir / "manifest.json").read_text())
    assert outer["stages"]["refine"]["status"] == "done"
    inner = json.loads((run_dir / "refine" / "manifest.json").read_text())["stages"]
    pre = next(c["argv"] for c in inner["preprocess"]["commands"])
    gen = next(c["argv"] for c in inner["generate"]["commands"])
    assert "--replace_flag" in pre and pre[pre.index("--iterations") + 1] == "2"
    assert "--replace_flag" in gen and gen[gen.index("--base_seed") + 1] == "3"
    assert "input_prompt='same dancer'" in res.stdout


def test_refine_dry_run_prints_both_stages(media, fake_wan22, fake_ckpt, tmp_path):
    res = run_cli(
        "run_refine.py",
        "--dry-run",
        "--input",
        media["dance"],
        "--refer_path",
        media["ref"],
        "--save_file",
        tmp_path / "r.mp4",
        "--runs_dir",
        tmp_path / "runs",
        "--wan22_dir",
        fake_wan22,
        "--ckpt_dir",
        fake_ckpt,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("[dry-run]")]
    assert "preprocess_data.py" in lines[0] and "--replace_flag" in lines[0] and "--fps -1" in lines[0]
    assert "replace_actor_video.mask" in lines[1]  # the contour mask: the default in replace mode
    assert "generate.py" in lines[2] and "--replace_flag" in lines[2]
    assert "-map 1:a:0" in lines[3]
    assert not (tmp_path / "r.mp4").exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "override,message",
    [
        (["--input", "{tmp}/nope.mp4"], "nope.mp4: file not found"),
        (["--refer_path", "{tmp}/nope.png"], "nope.png: file not found"),
        (["--save_file", "{dance}"], "--save_file is the input"),
        (["--fps", "0"], "--fps 0"),
    ],
)
def test_refine_bad_input(override, message, media, fake_wan22, fake_ckpt, tmp_path):
    args = {"--input": str(media["dance"]), "--refer_path": str(media["ref"]), "--save_file": str(tmp_path / "r.mp4")}
    args[override[0]] = override[1].format(tmp=tmp_path, dance=media["dance"])
    res = run_cli(
        "run_refine.py",
        *[x for kv in args.items() for x in kv],
        "--mask_mode",
        "official",
        *locations(fake_wan22, fake_ckpt, tmp_path),
        cwd=tmp_path,
    )
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], res.stderr
    assert not (tmp_path / "r.mp4").exists() and not (tmp_path / "runs").exists()


def test_refine_missing_checkpoint_is_named_before_anything_is_written(media, fake_wan22, fake_ckpt, tmp_path):
    (fake_ckpt / "process_checkpoint" / "sam2" / "sam2_hiera_large.pt").unlink()
    res = run_cli(
        "run_refine.py",
        "--input",
        media["dance"],
        "--refer_path",
        media["ref"],
        "--save_file",
        tmp_path / "r.mp4",
        "--mask_mode",
        "official",
        *locations(fake_wan22, fake_ckpt, tmp_path),
        cwd=tmp_path,
    )
    assert res.returncode == 2 and "sam2/sam2_hiera_large.pt" in res.stderr
    assert not (tmp_path / "runs").exists()


def test_refine_takes_the_generation_speed_options(media, fake_wan22, fake_ckpt, tmp_path):
    lora = tmp_path / "distill.safetensors"
    header = (
        b'{"diffusion_model.blocks.0.self_attn.q.lora_down.weight":{"dtype":"F32","shape":[1,1],"data_offsets":[0,4]},'
        b'"diffusion_model.blocks.0.self_attn.q.lora_up.weight":{"dtype":"F32","shape":[1,1],"data_offsets":[4,8]}}'
    )
    lora.write_bytes(len(header).to_bytes(8, "little") + header + bytes(8))
    res = run_cli(
        "run_refine.py",
        "--dry-run",
        "--input",
        media["dance"],
        "--refer_path",
        media["ref"],
        "--save_file",
        tmp_path / "r.mp4",
        "--runs_dir",
        tmp_path / "runs",
        "--preset",
        "fast",
        "--lora",
        f"{lora}:0.7",
        "--attention",
        "fa3",
        "--compile",
        "--vae_bf16",
        "--wan22_dir",
        fake_wan22,
        "--ckpt_dir",
        fake_ckpt,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("[dry-run]") and "generate.py" in ln)
    for needle in (
        "--sample_steps 4",
        "--sample_guide_scale 1.0",
        f"--lora {lora}:0.7",
        "--attention fa3",
        "--compile",
        "--vae_bf16",
        "--replace_flag",
    ):
        assert needle in line, needle
