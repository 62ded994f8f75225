"""run_postprocess.py for real: the ffmpeg backend end to end, rife-ncnn-vulkan and Practical-RIFE through
contract stand-ins (tests/standins) run by the real stage code, backend choice, and bad input."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from conftest import REPO, STANDINS, ffmpeg, pattern_clip, run_cli

from replace_actor_video.media.probe import probe_video
from replace_actor_video.upstream.realesrgan import pin as esrgan_pin
from replace_actor_video.upstream.rife import pin as rife_pin
from replace_actor_video.upstream.rife import practical as practical_rife

# The model code a Practical-RIFE model zip puts in train_log/ (here: loads flownet.pkl, nothing else).
FAKE_MODEL_CODE = """\
class Model:
    def __init__(self, local_rank=-1):
        self.version = 4.25

    def load_model(self, path, rank=0):
        open("{}/flownet.pkl".format(path), "rb").close()
"""


def make_clips(d: Path) -> dict[str, Path]:
    """2 s at 16 fps (32 frames) 160x120 with a 440 Hz tone, the same without audio, and an audio-only file."""
    pattern_clip(d / "clip16.mp4", size="160x120", rate=16, seconds=2)
    pattern_clip(d / "silent16.mp4", size="160x120", rate=16, seconds=2, audio=False)
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440", "-t", "1", "-c:a", "aac", str(d / "tone.m4a"))
    return {p.stem: p for p in d.iterdir()}


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict[str, Path]:
    return make_clips(tmp_path_factory.mktemp("finishing_media"))


@pytest.fixture
def fake_ncnn(tmp_path, monkeypatch) -> Path:
    """A rife-ncnn-vulkan release folder whose binary is the contract stand-in."""
    root = tmp_path / "rife-ncnn-vulkan-release"
    for model in ("rife-v4.6", "rife-v2.3"):
        (root / model).mkdir(parents=True)
        (root / model / "flownet.param").write_text("7767517\n")
        (root / model / "flownet.bin").write_bytes(b"\0" * 16)
    binary = root / "rife-ncnn-vulkan"
    binary.write_text(
        f'#!/bin/sh\nexport STANDIN_EXE_DIR="$(dirname "$0")"\n'
        f'exec "{sys.executable}" "{STANDINS / "rife_ncnn_vulkan.py"}" "$@"\n'
    )
    binary.chmod(0o755)
    monkeypatch.setenv("RAV_REPO", str(REPO))
    return binary


def fake_modules(root: Path, names) -> Path:
    """Empty stand-ins for the upstream's Python dependencies this machine lacks (only those), so the
    stage's pre-launch check passes; the contract stand-in itself imports none of them."""
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        (root / name).mkdir(exist_ok=True)
        (root / name / "__init__.py").write_text("")
    return root


@pytest.fixture
def fake_rife(tmp_path, monkeypatch) -> Path:
    """A Practical-RIFE clone whose inference_video.py is the contract stand-in, with a model in train_log/."""
    pytest.importorskip("numpy")  # the stand-in uses it the way sk-video does
    root = tmp_path / "Practical-RIFE"
    (root / "train_log").mkdir(parents=True)
    shutil.copy(STANDINS / "practical_rife_inference_video.py", root / "inference_video.py")
    (root / "train_log" / "RIFE_HDv3.py").write_text(FAKE_MODEL_CODE)
    (root / "train_log" / "flownet.pkl").write_bytes(b"stand-in")
    lacking = [m for m, _pkg in practical_rife.MODULES.items() if m != "numpy" and not _importable(m)]
    monkeypatch.setenv("PYTHONPATH", str(fake_modules(tmp_path / "fake_site", lacking)))
    monkeypatch.setenv("RAV_REPO", str(REPO))
    return root


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def frames_fps_audio(path: Path) -> tuple[int, float, bool, float, str]:
    info = probe_video(path, count_frames=True)
    return info.frames, float(info.fps), info.has_audio, info.duration, f"{info.codec}/{info.pix_fmt}"


def manifest(runs: Path) -> dict:
    (path,) = runs.rglob("manifest.json")
    return json.loads(path.read_text())


def test_ffmpeg_backend_16_to_30_keeps_duration_and_audio(clips, tmp_path):
    out = tmp_path / "out30.mp4"
    res = run_cli(
        "run_postprocess.py",
        "--input",
        clips["clip16"],
        "--output",
        out,
        "--target_fps",
        "30",
        "--fallback_ffmpeg",
        "--runs_dir",
        tmp_path / "runs",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert "postprocess backend: ffmpeg (requested)" in res.stdout
    frames, fps, audio, duration, codec = frames_fps_audio(out)
    # minterpolate alone stops short (it leaves the last source interval empty): padded to exactly 60.
    assert (frames, fps, audio, codec) == (60, 30.0, True, "h264/yuv420p")
    assert abs(duration - 2.0) <= 1 / 30
    record = manifest(tmp_path / "runs")["stages"]["postprocess"]
    assert record["status"] == "done" and record["options"]["backend_used"] == "ffmpeg"
    assert "minterpolate=fps=30" in " ".join(record["commands"][0]["argv"])
    assert not list((tmp_path / "runs").rglob("work/*")), "scratch files must be gone"


def test_ncnn_backend_exact_frame_count_through_standin(clips, fake_ncnn, tmp_path):
    out = tmp_path / "out30.mp4"
    res = run_cli(
        "run_postprocess.py",
        "--input",
        clips["clip16"],
        "--output",
        out,
        "--rife_bin",
        fake_ncnn,
        "--runs_dir",
        tmp_path / "runs",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert "postprocess backend: ncnn (rife-ncnn-vulkan on NVIDIA H100 80GB HBM3)" in res.stdout
    frames, fps, audio, duration, codec = frames_fps_audio(out)
    assert (frames, fps, audio, codec) == (60, 30.0, True, "h264/yuv420p")
    assert abs(duration - 2.0) <= 1 / 30
    commands = manifest(tmp_path / "runs")["stages"]["postprocess"]["commands"]
    ncnn = next(c["argv"] for c in commands if c["argv"][0] == str(fake_ncnn))
    assert ncnn[ncnn.index("-n") + 1] == "60" and ncnn[ncnn.index("-m") + 1] == "rife-v4.6"


def test_auto_skips_software_vulkan_and_says_why(clips, fake_ncnn, tmp_path, monkeypatch):
    monkeypatch.setenv("STANDIN_VULKAN", "llvmpipe")
    out = tmp_path / "out30.mp4"
    res = run_cli(
        "run_postprocess.py",
        "--input",
        clips["silent16"],
        "--output",
        out,
        "--rife_bin",
        fake_ncnn,
        "--rife_pytorch_dir",
        tmp_path / "no-rife",
        "--runs_dir",
        tmp_path / "runs",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    line = next(ln for ln in res.stdout.splitlines() if "postprocess backend:" in ln)
    assert "backend: ffmpeg (auto fallback" in line
    assert "software Vulkan device (llvmpipe" in line and "no-rife/inference_video.py not found" in line
    frames, fps, audio, _duration, _codec = frames_fps_audio(out)
    assert (frames, fps, audio) == (60, 30.0, False)


def test_practical_rife_backend_isolated_exact_rate_and_audio(clips, fake_rife, tmp_path):
    (tmp_path / "temp").mkdir()
    (tmp_path / "temp" / "mine.txt").write_text("a user's file in a folder named temp")
    out = tmp_path / "out30.mp4"
    res = run_cli(
        "run_postprocess.py",
        "--input",
        clips["clip16"],
        "--output",
        out,
        "--backend",
        "cuda",
        "--rife_pytorch_dir",
        fake_rife,
        "--runs_dir",
        tmp_path / "runs",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    # upstream deletes ./temp of its cwd: it ran in a scratch directory, so the user's folder survives
    assert (tmp_path / "temp" / "mine.txt").is_file()
    # the launcher's shims were needed and used (NumPy >= 1.24 here; moviepy 2 or none)
    assert "restored np.float" in res.stdout
    frames, fps, audio, duration, codec = frames_fps_audio(out)
    assert (frames, fps, audio, codec) == (60, 30.0, True, "h264/yuv420p")
    assert abs(duration - 2.0) <= 1 / 30
    rife = next(
        c["argv"] for c in manifest(tmp_path / "runs")["stages"]["postprocess"]["commands"] if "--multi" in c["argv"]
    )
    assert rife[rife.index("--model") + 1] == str(fake_rife / "train_log") and "--fps" not in rife
    assert rife[rife.index("--multi") + 1] == "2"


def test_dry_run_prints_and_writes_nothing(clips, fake_ncnn, tmp_path):
    out = tmp_path / "out.mp4"
    res = run_cli(
        "run_postprocess.py",
        "--dry-run",
        "--input",
        clips["clip16"],
        "--output",
        out,
        "--rife_bin",
        fake_ncnn,
        "--runs_dir",
        tmp_path / "runs",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("[dry-run]")]
    assert len(lines) == 3 and "-n 60" in lines[1] and "-map 1:a:0" in lines[2]
    assert not out.exists() and not (tmp_path / "runs").exists()


def test_refuses_existing_output_then_overwrites(clips, tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"precious")
    args = ["--input", clips["silent16"], "--output", out, "--backend", "ffmpeg", "--runs_dir", tmp_path / "runs"]
    res = run_cli("run_postprocess.py", *args, cwd=tmp_path)
    assert res.returncode == 2 and "the file exists" in res.stderr and out.read_bytes() == b"precious"
    assert run_cli("run_postprocess.py", *args, "--overwrite", cwd=tmp_path).returncode == 0
    assert frames_fps_audio(out)[:2] == (60, 30.0)


BAD = {
    "missing input": (["--input", "{tmp}/nope.mp4"], "nope.mp4: file not found"),
    "no video stream": (["--input", "{tone}"], "tone.m4a: no video stream"),
    "zero fps": (["--target_fps", "0"], "--target_fps 0"),
    "negative fps": (["--target_fps", "-5"], "--target_fps -5"),
    "not higher": (["--target_fps", "16"], "already has 16 fps"),
    "output is input": (["--output", "{clip16}"], "holds the input"),
    "contradicting flags": (["--fallback_ffmpeg", "--backend", "cuda"], "--fallback_ffmpeg contradicts"),
    "cuda without clone": (
        ["--backend", "cuda", "--rife_pytorch_dir", "{tmp}/none"],
        "none/inference_video.py not found",
    ),
    "cuda without weights": (
        ["--backend", "cuda", "--rife_pytorch_dir", "{rife}", "--rm", "train_log/flownet.pkl"],
        "missing train_log/flownet.pkl",
    ),
    "cuda without model code": (
        ["--backend", "cuda", "--rife_pytorch_dir", "{rife}", "--rm", "train_log/RIFE_HDv3.py"],
        "missing train_log/RIFE_HDv3.py",
    ),
    "ncnn missing binary": (["--backend", "ncnn", "--rife_bin", "{tmp}/nope"], "--rife_bin"),
    "ncnn v2 model": (
        ["--backend", "ncnn", "--rife_bin", "{ncnn}", "--rife_model", "rife-v2.3"],
        "only rife-v4 models",
    ),
    "ncnn no vulkan": (["--backend", "ncnn", "--rife_bin", "{ncnn}", "--vulkan", "none"], "vkCreateInstance failed"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_exit_2_one_line_nothing_written(case, clips, fake_ncnn, fake_rife, tmp_path, monkeypatch):
    override, message = BAD[case]
    values = {"tmp": tmp_path, "ncnn": fake_ncnn, "rife": fake_rife, **clips}
    args = {"--input": str(clips["clip16"]), "--output": str(tmp_path / "out.mp4")}
    extra, it = [], iter(override)
    for flag in it:
        if flag == "--rm":
            (fake_rife / next(it)).unlink()
        elif flag == "--vulkan":
            monkeypatch.setenv("STANDIN_VULKAN", next(it))
        elif flag in args or flag in ("--target_fps", "--rife_bin", "--rife_model", "--rife_pytorch_dir", "--backend"):
            args[flag] = next(it).format(**{k: str(v) for k, v in values.items()})
        else:
            extra.append(flag)
    before = sorted(clips["clip16"].parent.iterdir())
    res = run_cli(
        "run_postprocess.py",
        *[x for kv in args.items() for x in kv],
        *extra,
        "--runs_dir",
        tmp_path / "runs",
        cwd=tmp_path,
    )
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], res.stderr
    assert not (tmp_path / "out.mp4").exists() and not (tmp_path / "runs").exists()
    assert sorted(clips["clip16"].parent.iterdir()) == before


def test_skvideo_patch_rewrites_removed_numpy_api_once(tmp_path):
    pkg = tmp_path / "skvideo" / "io"
    pkg.mkdir(parents=True)
    (tmp_path / "skvideo" / "__init__.py").write_text("")
    (pkg / "ffmpeg.py").write_text(
        "import numpy as np\n"
        "fps = np.float(parts[0]) / np.float(parts[1])\n"
        "w = np.int(d['width']); keep = np.float64(1) + np.int32(2); b = x.dtype != np.bool\n"
        "arr = np.fromstring(data, dtype=np.uint8); flag = np.bool_(0)\n"
    )
    script = [sys.executable, str(REPO / "scripts" / "patch_skvideo_numpy2.py"), "--path", str(tmp_path / "skvideo")]
    import subprocess

    check = subprocess.run([*script, "--check"], capture_output=True, text=True)
    assert check.returncode == 1 and "needs   5" in check.stdout
    assert subprocess.run(script, capture_output=True, text=True).returncode == 0
    assert (pkg / "ffmpeg.py").read_text() == (
        "import numpy as np\n"
        "fps = float(parts[0]) / float(parts[1])\n"
        "w = int(d['width']); keep = np.float64(1) + np.int32(2); b = x.dtype != bool\n"
        "arr = np.frombuffer(data, dtype=np.uint8); flag = np.bool_(0)\n"
    )
    again = subprocess.run([*script, "--check"], capture_output=True, text=True)
    assert again.returncode == 0 and "nothing to patch" in again.stdout


def test_install_finishing_dry_run_does_nothing(tmp_path):
    import subprocess

    res = subprocess.run(
        ["bash", str(REPO / "scripts" / "install_finishing.sh"), "--dry-run"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    for needle in (
        f"fetch -q --depth 1 origin {rife_pin.PRACTICAL_RIFE_COMMIT}",
        "requirements_practical_rife_py312.txt",
        "patch_skvideo_numpy2.py",
        f"fetch -q --depth 1 origin {esrgan_pin.COMMIT}",
        "pip install --no-deps -e Real-ESRGAN",
        "rife-ncnn-vulkan-20221029-ubuntu.zip",
        "dry run: nothing was done",
    ):
        assert needle in res.stdout, needle
    assert list(tmp_path.iterdir()) == []


def test_install_finishing_ncnn_from_a_zip_is_idempotent(tmp_path):
    import subprocess
    import zipfile

    with zipfile.ZipFile(tmp_path / "release.zip", "w") as zf:
        zf.writestr("rife-ncnn-vulkan-20221029-ubuntu/rife-ncnn-vulkan", "#!/bin/sh\n")
        zf.writestr("rife-ncnn-vulkan-20221029-ubuntu/rife-v4.6/flownet.param", "7767517\n")
    argv = [
        "bash",
        str(REPO / "scripts" / "install_finishing.sh"),
        "--no-rife",
        "--no-realesrgan",
        "--ncnn-zip",
        "release.zip",
    ]
    first = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    binary = tmp_path / "rife-ncnn-vulkan" / "rife-ncnn-vulkan"
    assert binary.is_file() and binary.stat().st_mode & 0o111
    assert (tmp_path / "rife-ncnn-vulkan" / "rife-v4.6" / "flownet.param").is_file()
    again = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode == 0 and "present, kept" in again.stdout and "zipfile" not in again.stdout
