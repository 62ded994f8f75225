"""Adapter for DiffSynth-Studio's Wan training script `examples/wanvideo/model_training/train.py` with
Wan2.2-Animate-14B: its CLI, the checkpoint files it loads, the dataset columns it reads, its traps.

What train.py does with an Animate dataset (DiffSynth-Studio @ db5b335):
- `metadata.csv` is read with pandas (`diffsynth/core/data/unified_dataset.py:86`); every key named in
  `--data_file_keys` is a path joined to `--dataset_base_path` and loaded as a video
  (`unified_dataset.py:95-100`, `train.py:136-157`); `animate_face_video` is cropped to 512x512
  (`train.py:153`), the others to `--height`x`--width`.
- Only the first `--num_frames` frames of each file are used ("Frames are sampled from the video prefix",
  `parsers.py:22`; `operators.py:157-173`): a long video must be cut into clips, or most of it is never seen.
  Frames are read by index (`fix_frame_rate` is off), so `video` and the conditioning videos must share
  one frame rate and frame count.
- `input_image` is always the first frame of `video` (`train.py:69-70`): the reference is not a column.
- The pose, face, inpaint and mask videos are cut to `len(video) - 4` frames (`wan_video.py:959-976`).
- An empty prompt cell is read by pandas as NaN (a float), which the tokenizer rejects: write a prompt.
- Gradient checkpointing is forced on whatever the flag says (`train.py:30-32`).
- In full mode the motion encoder's `enc` half never gets a gradient: `Generator.get_motion` runs it under a
  reentrant checkpoint whose only input, the face pixels, needs no grad (wan_video_animate_adapter.py:608-612;
  the official Wan code does the same). It stays as loaded; DDP must be told about unused parameters.
- Without `--tokenizer_path` it downloads `Wan-AI/Wan2.1-T2V-1.3B:google/umt5-xxl/` (`train.py:36`), and
  `--model_id_with_origin_paths` downloads too: we always pass local paths and set
  DIFFSYNTH_SKIP_DOWNLOAD=true.
- Models are recognised by an md5 of their tensor names and shapes (`diffsynth/configs/model_configs.py`);
  the four Animate files are listed below (`examples/.../Wan2.2-Animate-14B.sh`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ...core.errors import UserError

TRAIN_SCRIPT = Path("examples/wanvideo/model_training/train.py")

# Columns of metadata.csv, as train.py and the pipeline name them (wan_video.py:230-233, train.py:153).
VIDEO, PROMPT = "video", "prompt"
POSE, FACE = "animate_pose_video", "animate_face_video"
INPAINT, MASK = "animate_inpaint_video", "animate_mask_video"
ANIMATE_FILE_KEYS = (VIDEO, POSE, FACE)
REPLACE_FILE_KEYS = ANIMATE_FILE_KEYS + (INPAINT, MASK)
# The official Animate default prompt (Wan2.2 wan/configs/wan_animate_14B.py:40, DiffSynth's examples).
DEFAULT_PROMPT = "视频中的人在做动作"

# The checkpoint files the upstream Animate scripts load, in their order (lora|full/Wan2.2-Animate-14B.sh).
DIT_GLOB = "diffusion_pytorch_model*.safetensors"
T5_FILE = "models_t5_umt5-xxl-enc-bf16.pth"
VAE_FILE = "Wan2.1_VAE.pth"
CLIP_FILE = "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"
TOKENIZER_DIR = "google/umt5-xxl"

# What the upstream Animate scripts pass for each mode (examples/wanvideo/model_training/{lora,full}/).
MODE_DEFAULTS = {
    "lora": {"learning_rate": 1e-4, "num_epochs": 5, "remove_prefix_in_ckpt": "pipe.dit."},
    # "full" trains the animate adapter only (pose patch embedding, motion encoder, face encoder and the
    # face adapter blocks), never the 14B DiT: full/Wan2.2-Animate-14B.sh --trainable_models animate_adapter.
    "full": {"learning_rate": 1e-5, "num_epochs": 2, "remove_prefix_in_ckpt": "pipe.animate_adapter."},
}
LORA_TARGETS = "q,k,v,o,ffn.0,ffn.2"


def file_keys(replace: bool) -> tuple[str, ...]:
    return REPLACE_FILE_KEYS if replace else ANIMATE_FILE_KEYS


def extra_inputs(replace: bool) -> tuple[str, ...]:
    """`--extra_inputs`: input_image (first frame of `video`) plus every conditioning column."""
    return ("input_image",) + file_keys(replace)[1:]


def model_paths(ckpt_dir: Path) -> list:
    """The `--model_paths` list for a local Wan2.2-Animate-14B folder: the DiT shards as one model, then T5,
    VAE and CLIP. UserError names every missing file."""
    shards = sorted(str(p) for p in ckpt_dir.glob(DIT_GLOB))
    missing = [] if shards else [DIT_GLOB]
    missing += [name for name in (T5_FILE, VAE_FILE, CLIP_FILE, TOKENIZER_DIR) if not (ckpt_dir / name).exists()]
    if missing:
        raise UserError(
            f"{ckpt_dir}: missing {', '.join(missing)}; download Wan-AI/Wan2.2-Animate-14B there "
            "(./install.sh) or pass --ckpt_dir"
        )
    return [shards, str(ckpt_dir / T5_FILE), str(ckpt_dir / VAE_FILE), str(ckpt_dir / CLIP_FILE)]


def check_diffsynth(diffsynth_dir: Path) -> Path:
    script = diffsynth_dir / TRAIN_SCRIPT
    if not script.is_file():
        raise UserError(
            f"{script} not found; install DiffSynth-Studio with scripts/install_training.sh or pass --diffsynth_dir"
        )
    return script


@dataclass(frozen=True)
class TrainCall:
    """One run of train.py for Wan2.2-Animate-14B. `extra` is appended as given (already checked against
    the mirror parser by the caller)."""

    dataset_dir: Path
    metadata: Path
    replace: bool
    model_paths: list
    tokenizer_path: Path
    output_path: Path
    mode: str  # lora | full
    learning_rate: float
    num_epochs: int
    dataset_repeat: int
    num_frames: int
    height: int | None
    width: int | None
    max_pixels: int
    lora_rank: int
    lora_target_modules: str
    gradient_checkpointing_offload: bool
    gradient_accumulation_steps: int
    save_steps: int | None
    dataset_num_workers: int
    layer_offload: bool
    extra: tuple[str, ...] = field(default=())

    def args(self) -> list[str]:
        """The train.py arguments (without the script path)."""
        args = [
            "--dataset_base_path",
            str(self.dataset_dir),
            "--dataset_metadata_path",
            str(self.metadata),
            "--data_file_keys",
            ",".join(file_keys(self.replace)),
            "--extra_inputs",
            ",".join(extra_inputs(self.replace)),
            "--num_frames",
            str(self.num_frames),
            "--dataset_repeat",
            str(self.dataset_repeat),
            "--dataset_num_workers",
            str(self.dataset_num_workers),
            "--model_paths",
            json.dumps(self.model_paths),
            "--tokenizer_path",
            str(self.tokenizer_path),
            "--learning_rate",
            repr(self.learning_rate),
            "--num_epochs",
            str(self.num_epochs),
            "--gradient_accumulation_steps",
            str(self.gradient_accumulation_steps),
            "--remove_prefix_in_ckpt",
            MODE_DEFAULTS[self.mode]["remove_prefix_in_ckpt"],
            "--output_path",
            str(self.output_path),
        ]
        if self.height is not None and self.width is not None:
            args += ["--height", str(self.height), "--width", str(self.width)]
        else:
            args += ["--max_pixels", str(self.max_pixels)]
        if self.mode == "lora":
            args += [
                "--lora_base_model",
                "dit",
                "--lora_target_modules",
                self.lora_target_modules,
                "--lora_rank",
                str(self.lora_rank),
            ]
        else:
            # motion_encoder.enc gets no gradient (see above); DDP would stop at the second step without this.
            args += ["--trainable_models", "animate_adapter", "--find_unused_parameters"]
        args.append("--use_gradient_checkpointing")
        if self.gradient_checkpointing_offload:
            args.append("--use_gradient_checkpointing_offload")
        if self.save_steps:
            args += ["--save_steps", str(self.save_steps)]
        if self.layer_offload:
            # DiffSynth's own one-GPU route: weights stay in CPU RAM and visit the GPU one layer at a time.
            args.append("--enable_model_cpu_offload")
        return args + list(self.extra)


def checkpoints(output_path: Path) -> list[Path]:
    """The checkpoints train.py writes: epoch-N.safetensors or step-N.safetensors (diffusion/logger.py)."""
    return sorted(output_path.glob("*.safetensors")) if output_path.is_dir() else []


def tensor_count(path: Path) -> int:
    """Tensors in a safetensors file, read from its JSON header (8-byte little-endian length, then JSON).
    DiffSynth saves the trainable parameters whose names match the state dict: a wrapper that renames
    parameters (FSDP1's _fsdp_wrapped_module.) makes it save an empty file without any error."""
    with open(path, "rb") as fh:
        size = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(size) or b"{}")
    return sum(1 for key in header if key != "__metadata__")
