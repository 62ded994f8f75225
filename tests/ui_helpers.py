"""The UI tests' world: a workspace with real media, a fake Wan2.2 clone made of the contract stand-ins
(preprocessing held at a gate, see ui_gated_preprocess.py), a checkpoint folder with the real layout, and
app_ui.py started on a free port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from conftest import CKPT_FILES, REPO, STANDINS, ffmpeg, pattern_clip

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def make_media(folder: Path) -> dict[str, Path]:
    """A 2 s 24 fps 320x240 clip with audio and a reference PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    pattern_clip(folder / "dance.mp4", size="320x240", rate=24, seconds=2)
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=256x320", "-frames:v", "1", str(folder / "ref.png"))
    return {"video": folder / "dance.mp4", "image": folder / "ref.png"}


def make_fake_wan22(root: Path) -> Path:
    """The contract stand-ins at upstream's paths. A `flash_attn` placeholder lets `--attention flash` pass
    the launcher's check, so generation needs no torch (the fake model never calls attention)."""
    shutil.copytree(STANDINS / "fake_wan" / "wan", root / "wan")
    pre = root / "wan" / "modules" / "animate" / "preprocess"
    pre.mkdir(parents=True)
    shutil.copy(REPO / "tests" / "ui_gated_preprocess.py", pre / "preprocess_data.py")
    shutil.copy(STANDINS / "wan_generate.py", root / "generate.py")
    (root / "flash_attn").mkdir()
    (root / "flash_attn" / "__init__.py").write_text('"""Placeholder: the stand-in model never calls it."""\n')
    return root


def make_fake_ckpt(root: Path) -> Path:
    for name in CKPT_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"stand-in")
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class UiServer:
    url: str
    workspace: Path
    runs: Path
    gate: Path
    media: dict[str, Path]
    proc: subprocess.Popen
    log: Path

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_server(
    workspace: Path,
    *,
    max_jobs: int = 1,
    extra_env: dict[str, str] | None = None,
    extra_args: tuple[str, ...] = (),
    timeout: float = 90,
) -> UiServer:
    """app_ui.py on a free port, its workspace at `workspace` (made on first use), ready to serve."""
    media = (
        make_media(workspace / "media")
        if not (workspace / "media").exists()
        else {"video": workspace / "media" / "dance.mp4", "image": workspace / "media" / "ref.png"}
    )
    wan22 = workspace / "Wan2.2"
    if not wan22.exists():
        make_fake_wan22(wan22)
        make_fake_ckpt(workspace / "Wan2.2-Animate-14B")
    port = free_port()
    runs = workspace / "runs"
    gate = workspace / "gate"
    env = {
        **os.environ,
        "RAV_REPO": str(REPO),
        "WAN22_DIR": str(wan22),
        "WAN_ANIMATE_CKPT": str(workspace / "Wan2.2-Animate-14B"),
        "UI_STANDIN_GATE": str(gate),
        "GRADIO_ANALYTICS_ENABLED": "False",
        **(extra_env or {}),
    }
    env.pop("GRADIO_TEMP_DIR", None)
    log = workspace / f"ui-server-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "app_ui.py"),
                "--port",
                str(port),
                "--workspace",
                str(workspace),
                "--runs_dir",
                str(runs),
                "--max_jobs",
                str(max_jobs),
                *extra_args,
            ],
            cwd=workspace,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app_ui.py exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return UiServer(url, workspace, runs, gate, media, proc, log)
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"app_ui.py did not answer on {url} within {timeout} s:\n{log.read_text()}")


def queue_jobs(workspace: Path, count: int, *, extra: list[str] | None = None) -> list[str]:
    """`count` preprocess jobs written as queued job folders, exactly as the UI writes them (its forms and the
    layout start_server gives the workspace), for a server that has not started yet: it finds them queued.
    `extra` arguments are appended to the second job's command (a crafted job). Returns their ids."""
    from replace_actor_video.pipeline.registry import STAGES
    from replace_actor_video.ui.commands import Workspace, resolve, stage_form, to_args
    from replace_actor_video.ui.jobs import Job
    from replace_actor_video.ui.settings import ServerSettings

    form = stage_form(next(e for e in STAGES if e.name == "preprocess"))
    runs = (workspace / "runs").resolve()
    locations = {"wan22_dir": str(workspace / "Wan2.2"), "ckpt_dir": str(workspace / "Wan2.2-Animate-14B")}
    settings = ServerSettings(locations, {}, runs)
    ws = Workspace(workspace, runs, runs / ".ui-cache" / "uploads")
    ids = []
    for i in range(count):
        job_dir = runs / f"20261201-0000{i:02d}-preprocess"
        (job_dir / "logs").mkdir(parents=True)
        values = {"video_path": "media/dance.mp4", "refer_path": "media/ref.png", "resolution": "320x240", "fps": 8 + i}
        resolved = resolve(form, values, job_dir=job_dir, workspace=ws, settings=settings)
        assert resolved.ok, resolved.problems
        args = to_args(form, resolved.values) + ((extra or []) if i == 1 else [])
        Job(
            id=job_dir.name,
            stage=form.name,
            title=form.title,
            dir=str(job_dir),
            command=["python", form.script, *args],
            values=resolved.chosen,
            order=float(i + 1),
        ).save()
        ids.append(job_dir.name)
    return ids


def tiny_sam2_checkpoint(folder: Path) -> Path:
    """A SAM2.1 hiera-tiny model with random weights in Meta's checkpoint layout (no download)."""
    import torch
    from sam2.build_sam import build_sam2_video_predictor

    torch.manual_seed(0)
    model = build_sam2_video_predictor("configs/sam2.1/sam2.1_hiera_t.yaml", None, device="cpu")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sam2.1_hiera_tiny.pt"
    torch.save({"model": model.state_dict()}, path)
    return path
