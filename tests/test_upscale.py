"""run_upscale.py for real against contract stand-ins of Real-ESRGAN's and SeedVR2's scripts (tests/standins):
the user gets exactly --output (whatever upstream names its file), every frame, the source audio, H.264
yuv420p; failures upstream hides are caught; bad input exits 2 and writes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import REPO, STANDINS, run_cli
from test_postprocess import fake_modules, make_clips

from replace_actor_video.media.probe import probe_video

TORCHVISION_017 = {  # the layout of torchvision >= 0.17: functional_tensor is gone
    "torchvision/__init__.py": "",
    "torchvision/transforms/__init__.py": "",
    "torchvision/transforms/functional.py": "def rgb_to_grayscale(img, num_output_channels=1):\n    return img\n",
}


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict[str, Path]:
    return make_clips(tmp_path_factory.mktemp("upscale_media"))


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@pytest.fixture
def fake_realesrgan(tmp_path, monkeypatch) -> Path:
    """A Real-ESRGAN clone (after `setup.py develop`, weights downloaded) whose video script is the stand-in,
    with a torchvision >= 0.17 first on the path so basicsr's old import really needs our shim."""
    root = tmp_path / "Real-ESRGAN"
    (root / "realesrgan").mkdir(parents=True)
    shutil.copy(STANDINS / "realesrgan_inference_video.py", root / "inference_realesrgan_video.py")
    (root / "realesrgan" / "__init__.py").write_text("from .version import *\n")
    (root / "realesrgan" / "version.py").write_text("__version__ = '0.3.0'\n")
    (root / "weights").mkdir()
    for name in ("realesr-general-x4v3", "realesr-general-wdn-x4v3", "RealESRGAN_x4plus"):
        (root / "weights" / f"{name}.pth").write_bytes(b"stand-in")
    site = tmp_path / "fake_site"
    for rel, text in TORCHVISION_017.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text)
    fake_modules(site, [m for m in ("torch", "basicsr", "cv2") if not _importable(m)])
    if not _importable("ffmpeg"):  # ffmpeg-python is recognised by its _probe.py
        fake_modules(site, ["ffmpeg"])
        (site / "ffmpeg" / "_probe.py").write_text("")
    monkeypatch.setenv("PYTHONPATH", str(site))
    monkeypatch.setenv("RAV_REPO", str(REPO))
    return root


@pytest.fixture
def fake_seedvr(tmp_path, monkeypatch) -> Path:
    """A SeedVR clone with the files its 3B script reads from the cwd, both scripts being the stand-in."""
    root = tmp_path / "SeedVR"
    for model in ("3b", "7b"):
        (root / "projects").mkdir(parents=True, exist_ok=True)
        shutil.copy(STANDINS / "seedvr_inference_seedvr2.py", root / "projects" / f"inference_seedvr2_{model}.py")
    for rel in (
        "configs_3b/main.yaml",
        "ckpts/seedvr2_ema_3b.pth",
        "ckpts/ema_vae.pth",
        "pos_emb.pt",
        "neg_emb.pt",
        "data/__init__.py",
        "common/__init__.py",
    ):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")
    monkeypatch.setenv("RAV_REPO", str(REPO))
    return root


def info_of(path: Path) -> tuple:
    info = probe_video(path, count_frames=True)
    return info.width, info.height, info.frames, float(info.fps), info.has_audio, f"{info.codec}/{info.pix_fmt}"


def commands(runs: Path) -> list[list[str]]:
    (path,) = runs.rglob("manifest.json")
    return [c["argv"] for c in json.loads(path.read_text())["stages"]["upscale"]["commands"]]


