"""install.sh --dry-run prints the whole plan and changes nothing; the doctor prints one line per check."""

from __future__ import annotations

import shutil
import subprocess
import sys

from conftest import REPO, run_cli


def test_install_dry_run_prints_every_step_and_changes_nothing(tmp_path):
    for name in ("install.sh", "requirements.txt", "requirements-ui.txt"):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "scripts", tmp_path / "scripts")
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    res = subprocess.run(["bash", str(tmp_path / "install.sh"), "--dry-run", "--ui", "--training"], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "HOME": str(tmp_path)})
    assert res.returncode == 0, res.stderr
    out = res.stdout
    for needle in ("git clone https://github.com/Wan-Video/Wan2.2.git", "checkout --quiet 42bf4cf",
                   "onnxruntime-gpu", "flash-attn --no-build-isolation", "hf download Wan-AI/Wan2.2-Animate-14B",
                   "-r requirements.txt", "-r requirements-ui.txt", "moviepy", "Practical-RIFE", "Real-ESRGAN",
                   "rife-ncnn-vulkan", "DiffSynth-Studio"):
        assert needle in out, needle
    assert out.index("torch") < out.index("Wan2.2 requirements"), "PyTorch must come first"
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before


def test_install_rejects_unknown_option(tmp_path):
    res = subprocess.run(["bash", str(REPO / "install.sh"), "--bogus"], capture_output=True, text=True)
    assert res.returncode == 2 and "unknown option --bogus" in res.stderr


def test_doctor_reports_each_check_on_one_line(fake_wan22, fake_ckpt, tmp_path):
    res = run_cli("pipeline.py", "--doctor", "--wan22_dir", fake_wan22, "--ckpt_dir", fake_ckpt, cwd=tmp_path)
    lines = res.stdout.strip().splitlines()
    assert lines[-1].endswith("to fix")
    checks = lines[:-1]
    assert all(line.startswith(("[ok  ]", "[FAIL]", "[warn]")) for line in checks)
    names = " ".join(checks)
    for name in ("GPU", "ffmpeg", "ffprobe", "Wan2.2 clone", "checkpoint (generation)", "checkpoint (preprocessing)",
                 "attention", "onnxruntime CUDA provider", "sam2"):
        assert name in names, name
    assert "[ok  ] checkpoint (generation)" in res.stdout
    failed = [line for line in checks if line.startswith("[FAIL]")]
    assert res.returncode == (1 if failed else 0)
    assert all("fix:" in line for line in failed)
