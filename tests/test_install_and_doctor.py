"""install.sh --dry-run prints the whole plan and changes nothing; the doctor prints one line per check."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from conftest import REPO, run_cli
from replace_actor_video.upstream.wan import pin


def test_install_dry_run_prints_every_step_and_changes_nothing(tmp_path):
    for name in ("install.sh", "requirements.txt", "requirements-ui.txt"):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "scripts", tmp_path / "scripts")
    for path in (REPO / "replace_actor_video" / "upstream").glob("*/pin.py"):  # the pins install.sh reads
        (tmp_path / path.relative_to(REPO)).parent.mkdir(parents=True)
        shutil.copy(path, tmp_path / path.relative_to(REPO))
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    res = subprocess.run(["bash", str(tmp_path / "install.sh"), "--dry-run", "--ui", "--training", "--fa3"],
                         capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "HOME": str(tmp_path)})
    assert res.returncode == 0, res.stderr
    out = res.stdout
    for needle in (f"git clone {pin.REPO}", f"checkout --quiet {pin.COMMIT}",
                   "onnxruntime-gpu", "flash-attn --no-build-isolation", "hf download Wan-AI/Wan2.2-Animate-14B",
                   "-r requirements.txt", "-r requirements-ui.txt", "moviepy", "Practical-RIFE", "Real-ESRGAN",
                   "rife-ncnn-vulkan", "DiffSynth-Studio", "submodule update --init csrc/cutlass",
                   "scripts/build_fa3.sh --src flash-attention --out .fa3/site --varlen", "replace_actor_video_fa3.pth"):
        assert needle in out, needle
    assert out.index("torch") < out.index("Wan2.2 requirements"), "PyTorch must come first"
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before


def fake_flash_attention(root):
    """The paths build_fa3.sh checks in a flash-attention checkout, and an unpacked torch's stable-ABI headers."""
    (root / "fa" / "hopper").mkdir(parents=True)
    (root / "fa" / "hopper" / "flash_api_stable.cpp").write_text("")
    (root / "fa" / "csrc" / "cutlass" / "include" / "cute").mkdir(parents=True)
    (root / "torch" / "include" / "torch" / "csrc" / "stable").mkdir(parents=True)
    return root / "fa", root / "torch"


def test_build_fa3_plans_a_forward_only_sm90a_build(tmp_path):
    src, torch_dir = fake_flash_attention(tmp_path)
    res = subprocess.run(["bash", str(REPO / "scripts" / "build_fa3.sh"), "--src", str(src), "--torch", str(torch_dir),
                          "--out", str(tmp_path / "out"), "--dry-run"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    nvcc = [line for line in res.stdout.splitlines() if "nvcc" in line]
    assert [line.split(" -c ")[1].split()[0].rsplit("/", 1)[1] for line in nvcc] == [
        "flash_fwd_hdim128_bf16_sm90.cu", "flash_fwd_hdim128_e4m3_sm90.cu", "flash_prepare_scheduler.cu"]
    assert all("arch=compute_90a,code=sm_90a" in line and "-DFLASHATTENTION_DISABLE_BACKWARD" in line
               and "-DFLASHATTENTION_DISABLE_VARLEN" in line and "-DTORCH_TARGET_VERSION=" in line for line in nvcc)
    assert "_C.abi3.so" in res.stdout and not (tmp_path / "out").exists()


@pytest.mark.parametrize("args,message", [([], "--src is required"), (["--src", "/nonexistent"], "no such folder")])
def test_build_fa3_refuses_without_a_checkout(args, message):
    res = subprocess.run(["bash", str(REPO / "scripts" / "build_fa3.sh"), *args], capture_output=True, text=True)
    assert res.returncode == 2 and message in res.stderr


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


@pytest.mark.parametrize("versions,ok", [({"torchao": "0.15.0", "diffusers": "0.35.2"}, True),
                                         ({"torchao": "0.17.0", "diffusers": "0.35.2"}, False),
                                         ({"torchao": None, "diffusers": "0.35.2"}, None)])
def test_doctor_flags_a_torchao_that_breaks_import_wan(monkeypatch, versions, ok):
    from replace_actor_video import doctor

    monkeypatch.setattr(doctor, "_version", versions.get)
    checks = doctor.check_torchao()
    if ok is None:
        assert checks == []
    else:
        assert [c.ok for c in checks] == [ok]
        assert ok or "torchao==0.15.0" in checks[0].fix


def test_doctor_names_the_attention_route(monkeypatch):
    from replace_actor_video import doctor

    monkeypatch.setattr(doctor.importlib.util, "find_spec", lambda name: None)
    check = doctor.check_attention()
    assert not check.ok and not check.required and "install.sh --fa3" in check.fix and "cuDNN" in check.detail