def test_realesrgan_gives_exactly_output_with_audio(clips, fake_realesrgan, tmp_path):
    out = tmp_path / "final" / "up2x.mp4"
    out.parent.mkdir()
    res = run_cli(
        "run_upscale.py",
        "--backend",
        "realesrgan",
        "--input",
        clips["clip16"],
        "--output",
        out,
        "--outscale",
        "2",
        "--tile",
        "256",
        "--realesrgan_dir",
        fake_realesrgan,
        "--runs_dir",
        tmp_path / "runs",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr
    assert info_of(out) == (320, 240, 32, 16.0, True, "h264/yuv420p")
    assert sorted(p.name for p in out.parent.iterdir()) == ["up2x.mp4"]  # not up2x_out.mp4 or input_out.mp4
    assert "aliased it to torchvision.transforms.functional" in res.stdout  # basicsr's import needed the shim
    assert "CUDA_VISIBLE_DEVICES=0" in res.stdout  # one GPU: no -ss/-to split of the video
    upstream = next(a for a in commands(tmp_path / "runs") if "--realesrgan_dir" in a)
    assert upstream[upstream.index("-t") + 1] == "256" and upstream[upstream.index("--suffix") + 1] == "out"
    assert not list((tmp_path / "runs").rglob("work/*")), "scratch files must be gone"


def test_realesrgan_skipped_frame_fails_loudly(clips, fake_realesrgan, tmp_path, monkeypatch):
    monkeypatch.setenv("STANDIN_REALESRGAN_SKIP_FRAME", "1")
    out = tmp_path / "up.mp4"
    res = run_cli(
        "run_upscale.py",
        "--backend",
        "realesrgan",
        "--input",
        clips["clip16"],
        "--output",
        out,
        "--realesrgan_dir",
        fake_realesrgan,
        "--runs_dir",
        tmp_path / "runs",
        cwd=tmp_path,
    )
    assert res.returncode == 1
    assert "wrote 31 frames, expected 32" in res.stderr and "--tile 512" in res.stderr
    assert not out.exists()


def test_realesrgan_missing_weights_offline_fails_with_the_reason(clips, fake_realesrgan, tmp_path):
    out = tmp_path / "up.mp4"
    res = run_cli(
        "run_upscale.py",
        "--backend",
        "realesrgan",
        "--model_name",
        "realesr-animevideov3",
        "--input",
        clips["clip16"],
        "--output",
        out,
        "--realesrgan_dir",
        fake_realesrgan,
        "--runs_dir",
        tmp_path / "runs",
        cwd=tmp_path,
    )
    assert "realesr-animevideov3.pth not in" in res.stdout  # said before launching
    assert res.returncode == 1 and "Temporary failure in name resolution" in res.stderr
    assert not out.exists()


@pytest.mark.parametrize("no_audio", [False, True])
def test_seedvr_through_torchrun_folder_io_and_audio(clips, fake_seedvr, tmp_path, no_audio):
    pytest.importorskip("torch", reason="SeedVR is launched with torch.distributed.run")
    out = tmp_path / "up720.mp4"
    res = run_cli(
        "run_upscale.py",
        "--input",
        clips["clip16"],
        "--output",
        out,
        "--res_h",
        "240",
        "--res_w",
        "320",
        "--seedvr_dir",
        fake_seedvr,
        "--runs_dir",
        tmp_path / "runs",
        *(["--no_audio"] if no_audio else []),
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr
    assert info_of(out) == (320, 240, 32, 16.0, not no_audio, "h264/yuv420p")
    argv = next(a for a in commands(tmp_path / "runs") if "torch.distributed.run" in a)
    assert argv[argv.index("--nproc_per_node") + 1] == "1" and argv[argv.index("--sp_size") + 1] == "1"
    assert argv[argv.index("--video_path") + 1].endswith("/work/upscale/in")


def test_dry_run_prints_three_commands_and_writes_nothing(clips, fake_seedvr, tmp_path):
    out = tmp_path / "out.mp4"
    res = run_cli(
        "run_upscale.py",
        "--dry-run",
        "--input",
        clips["clip16"],
        "--output",
        out,
        "--num_gpus",
        "2",
        "--seedvr_dir",
        fake_seedvr,
        "--runs_dir",
        tmp_path / "runs",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("[dry-run]")]
    assert len(lines) == 3 and "-an" in lines[0] and "--nproc_per_node 2" in lines[1] and "--sp_size 2" in lines[1]
    assert "-map 1:a:0" in lines[2]
    assert not out.exists() and not (tmp_path / "runs").exists()


BAD = {
    "missing input": (["--input", "{tmp}/nope.mp4"], "nope.mp4: file not found"),
    "no video stream": (["--input", "{tone}"], "tone.m4a: no video stream"),
    "output is input": (["--output", "{clip16}"], "holds the input"),
    "seedvr no clone": (["--seedvr_dir", "{tmp}/none"], "inference_seedvr2_3b.py not found"),
    "seedvr no checkpoint": (["--rm", "ckpts/seedvr2_ema_3b.pth"], "missing ckpts/seedvr2_ema_3b.pth"),
    "seedvr 7b not downloaded": (["--model", "7b"], "missing configs_7b/main.yaml, ckpts/seedvr2_ema_7b.pth"),
    "bad sp_size": (["--num_gpus", "2", "--sp_size", "3"], "sp_size must divide num_gpus"),
    "tiny resolution": (["--res_h", "8"], "--res_h 8"),
    "realesrgan no clone": (
        ["--backend", "realesrgan", "--realesrgan_dir", "{tmp}/none"],
        "inference_realesrgan_video.py not found",
    ),
    "realesrgan not set up": (["--backend", "realesrgan", "--rm-esrgan", "realesrgan/version.py"], "setup.py develop"),
    "realesrgan bad scale": (["--backend", "realesrgan", "--outscale", "3"], None),  # argparse: exit 2 too
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_exit_2_nothing_written(case, clips, fake_realesrgan, fake_seedvr, tmp_path):
    override, message = BAD[case]
    values = {k: str(v) for k, v in {"tmp": tmp_path, **clips}.items()}
    args = {
        "--input": str(clips["clip16"]),
        "--output": str(tmp_path / "out.mp4"),
        "--seedvr_dir": str(fake_seedvr),
        "--realesrgan_dir": str(fake_realesrgan),
    }
    it = iter(override)
    for flag in it:
        if flag == "--rm":
            (fake_seedvr / next(it)).unlink()
        elif flag == "--rm-esrgan":
            (fake_realesrgan / next(it)).unlink()
        else:
            args[flag] = next(it).format(**values)
    res = run_cli(
        "run_upscale.py", *[x for kv in args.items() for x in kv], "--runs_dir", tmp_path / "runs", cwd=tmp_path
    )
    assert res.returncode == 2, res.stdout + res.stderr
    if message:
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], res.stderr
    assert not (tmp_path / "out.mp4").exists() and not (tmp_path / "runs").exists()
