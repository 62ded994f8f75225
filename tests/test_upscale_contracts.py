"""Contracts with Real-ESRGAN's and SeedVR2's scripts: the argv our adapters build parses with the mirrors,
the mirrors equal the real upstream code when a clone is present, and the real upstreams run through
the stage on a GPU machine (random weights are enough: the contract is files, frames, size and audio)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, pattern_clip
from test_postprocess_contracts import clone_commit, describe, upstream_clone, upstream_parser

from replace_actor_video.core import config
from replace_actor_video.core.errors import UserError
from replace_actor_video.media.probe import probe_video
from replace_actor_video.upstream.realesrgan import mirror_inference_video as esrgan_mirror
from replace_actor_video.upstream.realesrgan import video as realesrgan
from replace_actor_video.upstream.seedvr import inference as seedvr
from replace_actor_video.upstream.seedvr import mirror_inference as seedvr_mirror


def test_realesrgan_argv_parses_with_the_mirror(tmp_path):
    call = realesrgan.RealEsrganCall(
        tmp_path / "Real-ESRGAN",
        tmp_path / "in" / realesrgan.INPUT_NAME,
        tmp_path / "out",
        "RealESRGAN_x4plus",
        4,
        512,
        True,
        True,
        "/usr/bin/ffmpeg",
    )
    args = esrgan_mirror.build_parser().parse_args(call.upstream_args())
    assert (args.input, args.output, args.model_name, args.outscale, args.tile) == (
        str(call.video),
        str(tmp_path / "out"),
        "RealESRGAN_x4plus",
        4.0,
        512,
    )
    assert (args.face_enhance, args.fp32, args.suffix, args.ffmpeg_bin, args.num_process_per_gpu) == (
        True,
        True,
        "out",
        "/usr/bin/ffmpeg",
        1,
    )
    assert call.output == tmp_path / "out" / "input_out.mp4"  # run(): f'{video_name}_{args.suffix}.mp4'
    assert set(realesrgan.MODEL_NAMES) <= set(esrgan_mirror.MODELS)


def test_realesrgan_single_gpu_env(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert realesrgan.single_gpu_env()["CUDA_VISIBLE_DEVICES"] == "3"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert realesrgan.single_gpu_env()["CUDA_VISIBLE_DEVICES"] == "0"


def test_realesrgan_mirror_equals_upstream():
    clone = upstream_clone(config.REALESRGAN)
    script = clone / esrgan_mirror.UPSTREAM_FILE
    if not script.is_file():
        pytest.skip(
            f"no Real-ESRGAN clone at {clone} (set {config.REALESRGAN.env}); mirror commit "
            f"{esrgan_mirror.UPSTREAM_COMMIT[:7]}"
        )
    assert describe(upstream_parser(script)) == describe(esrgan_mirror.build_parser()), (
        f"{script.name} changed since {esrgan_mirror.UPSTREAM_COMMIT[:7]} (clone at {clone_commit(clone)[:7]})"
    )
    source = script.read_text()
    for name, (netscale, files) in esrgan_mirror.MODELS.items():
        assert f"args.model_name == '{name}'" in source and f"netscale = {netscale}" in source
        for file in files:
            assert esrgan_mirror.RELEASES + file in source
    for rule in (
        "video_save_path = osp.join(args.output, f'{args.video_name}_{args.suffix}.mp4')",
        "model_path = os.path.join('weights', args.model_name + '.pth')",
        "num_process = num_gpus * args.num_process_per_gpu",
        "acodec='copy'",
    ):
        assert rule in source, f"upstream no longer has {rule!r}: recheck the adapter's traps"


def test_seedvr_argv_parses_with_the_mirror(tmp_path):
    call = seedvr.SeedVrCall(tmp_path / "SeedVR", "7b", tmp_path / "in", tmp_path / "out", 7, 1080, 1920, 4, 4)
    argv = call.argv()
    assert argv[1:3] == ["-m", "torch.distributed.run"] and argv[argv.index("--nproc_per_node") + 1] == "4"
    script = argv.index(str(tmp_path / "SeedVR" / "projects" / "inference_seedvr2_7b.py"))
    args = seedvr_mirror.build_parser().parse_args(argv[script + 1 :])
    assert (args.video_path, args.output_dir, args.seed, args.res_h, args.res_w, args.sp_size, args.out_fps) == (
        str(tmp_path / "in"),
        str(tmp_path / "out"),
        7,
        1080,
        1920,
        4,
        None,
    )
    assert call.env()["PYTHONPATH"].split(":")[0] == str(tmp_path / "SeedVR")


@pytest.mark.parametrize("gpus,sp,expected", [(1, 0, 1), (4, 0, 4), (4, 2, 2), (2, 1, 1)])
def test_seedvr_sp_size(gpus, sp, expected):
    assert seedvr.sp_size_for(gpus, sp) == expected


@pytest.mark.parametrize("script", seedvr_mirror.UPSTREAM_FILES)
def test_seedvr_mirror_equals_upstream(script):
    clone = upstream_clone(config.SEEDVR)
    path = clone / script
    if not path.is_file():
        pytest.skip(
            f"no SeedVR clone at {clone} (set {config.SEEDVR.env}); mirror commit {seedvr_mirror.UPSTREAM_COMMIT[:7]}"
        )
    assert describe(upstream_parser(path)) == describe(seedvr_mirror.build_parser()), (
        f"{script} changed since {seedvr_mirror.UPSTREAM_COMMIT[:7]} (clone at {clone_commit(clone)[:7]})"
    )
    model = "7b" if script.endswith("7b.py") else "3b"
    source = path.read_text()
    config_yaml = (clone / f"configs_{model}" / "main.yaml").read_text()
    for name in seedvr_mirror.RELATIVE_FILES[model]:
        where = config_yaml if name == "ckpts/ema_vae.pth" else source
        assert name.split("/")[-1] in where, f"{name} is no longer read by {script}: update RELATIVE_FILES"
    assert "dist.init_process_group" in (clone / "common" / "distributed" / "basic.py").read_text()


# -- the real upstreams (GPU machine; clones and weights present) ---------------------------------------


def _clip(tmp_path: Path) -> Path:
    clip = tmp_path / "clip.mp4"
    pattern_clip(clip, size="320x240", rate=30, seconds=1)
    return clip


def _run_upscale(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "run_upscale.py"), *args, "--runs_dir", str(tmp_path / "runs")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=1800,
    )


@pytest.mark.gpu
def test_real_realesrgan_through_the_stage(tmp_path):
    clone = upstream_clone(config.REALESRGAN)
    try:
        realesrgan.check_clone(clone)
        realesrgan.check_python(face_enhance=False)
    except UserError as exc:
        pytest.skip(f"real Real-ESRGAN not runnable here: {exc}")
    if realesrgan.missing_weights(clone, "realesr-general-x4v3"):
        pytest.skip(f"no realesr-general-x4v3 weights in {clone / 'weights'} (random ones do: see docs/FINISHING.md)")
    out = tmp_path / "up.mp4"
    res = _run_upscale(
        tmp_path,
        "--backend",
        "realesrgan",
        "--input",
        str(_clip(tmp_path)),
        "--output",
        str(out),
        "--realesrgan_dir",
        str(clone),
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr
    info = probe_video(out, count_frames=True)
    assert (info.width, info.height, info.frames, info.fps, info.has_audio) == (640, 480, 30, 30, True)


@pytest.mark.gpu
def test_real_seedvr2_through_the_stage(tmp_path):
    clone = upstream_clone(config.SEEDVR)
    try:
        seedvr.check_clone(clone, "3b")
    except UserError as exc:
        pytest.skip(f"real SeedVR2 not runnable here: {exc}")
    out = tmp_path / "up.mp4"
    res = _run_upscale(
        tmp_path,
        "--input",
        str(_clip(tmp_path)),
        "--output",
        str(out),
        "--res_h",
        "480",
        "--res_w",
        "640",
        "--seedvr_dir",
        str(clone),
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr
    info = probe_video(out, count_frames=True)
    assert (info.width, info.height, info.frames, info.has_audio) == (640, 480, 30, True)
