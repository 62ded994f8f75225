"""`python pipeline.py --doctor`: one line per requirement, ok or not, with the fix."""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from .core import config
from .core.errors import UserError
from .core.gpu import Gpu, visible_gpus
from .upstream.wan import generate as wan_generate
from .upstream.wan import memory_plan
from .upstream.wan import preprocess as wan_preprocess


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True

    def line(self) -> str:
        mark = "ok  " if self.ok else ("FAIL" if self.required else "warn")
        tail = f" — fix: {self.fix}" if not self.ok and self.fix else ""
        return f"[{mark}] {self.name}: {self.detail}{tail}"


def _python(code: str) -> tuple[bool, str]:
    """Ask a fresh interpreter (imports such as torch/onnxruntime can be slow or crash; keep them out of ours)."""
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return False, "timed out"
    lines = (proc.stdout.strip() or proc.stderr.strip()).splitlines()
    return proc.returncode == 0, lines[-1] if lines else ""


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def check_gpu() -> Check:
    gpus = visible_gpus()
    if not gpus:
        return Check("GPU", False, "no NVIDIA GPU visible (nvidia-smi)", "run on a CUDA server; Wan2.2 needs CUDA")
    desc = ", ".join(f"{g.name} {g.memory_mib // 1024} GiB" for g in gpus)
    small = min(g.memory_mib for g in gpus) < 70_000
    return Check(
        "GPU",
        True,
        desc
        + (" (under 80 GB: --memory_profile auto streams the DiT, or several GPUs with --multi_gpu)" if small else ""),
    )


def memory_profile_line(gpu: Gpu, ram_gib: float | None) -> Check:
    """What --memory_profile auto picks on this GPU at the usual sizes (memory_plan.py's estimates)."""
    free = (gpu.free_mib if gpu.free_mib is not None else gpu.memory_mib) / 1024
    picks = []
    for label, (width, height) in (("1280x720", (1280, 720)), ("832x480", (832, 480))):
        profile = memory_plan.choose(free, width, height)
        need = memory_plan.needs_gib(profile, width, height)
        picks.append(f"{label} → {profile} (~{need:.0f} GiB)" + (" DOES NOT FIT" if need > free else ""))
    streamed = any("→ full" not in pick for pick in picks)
    low_ram = streamed and ram_gib is not None and ram_gib < memory_plan.RAM_GIB_STREAMED
    detail = f"auto with {free:.0f} GiB free: " + ", ".join(picks)
    if low_ram:
        detail += f"; only {ram_gib:.0f} GiB of RAM (streaming the DiT needs ~{memory_plan.RAM_GIB_STREAMED} GiB)"
    return Check(
        "memory profile",
        not low_ram and all("DOES NOT FIT" not in p for p in picks),
        detail,
        "preprocess at a smaller --resolution_area, or a machine with more RAM" if streamed else "",
        required=False,
    )


def ram_gib() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


def check_binaries() -> list[Check]:
    return [
        Check(tool, bool(shutil.which(tool)), shutil.which(tool) or "not on PATH", "apt-get install ffmpeg")
        for tool in ("ffmpeg", "ffprobe")
    ]


# requirements.txt: import name -> package name
OWN_REQUIREMENTS = {
    "psutil": "psutil",
    "PIL": "Pillow",
    "numpy": "numpy",
    "scipy": "scipy",
    "cv2": "opencv-python-headless",
    "yaml": "PyYAML",
}


def check_own_requirements() -> Check:
    missing = [pkg for module, pkg in OWN_REQUIREMENTS.items() if importlib.util.find_spec(module) is None]
    return Check(
        "our requirements (requirements.txt)",
        not missing,
        "installed" if not missing else "missing " + ", ".join(missing),
        "pip install -r requirements.txt",
    )


def check_wan22(path: Path) -> list[Check]:
    present = (path / "generate.py").is_file() and (path / wan_preprocess.SCRIPT).is_file()
    checks = [
        Check(
            "Wan2.2 clone",
            present,
            f"{path} @ {config.upstream_commit(path)[:12]}" if present else f"{path} missing",
            "./install.sh, or pass --wan22_dir / set WAN22_DIR",
        )
    ]
    predictor = path / "wan/modules/animate/preprocess/video_predictor.py"
    if present:
        fixed = predictor.is_file() and "frames_tracked_per_obj" in predictor.read_text()
        checks.append(
            Check(
                "SAM2 video predictor fix (PR #158)",
                fixed,
                "present" if fixed else "missing",
                "update the clone to 2677bea or later (replace mode fails with KeyError otherwise)",
            )
        )
    return checks


