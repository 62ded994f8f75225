"""Shared fixtures: real media made with ffmpeg, a fake Wan2.2 clone made of contract stand-ins, and a
checkpoint folder with the real layout (empty files: the stand-ins never load weights)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[1]
STANDINS = REPO / "tests" / "standins"


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def running(pid: int) -> bool:
    """The process exists and is not a zombie; one that ends while we ask counts as gone (asking twice, exists then
    status, raced with its exit and failed a CI run)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_gone(pids: list[int], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while alive := [p for p in pids if running(p)]:
        assert time.monotonic() < deadline, f"still alive after {seconds}s: {alive}"
        time.sleep(0.05)


def pattern_clip(path: Path | str, *, size: str, rate: int, seconds: float, audio: bool = True) -> Path:
    """An H.264 clip of ffmpeg's moving test pattern (testsrc2), with a 440 Hz AAC tone unless `audio` is False."""
    tone = ["-f", "lavfi", "-i", "sine=frequency=440", "-c:a", "aac"] if audio else []
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={size}:rate={rate}",
        *tone,
        "-t",
        str(seconds),
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        str(path),
    )
    return Path(path)


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, Path]:
    """A 2 s 24 fps 320x240 clip with audio, a silent one, a reference PNG and a corrupt 'video'."""
    d = tmp_path_factory.mktemp("media")
    pattern_clip(d / "dance.mp4", size="320x240", rate=24, seconds=2)
    pattern_clip(d / "silent.mp4", size="320x240", rate=24, seconds=2, audio=False)
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=256x320", "-frames:v", "1", str(d / "ref.png"))
    (d / "corrupt.mp4").write_bytes(os.urandom(4096))
    (d / "not_an_image.png").write_text("hello")
    return {p.stem: p for p in d.iterdir()}


@pytest.fixture
def fake_wan22(tmp_path, monkeypatch) -> Path:
    """A Wan2.2 folder whose entry points are the contract stand-ins."""
    root = tmp_path / "Wan2.2"
    shutil.copytree(STANDINS / "fake_wan" / "wan", root / "wan")
    pre = root / "wan" / "modules" / "animate" / "preprocess"
    pre.mkdir(parents=True)
    shutil.copy(STANDINS / "wan_preprocess_data.py", pre / "preprocess_data.py")
    shutil.copy(STANDINS / "wan_generate.py", root / "generate.py")
    monkeypatch.setenv("RAV_REPO", str(REPO))
    return root


CKPT_FILES = (
    "config.json",
    "diffusion_pytorch_model.safetensors.index.json",
    "diffusion_pytorch_model-00001-of-00001.safetensors",
    "models_t5_umt5-xxl-enc-bf16.pth",
    "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth",
    "Wan2.1_VAE.pth",
    "relighting_lora.ckpt",
    "google/umt5-xxl/tokenizer.json",
    "xlm-roberta-large/tokenizer.json",
    "process_checkpoint/det/yolov10m.onnx",
    "process_checkpoint/pose2d/vitpose_h_wholebody.onnx/end2end.onnx",
    "process_checkpoint/sam2/sam2_hiera_large.pt",
)


@pytest.fixture
def fake_ckpt(tmp_path) -> Path:
    root = tmp_path / "Wan2.2-Animate-14B"
    for name in CKPT_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"stand-in")
    return root


def locations(fake_wan22: Path, fake_ckpt: Path, tmp_path: Path) -> list[str]:
    """The stand-in clone, checkpoint and runs folder, as the command-line flags every stage takes."""
    return ["--wan22_dir", str(fake_wan22), "--ckpt_dir", str(fake_ckpt), "--runs_dir", str(tmp_path / "runs")]


def run_cli(script: str, *args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run one of our entry points as a user would."""
    return subprocess.run(
        [sys.executable, str(REPO / script), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )
