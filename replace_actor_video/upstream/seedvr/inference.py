"""Adapter for ByteDance-Seed/SeedVR `projects/inference_seedvr2_{3b,7b}.py` (one-step video restoration;
set-up: docs/FINISHING.md).

Traps handled here:
- it calls `dist.init_process_group("nccl")` from torchrun's environment: always launched with
  `python -m torch.distributed.run --standalone` (which also picks a free port), even on one GPU;
- configs, checkpoints and the text embeddings are read relative to the cwd and `data`, `common`, `models`
  import from the repo root: cwd = the clone and PYTHONPATH = the clone; every file is checked first;
- input and output are folders and every entry of the input folder is processed: it gets a scratch
  folder holding one video-only copy, and we hand the user exactly --output;
- audio is dropped: we mux the source audio back;
- --res_h/--res_w set the pixel *area* (aspect kept, then a centre crop to multiples of 16), not the size;
- one video is sequence-parallel over all GPUs only with sp_size = GPU count (otherwise the extra
  data-parallel ranks get no video and idle);
- it imports flash_attn (2.5.9) and apex, which need their own builds: runtime/launcher.py stands in for whichever
  does not import (SDPA for the varlen attention, torch LayerNorm/RMSNorm for apex's fused norms).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ...core.errors import UserError
from .mirror_inference import RELATIVE_FILES

MODELS = ("3b", "7b")
LAUNCHER = Path(__file__).with_name("runtime") / "launcher.py"
INPUT_NAME = "input.mp4"
CHECKPOINT_HINT = {
    "3b": "huggingface-cli download ByteDance-Seed/SeedVR2-3B --local-dir {dir}/ckpts",
    "7b": "huggingface-cli download ByteDance-Seed/SeedVR2-7B --local-dir {dir}/ckpts",
}


def script(model: str) -> str:
    return f"projects/inference_seedvr2_{model}.py"


def check_clone(clone: Path, model: str) -> None:
    if not (clone / script(model)).is_file():
        raise UserError(
            f"{clone / script(model)} not found; clone ByteDance-Seed/SeedVR (docs/FINISHING.md) or pass --seedvr_dir"
        )
    missing = [name for name in RELATIVE_FILES[model] if not (clone / name).is_file()]
    if missing:
        raise UserError(
            f"{clone}: missing {', '.join(missing)}; {CHECKPOINT_HINT[model].format(dir=clone)} (docs/FINISHING.md)"
        )


def check_python(python: str) -> None:
    """torch (for torchrun) must be in the Python that launches SeedVR; checked only for our own."""
    if Path(python).resolve() == Path(sys.executable).resolve() and importlib.util.find_spec("torch") is None:
        raise UserError(
            f"PyTorch is not installed in {python}; install SeedVR's environment (docs/FINISHING.md) "
            "or pass --seedvr_python"
        )


def sp_size_for(num_gpus: int, sp_size: int) -> int:
    """0 = all GPUs work on the one video (sequence parallel)."""
    sp = sp_size or num_gpus
    if num_gpus < 1 or sp < 1 or num_gpus % sp:
        raise UserError(
            f"--num_gpus {num_gpus} / --sp_size {sp_size}: sp_size must divide num_gpus (0 = use all GPUs on the video)"
        )
    return sp


@dataclass(frozen=True)
class SeedVrCall:
    clone: Path  # absolute; also the cwd
    model: str
    in_dir: Path  # absolute, holding one video
    out_dir: Path  # absolute
    seed: int
    res_h: int
    res_w: int
    num_gpus: int
    sp_size: int
    python: str = sys.executable

    def upstream_args(self) -> list[str]:
        return [
            "--video_path",
            str(self.in_dir),
            "--output_dir",
            str(self.out_dir),
            "--seed",
            str(self.seed),
            "--res_h",
            str(self.res_h),
            "--res_w",
            str(self.res_w),
            "--sp_size",
            str(self.sp_size),
        ]

    def argv(self) -> list[str]:
        """torchrun → our launcher (stand-ins for a missing flash_attn or apex) → the official script."""
        return [
            self.python,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nnodes",
            "1",
            "--nproc_per_node",
            str(self.num_gpus),
            str(LAUNCHER),
            str(self.clone / script(self.model)),
            *self.upstream_args(),
        ]

    def env(self) -> dict[str, str]:
        path = os.environ.get("PYTHONPATH")
        return {**os.environ, "PYTHONPATH": str(self.clone) + (os.pathsep + path if path else "")}

    @property
    def output(self) -> Path:
        return self.out_dir / INPUT_NAME