def check_checkpoint(path: Path) -> list[Check]:
    checks = []
    for label, probe in (
        ("checkpoint (generation)", lambda: wan_generate.check_checkpoint(path, use_relighting_lora=True)),
        (
            "checkpoint (preprocessing)",
            lambda: wan_preprocess.check_process_checkpoint(path, replace=True, use_flux=False),
        ),
    ):
        try:
            probe()
            checks.append(Check(label, True, str(path)))
        except UserError as exc:
            checks.append(Check(label, False, str(exc).split(";")[0], "./install.sh, or pass --ckpt_dir"))
    flux = (path / "process_checkpoint" / wan_preprocess.FLUX_DIR / "model_index.json").is_file()
    checks.append(
        Check(
            "FLUX.1 Kontext (only for --use_flux)",
            flux,
            "present" if flux else "absent",
            "download black-forest-labs/FLUX.1-Kontext-dev into process_checkpoint/",
            required=False,
        )
    )
    return checks


def check_attention() -> Check:
    fa3 = importlib.util.find_spec("flash_attn_interface") is not None
    flash = importlib.util.find_spec("flash_attn") is not None
    detail = (
        "FlashAttention-3 importable: --attention auto uses it in the DiT"
        if fa3
        else "no FlashAttention-3: --attention auto uses torch SDPA (cuDNN)"
    )
    if flash:
        detail += "; flash_attn installed (--attention flash available)"
    return Check(
        "attention",
        fa3,
        detail,
        "./install.sh --fa3 on H100/H200: the fastest lossless attention (docs/PERFORMANCE.md)",
        required=False,
    )


def check_torchao() -> list[Check]:
    """torchao >= 0.16 lacks the module diffusers 0.35 imports when torchao is present: `import wan` dies."""
    torchao, diffusers = _version("torchao"), _version("diffusers")
    if not torchao:
        return []
    numbers = [tuple(int(x) for x in v.split(".")[:2] if x.isdigit()) for v in (torchao, diffusers or "0.0")]
    breaks = numbers[0] >= (0, 16) and numbers[1] < (0, 36)
    return [
        Check(
            "torchao (for --fp8)",
            not breaks,
            f"torchao {torchao}, diffusers {diffusers}",
            "pip install torchao==0.15.0, or pip uninstall torchao: newer torchao makes diffusers 0.35 fail "
            "on `import wan` (NameError: name 'logger' is not defined)",
        )
    ]


def check_python_packages() -> list[Check]:
    checks = []
    ok, out = _python("import torch; print(torch.__version__, 'cuda' if torch.cuda.is_available() else 'no-cuda')")
    checks.append(
        Check(
            "torch",
            ok and "no-cuda" not in out,
            out or "not importable",
            "a CUDA build of torch: pip uninstall -y torch torchvision torchaudio, then "
            "TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 ./install.sh (the cuXYZ your driver "
            "supports)",
        )
    )
    checks.append(check_attention())
    checks += check_torchao()
    ok, out = _python("import onnxruntime as o; print(','.join(o.get_available_providers()))")
    checks.append(
        Check(
            "onnxruntime CUDA provider",
            ok and "CUDAExecutionProvider" in out,
            out or "not importable",
            "pip uninstall -y onnxruntime && pip install onnxruntime-gpu (pose detection runs on the CPU "
            "otherwise, very slowly)",
            required=False,
        )
    )
    ok, out = _python("import sam2; from sam2.build_sam import build_sam2_video_predictor; print('sam2 ok')")
    checks.append(
        Check(
            "sam2",
            ok,
            out or "not importable",
            "pip install sam2 (SAM2_BUILD_CUDA=0 if the CUDA extension does not build)",
        )
    )
    ok, out = _python("from diffusers import FluxKontextPipeline; print('FluxKontextPipeline ok')")
    checks.append(
        Check(
            "diffusers with FluxKontextPipeline",
            ok,
            out or "missing",
            "pip install 'diffusers>=0.35' (upstream imports it even without --use_flux, issue #170)",
        )
    )
    for pkg, why in (
        ("moviepy", "issue #209"),
        ("decord", "reads every video"),
        ("librosa", "`import wan` imports s2v"),
        ("dashscope", "imported by generate.py"),
        ("easydict", ""),
        ("ftfy", ""),
        ("peft", "LoRA"),
        ("loguru", ""),
        ("hydra", "SAM2 configs"),
    ):
        found = importlib.util.find_spec(pkg) is not None
        checks.append(
            Check(
                f"python package {pkg}",
                found,
                "installed" if found else f"missing ({why})" if why else "missing",
                f"pip install {pkg if pkg != 'hydra' else 'hydra-core'}",
            )
        )
    transformers = _version("transformers")
    if transformers:
        major_minor = tuple(int(x) for x in transformers.split(".")[:2])
        checks.append(
            Check(
                "transformers",
                major_minor <= (4, 51),
                transformers,
                "pip install 'transformers<=4.51.3' (Wan2.2's pin; 5.x breaks `import wan`)",
                required=False,
            )
        )
    return checks


