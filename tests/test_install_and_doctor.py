"""install.sh --dry-run prints the whole plan and changes nothing; the doctor prints one line per check."""

from __future__ import annotations

import re
import shlex
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
    res = subprocess.run(
        ["bash", str(tmp_path / "install.sh"), "--dry-run", "--ui", "--training", "--fa3"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "HOME": str(tmp_path)},
    )
    assert res.returncode == 0, res.stderr
    out = res.stdout
    for needle in (
        f"git clone {pin.REPO}",
        f"checkout --quiet {pin.COMMIT}",
        "onnxruntime-gpu",
        "flash-attn --no-build-isolation",
        "hf download Wan-AI/Wan2.2-Animate-14B",
        "-r requirements.txt",
        "-r requirements-ui.txt",
        "moviepy",
        "Practical-RIFE",
        "Real-ESRGAN",
        "rife-ncnn-vulkan",
        "DiffSynth-Studio",
        "submodule update --init csrc/cutlass",
        "scripts/build_fa3.sh --src flash-attention --out .fa3/site --varlen",
        "replace_actor_video_fa3.pth",
    ):
        assert needle in out, needle
    assert out.index("torch") < out.index("Wan2.2 requirements"), "PyTorch must come first"
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before


def test_install_refuses_a_cpu_only_torch_and_names_the_fix(tmp_path):
    """A CPU-only torch already installed is not kept silently: install.sh stops before building on it."""
    shutil.copy(REPO / "install.sh", tmp_path / "install.sh")
    (tmp_path / "replace_actor_video" / "upstream" / "wan").mkdir(parents=True)
    shutil.copy(
        REPO / "replace_actor_video" / "upstream" / "wan" / "pin.py",
        tmp_path / "replace_actor_video" / "upstream" / "wan" / "pin.py",
    )  # the pin install.sh reads
    wan22 = tmp_path / "Wan2.2"
    wan22.mkdir()
    (wan22 / ".rav-commit").write_text(pin.COMMIT)
    fake = tmp_path / "site" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "__version__ = '2.13.0+cpu'\n"
        "class version:\n    cuda = None\n"
        "class cuda:\n    is_available = staticmethod(lambda: False)\n"
    )
    res = subprocess.run(
        ["bash", str(tmp_path / "install.sh"), "--no-checkpoint"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHON": sys.executable,
            "HOME": str(tmp_path),
            "PYTHONPATH": str(tmp_path / "site"),
        },
    )
    assert res.returncode == 2, res.stdout + res.stderr
    assert "torch 2.13.0+cpu is a CPU-only build" in res.stderr and "TORCH_INDEX_URL=" in res.stderr
    assert "== Wan2.2 requirements" not in res.stdout and "exported tree of the pinned commit" in res.stdout


def test_install_dry_run_lines_are_shell_words():
    """Every '+' line of a dry run parses as one plain command: no bare redirection or placeholder in brackets."""
    res = subprocess.run(
        ["bash", str(REPO / "install.sh"), "--dry-run", "--no-checkpoint", "--fa3", "--ui"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "HOME": "/nonexistent"},
    )
    assert res.returncode == 0, res.stderr
    commands = [line[2:] for line in res.stdout.splitlines() if line.startswith("+ ")]
    assert any("diffusers>=0.35,<0.36" in line for line in commands)
    for line in commands:
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)  # splits unquoted < > | & ; off as operators
        operators = [token for token in lexer if token and set(token) <= set("<>|&;()")]
        assert not operators, line


def fake_flash_attention(root):
    """The paths build_fa3.sh checks in a flash-attention checkout, and an unpacked torch's stable-ABI headers."""
    (root / "fa" / "hopper").mkdir(parents=True)
    (root / "fa" / "hopper" / "flash_api_stable.cpp").write_text("")
    (root / "fa" / "csrc" / "cutlass" / "include" / "cute").mkdir(parents=True)
    (root / "torch" / "include" / "torch" / "csrc" / "stable").mkdir(parents=True)
    return root / "fa", root / "torch"


