"""Filling tensor specs with values and writing them: torch.save state dicts (T5, CLIP, VAE, relighting LoRA)
and safetensors files written one tensor at a time (the DiT shards, 34.5 GB at full size)."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .layout import DIT_INDEX
from .specs import TEXT_DIM, DitConfig, TensorSpec, dit_specs

if TYPE_CHECKING:
    import torch

_TORCH_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
_SAFETENSORS_DTYPES = {"bf16": "BF16", "fp16": "F16", "fp32": "F32"}


def make_tensor(spec: TensorSpec, device: str = "cpu") -> torch.Tensor:
    """Fill one tensor per its spec, on the CPU; random draws use torch's global generator of `device` (a GPU
    draws the 17 B values of the full DiT in seconds, a CPU in minutes)."""
    import torch

    dtype = getattr(torch, _TORCH_DTYPES[spec.dtype])
    if spec.init == "normal":
        # normal_ directly in the target dtype: no fp32 temporary, multi-threaded.
        return torch.empty(spec.shape, dtype=dtype, device=device).normal_(0.0, spec.std).cpu()
    if spec.init == "zeros":
        return torch.zeros(spec.shape, dtype=dtype)
    if spec.init == "ones":
        return torch.ones(spec.shape, dtype=dtype)
    if spec.init == "const":
        return torch.full(spec.shape, spec.std, dtype=dtype)
    if spec.init == "blur":
        k = torch.tensor([1.0, 3.0, 3.0, 1.0])
        kernel = k[None, :] * k[:, None]
        return (kernel / kernel.sum()).to(dtype)
    raise ValueError(f"unknown init {spec.init!r}")


def save_torch_state_dict(
    specs: Iterable[TensorSpec], path: Path, wrap_key: str | None = None, device: str = "cpu"
) -> None:
    """torch.save a plain state dict (optionally wrapped as ``{wrap_key: sd}``).

    torch.save needs the whole dict in memory; the biggest one (umT5, 11.4 GB)
    fits the GPU machine's RAM.
    """
    import torch

    state = {s.name: make_tensor(s, device) for s in specs}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({wrap_key: state} if wrap_key else state, path)


def split_shards(specs: Sequence[TensorSpec], num_shards: int) -> list[list[TensorSpec]]:
    """Cut the spec list, in order, into num_shards runs of roughly equal bytes."""
    total = sum(s.nbytes for s in specs)
    shards: list[list[TensorSpec]] = [[] for _ in range(num_shards)]
    done = 0
    for s in specs:
        index = min(num_shards - 1, done * num_shards // total)
        shards[index].append(s)
        done += s.nbytes
    return [shard for shard in shards if shard]


def write_safetensors(specs: Sequence[TensorSpec], path: Path, device: str = "cpu") -> None:
    """Write one safetensors file, generating and writing one tensor at a time.

    The safetensors library only saves a complete in-memory dict; writing the
    format here (8-byte header length, JSON header, raw little-endian data)
    keeps memory at one tensor, which matters for the 34.5 GB full DiT.
    """
    import torch

    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for s in specs:
        header[s.name] = {
            "dtype": _SAFETENSORS_DTYPES[s.dtype],
            "shape": list(s.shape),
            "data_offsets": [offset, offset + s.nbytes],
        }
        offset += s.nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # the format pads the header to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for s in specs:
            tensor = make_tensor(s, device).reshape(-1)
            # uint8 view: numpy has no bfloat16, and the raw bytes are what we write.
            f.write(tensor.view(torch.uint8).numpy())


def dit_config_json(cfg: DitConfig) -> dict[str, object]:
    """config.json for diffusers ``WanAnimateModel.from_pretrained``."""
    return {
        "_class_name": "WanAnimateModel",
        "_diffusers_version": "0.35.2",
        "patch_size": [1, 2, 2],
        "text_len": 512,
        "in_dim": 36,
        "dim": cfg.dim,
        "ffn_dim": cfg.ffn_dim,
        "freq_dim": 256,
        "text_dim": TEXT_DIM,
        "out_dim": 16,
        "num_heads": cfg.num_heads,
        "num_layers": cfg.num_layers,
        "window_size": [-1, -1],
        "qk_norm": True,
        "cross_attn_norm": True,
        "eps": 1e-06,
        "motion_encoder_dim": 512,
        "use_context_parallel": False,
        "use_img_emb": True,
    }


def write_dit(cfg: DitConfig, out: Path, device: str = "cpu") -> None:
    """config.json, sharded safetensors and the index diffusers resolves them by."""
    (out / "config.json").write_text(json.dumps(dit_config_json(cfg), indent=2) + "\n")
    specs = dit_specs(cfg)
    shards = split_shards(specs, cfg.num_shards)
    weight_map: dict[str, str] = {}
    for k, shard in enumerate(shards, start=1):
        name = f"diffusion_pytorch_model-{k:05d}-of-{len(shards):05d}.safetensors"
        write_safetensors(shard, out / name, device)
        weight_map.update({s.name: name for s in shard})
    index = {"metadata": {"total_size": sum(s.nbytes for s in specs)}, "weight_map": weight_map}
    (out / DIT_INDEX).write_text(json.dumps(index, indent=2) + "\n")