def run_checks(wan22: Path, ckpt: Path) -> list[Check]:
    """Everything a GPU server needs for the whole pipeline."""
    groups: Sequence[Callable[[], list[Check]]] = (
        lambda: [check_gpu()],
        lambda: [memory_profile_line(g, ram_gib()) for g in visible_gpus()[:1]],
        check_binaries,
        lambda: [check_own_requirements()],
        lambda: check_wan22(wan22),
        lambda: check_checkpoint(ckpt),
        check_python_packages,
    )
    return [c for group in groups for c in group()]


CPU_ONLY = (
    "CPU-only: no NVIDIA GPU visible (nvidia-smi), so Wan2.2 preprocessing and generation cannot run here; "
    'the parts below work without a GPU (README "Without a GPU"). On a GPU server this means the driver: '
    "nvidia-smi must list the GPUs."
)


def cpu_checks(wan22: Path) -> list[Check]:
    """What works without a GPU, each part with what it needs on this machine. Only the shared basics (ffmpeg,
    ffprobe, our requirements) are required; a part they block is a warning, so each cause counts once."""
    base = [*check_binaries(), check_own_requirements()]
    ready = all(c.ok for c in base)
    needs_base = "" if ready else "needs what is marked FAIL above"
    sam2_ok, sam2_out = _python(
        "import torch, sam2; from sam2.build_sam import build_sam2_video_predictor; "
        "print('torch', torch.__version__, '+ sam2')"
    )
    gradio = importlib.util.find_spec("gradio") is not None
    pytest = importlib.util.find_spec("pytest") is not None
    clone = (wan22 / "generate.py").is_file()
    parts = [
        Check(
            "dry runs",
            ready,
            needs_base
            or "--dry-run on every stage, pipeline.py, run_dataset.py and "
            "run_training.py checks the inputs and prints every upstream command",
            required=False,
        ),
        Check(
            "frame interpolation with ffmpeg",
            ready,
            needs_base or "run_postprocess.py --backend ffmpeg",
            required=False,
        ),
        Check(
            "contour mask on the CPU",
            ready and sam2_ok,
            f"run_mask.py --mask_device cpu ({sam2_out})"
            if sam2_ok
            else needs_base or f"torch + sam2 not importable ({sam2_out or 'no output'})",
            "pip install -r requirements-mask-cpu.txt, then SAM2_BUILD_CUDA=0 pip install --no-build-isolation "
            '--no-deps sam2==1.1.0 (README "Tests")',
            required=False,
        ),
        Check(
            "Web UI",
            ready and gradio,
            "python app_ui.py" if gradio else needs_base or "gradio missing",
            "pip install -r requirements-ui.txt",
            required=False,
        ),
        Check(
            "tests",
            pytest,
            "bash scripts/test.sh" if pytest else "pytest missing",
            'the venv recipe in README "Tests"',
            required=False,
        ),
        Check(
            "Wan2.2 clone (dry runs show its real paths)",
            clone,
            str(wan22) if clone else f"{wan22} missing",
            "./install.sh --no-checkpoint, or pass --wan22_dir / set WAN22_DIR",
            required=False,
        ),
    ]
    return base + parts


def summary(checks: Sequence[Check]) -> str:
    failed = sum(c.required and not c.ok for c in checks)
    warned = sum(not c.required and not c.ok for c in checks)
    return f"{sum(c.ok for c in checks)} ok, {warned} warning{'' if warned == 1 else 's'}, {failed} to fix"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check the environment for the pipeline.")
    parser.add_argument("--wan22_dir", default=config.WAN22.default_value())
    parser.add_argument("--ckpt_dir", default=config.CHECKPOINT.default_value())
    args, _ = parser.parse_known_args(argv)
    wan22, ckpt = Path(args.wan22_dir).resolve(), Path(args.ckpt_dir).resolve()
    cpu_only = not visible_gpus()
    if cpu_only:
        print(CPU_ONLY)
    checks = cpu_checks(wan22) if cpu_only else run_checks(wan22, ckpt)
    for check in checks:
        print(check.line())
    print(summary(checks) + (" (CPU-only)" if cpu_only else ""))
    return 1 if any(c.required and not c.ok for c in checks) else 0