def test_build_fa3_plans_a_forward_only_sm90a_build(tmp_path):
    src, torch_dir = fake_flash_attention(tmp_path)
    res = subprocess.run(
        [
            "bash",
            str(REPO / "scripts" / "build_fa3.sh"),
            "--src",
            str(src),
            "--torch",
            str(torch_dir),
            "--out",
            str(tmp_path / "out"),
            "--dry-run",
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    nvcc = [line for line in res.stdout.splitlines() if "nvcc" in line]
    assert [line.split(" -c ")[1].split()[0].rsplit("/", 1)[1] for line in nvcc] == [
        "flash_fwd_hdim128_bf16_sm90.cu",
        "flash_fwd_hdim128_e4m3_sm90.cu",
        "flash_prepare_scheduler.cu",
    ]
    assert all(
        "arch=compute_90a,code=sm_90a" in line
        and "-DFLASHATTENTION_DISABLE_BACKWARD" in line
        and "-DFLASHATTENTION_DISABLE_VARLEN" in line
        and "-DTORCH_TARGET_VERSION=" in line
        for line in nvcc
    )
    assert "_C.abi3.so" in res.stdout and not (tmp_path / "out").exists()


@pytest.mark.parametrize("args,message", [([], "--src is required"), (["--src", "/nonexistent"], "no such folder")])
def test_build_fa3_refuses_without_a_checkout(args, message):
    res = subprocess.run(["bash", str(REPO / "scripts" / "build_fa3.sh"), *args], capture_output=True, text=True)
    assert res.returncode == 2 and message in res.stderr


def test_install_rejects_unknown_option(tmp_path):
    res = subprocess.run(["bash", str(REPO / "install.sh"), "--bogus"], capture_output=True, text=True)
    assert res.returncode == 2 and "unknown option --bogus" in res.stderr


def path_with(tmp_path, *tools: str, gpu: bool) -> str:
    """A PATH holding only the named tools (links to the real ones) and, with gpu, an nvidia-smi listing one H200."""
    bin_dir = tmp_path / ("bin-gpu" if gpu else "bin-cpu")
    bin_dir.mkdir(parents=True)
    for tool in tools:
        (bin_dir / tool).symlink_to(shutil.which(tool))
    if gpu:
        (bin_dir / "nvidia-smi").write_text('#!/bin/sh\necho "0, NVIDIA H200, 143771, 143000"\n')
        (bin_dir / "nvidia-smi").chmod(0o755)
    return str(bin_dir)


def counts(summary: str) -> tuple[int, int, int]:
    match = re.fullmatch(r"(\d+) ok, (\d+) warnings?, (\d+) to fix( \(CPU-only\))?", summary)
    assert match, summary
    return int(match[1]), int(match[2]), int(match[3])


def test_doctor_reports_each_check_on_one_line(fake_wan22, fake_ckpt, tmp_path):
    path = path_with(tmp_path, "ffmpeg", "ffprobe", "git", "sh", gpu=True)
    res = run_cli(
        "pipeline.py", "--doctor", "--wan22_dir", fake_wan22, "--ckpt_dir", fake_ckpt, cwd=tmp_path, env={"PATH": path}
    )
    lines = res.stdout.strip().splitlines()
    checks = lines[:-1]
    assert all(line.startswith(("[ok  ]", "[FAIL]", "[warn]")) for line in checks)
    names = " ".join(checks)
    for name in (
        "GPU",
        "ffmpeg",
        "ffprobe",
        "our requirements",
        "Wan2.2 clone",
        "checkpoint (generation)",
        "checkpoint (preprocessing)",
        "attention",
        "onnxruntime CUDA provider",
        "sam2",
    ):
        assert name in names, name
    assert "[ok  ] GPU: NVIDIA H200 140 GiB" in res.stdout and "[ok  ] checkpoint (generation)" in res.stdout
    assert "[ok  ] memory profile: auto with 140 GiB free: 1280x720 → full" in res.stdout
    failed = [line for line in checks if line.startswith("[FAIL]")]
    # warnings are counted apart: neither ok nor to fix
    assert counts(lines[-1]) == (
        sum(line.startswith("[ok  ]") for line in checks),
        sum(line.startswith("[warn]") for line in checks),
        len(failed),
    )
    assert res.returncode == (1 if failed else 0)
    assert all("fix:" in line for line in failed)


def test_doctor_without_a_gpu_says_what_works(fake_wan22, tmp_path):
    res = run_cli(
        "pipeline.py",
        "--doctor",
        "--wan22_dir",
        fake_wan22,
        cwd=tmp_path,
        env={"PATH": path_with(tmp_path, "ffmpeg", "ffprobe", gpu=False)},
    )
    lines = res.stdout.strip().splitlines()
    assert lines[0].startswith("CPU-only: no NVIDIA GPU visible") and lines[-1].endswith("(CPU-only)")
    assert "[FAIL]" not in res.stdout and res.returncode == 0, res.stdout
    for part in (
        "[ok  ] dry runs",
        "[ok  ] frame interpolation with ffmpeg",
        "contour mask on the CPU",
        "Web UI",
        "tests",
        "[ok  ] Wan2.2 clone",
    ):
        assert part in res.stdout, part
    for gpu_check in ("checkpoint", "onnxruntime CUDA", "attention", "torch:"):
        assert gpu_check not in res.stdout, gpu_check

    # without ffmpeg: one failure for the cause, the parts it blocks are warnings
    bare = run_cli(
        "pipeline.py",
        "--doctor",
        "--wan22_dir",
        fake_wan22,
        cwd=tmp_path,
        env={"PATH": path_with(tmp_path / "none", gpu=False)},
    )
    assert bare.returncode == 1
    assert "[FAIL] ffmpeg: not on PATH" in bare.stdout and "[warn] frame interpolation with ffmpeg" in bare.stdout
    assert counts(bare.stdout.strip().splitlines()[-1])[2] == 2  # ffmpeg and ffprobe


@pytest.mark.parametrize(
    "versions,ok",
    [
        ({"torchao": "0.15.0", "diffusers": "0.35.2"}, True),
        ({"torchao": "0.17.0", "diffusers": "0.35.2"}, False),
        ({"torchao": None, "diffusers": "0.35.2"}, None),
    ],
)
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
