"""The whole synthetic checkpoint folder: the profile-dependent light parts (DiT, LoRAs, tokenizers, ONNX)
and the fixed-shape heavy encoders (umT5 11.4 GB, CLIP, VAE, SAM2)."""

from __future__ import annotations

import time
from pathlib import Path

from .layout import CLIP_FILE, CLIP_TOKENIZER_DIR, DISTILL_LORA_FILE, LORA_FILE, T5_FILE, T5_TOKENIZER_DIR, VAE_FILE
from .onnx_models import write_onnx_models
from .sam2_file import write_sam2
from .specs import PROFILES, clip_specs, distill_lora_specs, lora_specs, t5_specs, vae_specs
from .tensors import save_torch_state_dict, write_dit, write_safetensors
from .tokenizer_files import write_tokenizer


def _timed(label: str, write, path: Path) -> None:
    started = time.perf_counter()
    write()
    size = sum(p.stat().st_size for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file())
    seconds = time.perf_counter() - started
    print(
        f"[synthetic] {label}: {size / 1e9:.2f} GB in {seconds:.1f} s ({size / 1e9 / max(seconds, 1e-9):.2f} GB/s)",
        flush=True,
    )


def write_light(
    out: Path,
    profile: str,
    pose2d_layout: str,
    *,
    device: str = "cpu",
    onnx_from: Path | None = None,
    distill_lora: bool = False,
) -> None:
    """The profile-dependent and small parts: DiT, LoRA(s), tokenizers, ONNX."""
    cfg = PROFILES[profile]
    _timed("DiT shards", lambda: write_dit(cfg, out, device), out)
    _timed(
        "relighting LoRA",
        lambda: save_torch_state_dict(lora_specs(cfg), out / LORA_FILE, wrap_key="state_dict", device=device),
        out / LORA_FILE,
    )
    if distill_lora:
        _timed(
            "distill LoRA",
            lambda: write_safetensors(distill_lora_specs(cfg), out / DISTILL_LORA_FILE, device),
            out / DISTILL_LORA_FILE,
        )
    write_tokenizer(out / T5_TOKENIZER_DIR, "umt5")
    write_tokenizer(out / CLIP_TOKENIZER_DIR, "xlmr")
    write_onnx_models(out, pose2d_layout, onnx_from)


def write_heavy(out: Path, *, device: str = "cpu") -> None:
    """The fixed-shape encoders (about 15 GB): umT5, CLIP, VAE, SAM2."""
    _timed("umT5", lambda: save_torch_state_dict(t5_specs(), out / T5_FILE, device=device), out / T5_FILE)
    _timed("CLIP", lambda: save_torch_state_dict(clip_specs(), out / CLIP_FILE, device=device), out / CLIP_FILE)
    _timed("VAE", lambda: save_torch_state_dict(vae_specs(), out / VAE_FILE, device=device), out / VAE_FILE)
    write_sam2(out)


def make_checkpoint(
    out: Path,
    profile: str,
    pose2d_layout: str = "file",
    seed: int = 0,
    skip_heavy: bool = False,
    *,
    device: str = "cpu",
    onnx_from: Path | None = None,
    distill_lora: bool = False,
) -> None:
    """Write the whole synthetic checkpoint folder (or only its light parts). SAM2 is written last: a folder
    holding its file is complete (scripts/e2e_gpu.sh and bench_job.py rely on it)."""
    import torch

    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    write_light(out, profile, pose2d_layout, device=device, onnx_from=onnx_from, distill_lora=distill_lora)
    if not skip_heavy:
        write_heavy(out, device=device)
