"""Adapter for Wan2.2's official `generate.py --task animate-14B`, run through our tiny launcher.

Traps handled here (each read in the Wan2.2 source at the pinned commit; README "Troubleshooting"):
- `--refert_num` defaults to 77, which WanAnimate.generate rejects: we always pass 1 or 5;
- without `--save_file` the output lands in the cwd under a generated name: we always pass it;
- `--prompt` never reaches WanAnimate.generate: the launcher passes it (see wan_launcher.py);
- Animate hard-requires flash_attn: the launcher routes attention to torch SDPA (cuDNN first), FA3 or Sage;
- `--frame_num` must be 4n+1 (not checked upstream); Ulysses needs N | 40 heads and N | sequence length.

Speed options the launcher applies when upstream builds the DiT (upstream has none of them): LoRA files
merged into the weights (`--lora PATH:WEIGHT`, e.g. the LightX2V 4-step distill LoRA), float8 linears
(`--fp8`, torchao) and torch.compile of each block (`--compile`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import UserError
from .lora import format_lora_arg

SCRIPT = "generate.py"
LAUNCHER = Path(__file__).with_name("wan_launcher.py")
NUM_HEADS = 40  # wan/configs/wan_animate_14B.py
INPUTS_ANIMATE = ("src_pose.mp4", "src_face.mp4", "src_ref.png")
INPUTS_REPLACE = INPUTS_ANIMATE + ("src_bg.mp4", "src_mask.mp4")
CHECKPOINT_FILES = (
    "config.json",
    "diffusion_pytorch_model.safetensors.index.json",
    "models_t5_umt5-xxl-enc-bf16.pth",
    "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth",
    "Wan2.1_VAE.pth",
    "google/umt5-xxl",
    "xlm-roberta-large",
)
LORA_FILE = "relighting_lora.ckpt"


@dataclass(frozen=True)
class GenerateCall:
    wan22_dir: Path
    ckpt_dir: Path
    src_root_path: Path
    save_file: Path
    replace: bool
    use_relighting_lora: bool
    prompt: str | None
    negative_prompt: str | None
    sample_steps: int | None
    sample_guide_scale: float | None
    sample_shift: float | None
    sample_solver: str
    seed: int
    frame_num: int
    refert_num: int
    offload_model: bool | None
    t5_cpu: bool
    convert_model_dtype: bool
    nproc: int
    attention: str
    loras: tuple[tuple[Path, float], ...] = ()
    compile: bool = False
    fp8: bool = False
    vae_bf16: bool = False

    def generate_args(self) -> list[str]:
        """The argument list of the official generate.py."""
        args = ["--task", "animate-14B", "--ckpt_dir", str(self.ckpt_dir),
                "--src_root_path", str(self.src_root_path), "--refert_num", str(self.refert_num),
                "--frame_num", str(self.frame_num), "--save_file", str(self.save_file),
                "--sample_solver", self.sample_solver, "--base_seed", str(self.seed)]
        for flag, value in (("--sample_steps", self.sample_steps), ("--sample_shift", self.sample_shift),
                            ("--sample_guide_scale", self.sample_guide_scale), ("--prompt", self.prompt)):
            if value is not None:
                args += [flag, str(value)]
        if self.offload_model is not None:
            args += ["--offload_model", str(self.offload_model)]
        for flag, on in (("--replace_flag", self.replace), ("--use_relighting_lora", self.use_relighting_lora),
                         ("--t5_cpu", self.t5_cpu), ("--convert_model_dtype", self.convert_model_dtype)):
            if on:
                args.append(flag)
        if self.nproc > 1:
            args += ["--dit_fsdp", "--t5_fsdp", "--ulysses_size", str(self.nproc)]
        return args

    def argv(self, python: str = sys.executable) -> list[str]:
        launcher = [str(LAUNCHER), "--wan22_dir", str(self.wan22_dir), "--attention", self.attention]
        if self.negative_prompt:
            launcher += ["--negative_prompt", self.negative_prompt]
        for path, weight in self.loras:
            launcher += ["--lora", format_lora_arg(path, weight)]
        launcher += [flag for flag, on in (("--compile", self.compile), ("--fp8", self.fp8),
                                           ("--vae_bf16", self.vae_bf16)) if on]
        if self.nproc > 1:
            head = [python, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
                    "--nproc_per_node", str(self.nproc)]
        else:
            head = [python]
        return [*head, *launcher, "--", *self.generate_args()]


def check_wan22(wan22_dir: Path) -> None:
    if not (wan22_dir / SCRIPT).is_file():
        raise UserError(f"{wan22_dir / SCRIPT} not found; clone Wan2.2 with ./install.sh or pass --wan22_dir")


def check_checkpoint(ckpt_dir: Path, *, use_relighting_lora: bool) -> None:
    missing = [name for name in CHECKPOINT_FILES if not (ckpt_dir / name).exists()]
    if not any(ckpt_dir.glob("diffusion_pytorch_model*.safetensors")):
        missing.append("diffusion_pytorch_model-*.safetensors")
    if use_relighting_lora and not (ckpt_dir / LORA_FILE).is_file():
        missing.append(LORA_FILE)
    if missing:
        raise UserError(f"{ckpt_dir}: missing {', '.join(missing)}; download Wan-AI/Wan2.2-Animate-14B with "
                        f"./install.sh or pass --ckpt_dir")


def check_src_root(src_root: Path, *, replace: bool) -> None:
    if not src_root.is_dir():
        raise UserError(f"{src_root}: not a directory; pass the --save_path folder of run_preprocessing.py")
    names = INPUTS_REPLACE if replace else INPUTS_ANIMATE
    missing = [n for n in names if not (src_root / n).is_file()]
    if missing:
        hint = ("it was preprocessed in animate mode; rerun run_preprocessing.py with --replace"
                if replace and set(missing) <= {"src_bg.mp4", "src_mask.mp4"} else "rerun run_preprocessing.py")
        raise UserError(f"{src_root}: missing {', '.join(missing)}; {hint}")


def check_frame_args(frame_num: int, refert_num: int) -> None:
    if frame_num < 5 or (frame_num - 1) % 4:
        raise UserError(f"--frame_num {frame_num}: must be 4n+1 (e.g. 77, 81, 49)")
    if refert_num not in (1, 5):
        raise UserError(f"--refert_num {refert_num}: must be 1 or 5 (upstream asserts it)")
    if refert_num >= frame_num:
        raise UserError(f"--refert_num {refert_num} must be smaller than --frame_num {frame_num}")


def sequence_length(frame_num: int, width: int, height: int) -> int:
    """DiT tokens per clip: (latent frames + 1 reference frame) × (H/16) × (W/16)."""
    return ((frame_num - 1) // 4 + 2) * (height // 16) * (width // 16)


def check_parallel(nproc: int, *, frame_num: int, width: int, height: int) -> None:
    if nproc <= 1:
        return
    if NUM_HEADS % nproc:
        good = [n for n in range(2, NUM_HEADS + 1) if NUM_HEADS % n == 0]
        raise UserError(f"--nproc_per_node {nproc}: Ulysses needs a divisor of the 40 attention heads ({good})")
    tokens = sequence_length(frame_num, width, height)
    if tokens % nproc:
        raise UserError(f"--nproc_per_node {nproc}: the sequence of {tokens} tokens ({width}x{height}, "
                        f"frame_num {frame_num}) does not split evenly; use another GPU count or a resolution "
                        f"whose (W/16)*(H/16) is divisible by {nproc}")
