#!/usr/bin/env python3
"""Write a random-weight stand-in for the Wan2.2-Animate-14B checkpoint folder.

The folder has the layout, file names, tensor names, shapes and dtypes that the
official Wan2.2 code (commit 42bf4cf) loads without modification:

- ``generate.py --task animate-14B --ckpt_dir DIR`` (wan/animate.py): the DiT
  (diffusers ``config.json`` + sharded safetensors + index), the umT5-XXL
  encoder, the CLIP ViT-H/14, the Wan2.1 VAE, the relighting LoRA and the two
  tokenizer folders;
- ``preprocess_data.py --ckpt_path DIR/process_checkpoint``: the YOLO person
  detector and the ViTPose whole-body model (ONNX) and the SAM2 checkpoint.

Profiles: ``tiny`` shrinks the DiT through ``config.json`` so that a denoising
step takes seconds; ``full`` keeps the 14B dims (for GPU benchmarks). T5, CLIP
and VAE always keep their real shapes because upstream hard-codes them.

The ONNX models are tiny graphs whose outputs are fixed: one person box over the
centre of the frame and 133 whole-body heatmaps that peak on a standing
skeleton inside that box, so pose drawing, face crops and SAM2 point prompts
all get sane coordinates.

Heavy imports (torch, tokenizers, sam2) happen inside functions so that
``--help`` works with the standard library alone. The ONNX files and
safetensors shards are written by this file itself (both formats are simple)
so that neither the ``onnx`` nor the ``safetensors`` package is needed.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import struct
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import torch

# ---------------------------------------------------------------------------
# DiT configurations
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DitConfig:
    """The ``WanAnimateModel`` constructor arguments that change tensor shapes.

    Everything else in config.json stays at the upstream defaults. ``text_dim``
    (umT5 width), the CLIP width 1280 and the motion encoder sizes are fixed by
    the other models, so they cannot shrink.
    """

    dim: int
    ffn_dim: int
    num_heads: int
    num_layers: int
    num_shards: int

    def __post_init__(self) -> None:
        # The face adapter runs after blocks 0, 5, 10, ... (num_layers // 5 of them).
        if self.num_layers % 5:
            raise ValueError("num_layers must be a multiple of 5")
        head_dim, rest = divmod(self.dim, self.num_heads)
        if rest or head_dim % 2:
            raise ValueError("dim / num_heads must be an even integer")


PROFILES: dict[str, DitConfig] = {
    # head_dim 64 and 8 heads: flash-attention friendly, Ulysses sizes 1/2/4/8.
    "tiny": DitConfig(dim=512, ffn_dim=1024, num_heads=8, num_layers=5, num_shards=2),
    "full": DitConfig(dim=5120, ffn_dim=13824, num_heads=40, num_layers=40, num_shards=4),
}

TEXT_DIM = 4096  # umT5-XXL width, fed to the DiT text embedding
CLIP_DIM = 1280  # ViT-H/14 width, fed to the DiT image embedding (MLPProj)
LORA_RANK = 128  # wan/animate.py: get_loraconfig(rank=128, alpha=128)

# File names under the checkpoint folder (wan/configs/wan_animate_14B.py and
# preprocess_data.py).
T5_FILE = "models_t5_umt5-xxl-enc-bf16.pth"
CLIP_FILE = "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"
VAE_FILE = "Wan2.1_VAE.pth"
LORA_FILE = "relighting_lora.ckpt"
T5_TOKENIZER_DIR = "google/umt5-xxl"
CLIP_TOKENIZER_DIR = "xlm-roberta-large"
DET_FILE = "process_checkpoint/det/yolov10m.onnx"
POSE_FILE = "process_checkpoint/pose2d/vitpose_h_wholebody.onnx"
SAM2_FILE = "process_checkpoint/sam2/sam2_hiera_large.pt"
DIT_INDEX = "diffusion_pytorch_model.safetensors.index.json"

# ---------------------------------------------------------------------------
# Tensor specifications
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorSpec:
    """One state-dict entry: its name, shape, dtype and how to fill it."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # "bf16" | "fp16" | "fp32"
    init: str  # "normal" | "zeros" | "ones" | "blur"
    std: float = 0.0

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * (4 if self.dtype == "fp32" else 2)


@dataclass
class SpecBuilder:
    """Collects TensorSpecs; helpers mirror the torch layers upstream uses.

    Weights get N(0, 1/fan_in) unless a std is given, which keeps activations
    O(1) through deep stacks, so random models produce finite outputs in
    bf16/fp16. Biases are zero and norm scales one, as a fresh model has them.
    """

    dtype: str
    specs: list[TensorSpec] = field(default_factory=list)

    def normal(self, name: str, shape: Sequence[int], std: float | None = None) -> None:
        if std is None:
            fan_in = math.prod(shape[1:]) if len(shape) > 1 else shape[0]
            std = fan_in ** -0.5
        self.specs.append(TensorSpec(name, tuple(shape), self.dtype, "normal", std))

    def zeros(self, name: str, shape: Sequence[int]) -> None:
        self.specs.append(TensorSpec(name, tuple(shape), self.dtype, "zeros"))

    def ones(self, name: str, shape: Sequence[int]) -> None:
        self.specs.append(TensorSpec(name, tuple(shape), self.dtype, "ones"))

    def linear(self, prefix: str, out_dim: int, in_dim: int, bias: bool = True) -> None:
        self.normal(f"{prefix}.weight", (out_dim, in_dim))
        if bias:
            self.zeros(f"{prefix}.bias", (out_dim,))

    def conv(self, prefix: str, out_dim: int, in_dim: int, kernel: Sequence[int], bias: bool = True) -> None:
        self.normal(f"{prefix}.weight", (out_dim, in_dim, *kernel))
        if bias:
            self.zeros(f"{prefix}.bias", (out_dim,))

    def norm(self, prefix: str, dim: int, bias: bool = True) -> None:
        self.ones(f"{prefix}.weight", (dim,))
        if bias:
            self.zeros(f"{prefix}.bias", (dim,))


def dit_specs(cfg: DitConfig) -> list[TensorSpec]:
    """State dict of wan/modules/animate/model_animate.py ``WanAnimateModel``."""
    b = SpecBuilder("bf16")
    d, f = cfg.dim, cfg.ffn_dim
    b.conv("patch_embedding", d, 36, (1, 2, 2))
    b.conv("pose_patch_embedding", d, 16, (1, 2, 2))
    b.linear("text_embedding.0", d, TEXT_DIM)
    b.linear("text_embedding.2", d, d)
    b.linear("time_embedding.0", d, 256)
    b.linear("time_embedding.2", d, d)
    b.linear("time_projection.1", 6 * d, d)
    for i in range(cfg.num_layers):
        p = f"blocks.{i}"
        for attn in ("self_attn", "cross_attn"):
            for proj in ("q", "k", "v", "o"):
                b.linear(f"{p}.{attn}.{proj}", d, d)
            b.norm(f"{p}.{attn}.norm_q", d, bias=False)
            b.norm(f"{p}.{attn}.norm_k", d, bias=False)
        b.linear(f"{p}.cross_attn.k_img", d, d)
        b.linear(f"{p}.cross_attn.v_img", d, d)
        b.norm(f"{p}.cross_attn.norm_k_img", d, bias=False)
        b.norm(f"{p}.norm3", d)  # cross_attn_norm=True: the only affine block norm
        b.linear(f"{p}.ffn.0", f, d)
        b.linear(f"{p}.ffn.2", d, f)
        b.normal(f"{p}.modulation", (1, 6, d), std=d ** -0.5)
    b.linear("head.head", 4 * 16, d)  # prod(patch_size) * out_dim
    b.normal("head.modulation", (1, 2, d), std=d ** -0.5)
    b.norm("img_emb.proj.0", CLIP_DIM)
    b.linear("img_emb.proj.1", CLIP_DIM, CLIP_DIM)
    b.linear("img_emb.proj.3", d, CLIP_DIM)
    b.norm("img_emb.proj.4", d)
    _motion_encoder_specs(b, "motion_encoder")
    head_dim = d // cfg.num_heads
    for j in range(cfg.num_layers // 5):
        p = f"face_adapter.fuser_blocks.{j}"
        b.linear(f"{p}.linear1_kv", 2 * d, d)
        b.linear(f"{p}.linear1_q", d, d)
        b.linear(f"{p}.linear2", d, d)
        b.norm(f"{p}.q_norm", head_dim, bias=False)
        b.norm(f"{p}.k_norm", head_dim, bias=False)
    # FaceEncoder(in_dim=512, hidden_dim=dim, num_heads=4): 1024 channels per head.
    b.conv("face_encoder.conv1_local.conv", 4 * 1024, 512, (3,))
    b.conv("face_encoder.conv2.conv", 1024, 1024, (3,))
    b.conv("face_encoder.conv3.conv", 1024, 1024, (3,))
    b.linear("face_encoder.out_proj", d, 1024)
    b.zeros("face_encoder.padding_tokens", (1, 1, 1, d))
    return b.specs


def _motion_encoder_specs(b: SpecBuilder, prefix: str) -> None:
    """motion_encoder.py ``Generator(size=512, style_dim=512, motion_dim=20)``.

    EqualConv2d / EqualLinear store N(0, 1) weights and scale them at run time,
    so their weights get std 1. Blur kernels are persistent buffers with fixed
    values (outer product of [1, 3, 3, 1], normalised).
    """
    app = f"{prefix}.enc.net_app.convs"
    b.normal(f"{app}.0.0.weight", (32, 3, 1, 1), std=1.0)
    b.zeros(f"{app}.0.1.bias", (1, 32, 1, 1))
    channels = [32, 64, 128, 256, 512, 512, 512, 512]  # 512 px input down to 4 px
    for k, (cin, cout) in enumerate(itertools.pairwise(channels), start=1):
        p = f"{app}.{k}"
        b.normal(f"{p}.conv1.0.weight", (cin, cin, 3, 3), std=1.0)
        b.zeros(f"{p}.conv1.1.bias", (1, cin, 1, 1))
        b.specs.append(TensorSpec(f"{p}.conv2.0.kernel", (4, 4), b.dtype, "blur"))
        b.normal(f"{p}.conv2.1.weight", (cout, cin, 3, 3), std=1.0)
        b.zeros(f"{p}.conv2.2.bias", (1, cout, 1, 1))
        b.specs.append(TensorSpec(f"{p}.skip.0.kernel", (4, 4), b.dtype, "blur"))
        b.normal(f"{p}.skip.1.weight", (cout, cin, 1, 1), std=1.0)
    b.normal(f"{app}.{len(channels)}.weight", (512, 512, 4, 4), std=1.0)
    for k in range(4):
        b.normal(f"{prefix}.enc.fc.{k}.weight", (512, 512), std=1.0)
        b.zeros(f"{prefix}.enc.fc.{k}.bias", (512,))
    b.normal(f"{prefix}.enc.fc.4.weight", (20, 512), std=1.0)
    b.zeros(f"{prefix}.enc.fc.4.bias", (20,))
    b.normal(f"{prefix}.dec.direction.weight", (512, 20), std=1.0)


def lora_targets(cfg: DitConfig) -> list[tuple[str, int, int]]:
    """(module, in_features, out_features) that ``get_loraconfig`` wraps.

    animate_utils.get_loraconfig takes every nn.Linear whose name contains
    "blocks" but neither "face" nor "modulation": the attention and FFN
    linears of the DiT blocks.
    """
    d, f = cfg.dim, cfg.ffn_dim
    targets = []
    for i in range(cfg.num_layers):
        p = f"blocks.{i}"
        for proj in ("q", "k", "v", "o"):
            targets.append((f"{p}.self_attn.{proj}", d, d))
        for proj in ("q", "k", "v", "o", "k_img", "v_img"):
            targets.append((f"{p}.cross_attn.{proj}", d, d))
        targets.append((f"{p}.ffn.0", d, f))
        targets.append((f"{p}.ffn.2", f, d))
    return targets


def lora_specs(cfg: DitConfig) -> list[TensorSpec]:
    """PEFT LoRA state dict, keys as ``get_peft_model_state_dict`` writes them.

    The adapter name is left out (``...q.lora_A.weight``):
    ``set_peft_model_state_dict`` inserts it, in every peft version.
    """
    b = SpecBuilder("bf16")
    for module, fan_in, fan_out in lora_targets(cfg):
        b.normal(f"{module}.lora_A.weight", (LORA_RANK, fan_in))
        # Small B keeps the low-rank update a perturbation of the base layer.
        b.normal(f"{module}.lora_B.weight", (fan_out, LORA_RANK), std=0.01)
    return b.specs


def t5_specs() -> list[TensorSpec]:
    """wan/modules/t5.py ``umt5_xxl(encoder_only=True)``: T5Encoder, bf16.

    The stds follow t5.py ``init_weights`` (T5 does not scale attention).
    """
    b = SpecBuilder("bf16")
    dim, dim_ffn, heads, layers, buckets, vocab = 4096, 10240, 64, 24, 32, 256384
    b.normal("token_embedding.weight", (vocab, dim), std=1.0)
    for i in range(layers):
        p = f"blocks.{i}"
        b.norm(f"{p}.norm1", dim, bias=False)
        b.normal(f"{p}.attn.q.weight", (dim, dim), std=(dim * dim) ** -0.5)
        for proj in ("k", "v"):
            b.normal(f"{p}.attn.{proj}.weight", (dim, dim), std=dim ** -0.5)
        b.normal(f"{p}.attn.o.weight", (dim, dim), std=dim ** -0.5)
        b.norm(f"{p}.norm2", dim, bias=False)
        b.normal(f"{p}.ffn.gate.0.weight", (dim_ffn, dim), std=dim ** -0.5)
        b.normal(f"{p}.ffn.fc1.weight", (dim_ffn, dim), std=dim ** -0.5)
        b.normal(f"{p}.ffn.fc2.weight", (dim, dim_ffn), std=dim_ffn ** -0.5)
        # shared_pos=False: every block owns its relative position embedding.
        b.normal(f"{p}.pos_embedding.embedding.weight", (buckets, heads), std=(2 * buckets * heads) ** -0.5)
    b.norm("norm", dim, bias=False)
    return b.specs


def clip_specs() -> list[TensorSpec]:
    """wan/modules/animate/clip.py ``clip_xlm_roberta_vit_h_14``: XLMRobertaCLIP.

    Stored as fp16, the dtype CLIPModel runs in (load_state_dict copies into
    the fp16 model, so the file dtype only changes the file size).
    """
    b = SpecBuilder("fp16")
    vdim, vlayers, patch, tokens = 1280, 32, 14, (224 // 14) ** 2 + 1
    b.normal("visual.patch_embedding.weight", (vdim, 3, patch, patch))  # pre_norm: no bias
    b.normal("visual.cls_embedding", (1, 1, vdim), std=vdim ** -0.5)
    b.normal("visual.pos_embedding", (1, tokens, vdim), std=vdim ** -0.5)
    b.norm("visual.pre_norm", vdim)
    for i in range(vlayers):
        p = f"visual.transformer.{i}"
        b.norm(f"{p}.norm1", vdim)
        b.linear(f"{p}.attn.to_qkv", 3 * vdim, vdim)
        b.linear(f"{p}.attn.proj", vdim, vdim)
        b.norm(f"{p}.norm2", vdim)
        b.linear(f"{p}.mlp.0", 4 * vdim, vdim)
        b.linear(f"{p}.mlp.2", vdim, 4 * vdim)
    b.norm("visual.post_norm", vdim)
    b.normal("visual.head", (vdim, 1024), std=vdim ** -0.5)
    tdim, tlayers = 1024, 24
    b.normal("textual.token_embedding.weight", (250002, tdim), std=0.02)
    b.normal("textual.type_embedding.weight", (1, tdim), std=0.02)
    b.normal("textual.pos_embedding.weight", (514, tdim), std=0.02)
    for i in range(tlayers):
        p = f"textual.blocks.{i}"
        for proj in ("q", "k", "v", "o"):
            b.linear(f"{p}.attn.{proj}", tdim, tdim)
        b.norm(f"{p}.norm1", tdim)
        b.linear(f"{p}.ffn.0", 4 * tdim, tdim)
        b.linear(f"{p}.ffn.2", tdim, 4 * tdim)
        b.norm(f"{p}.norm2", tdim)
    b.norm("textual.norm", tdim)
    b.linear("textual.head.0", 1024, tdim, bias=False)  # mid_dim = (1024 + 1024) // 2
    b.linear("textual.head.2", 1024, 1024, bias=False)
    b.normal("log_scale", (), std=1.0)
    return b.specs


def vae_specs() -> list[TensorSpec]:
    """wan/modules/vae2_1.py ``WanVAE_(dim=96, z_dim=16)``, fp32.

    _video_vae loads with ``assign=True``, so the file dtype becomes the model
    dtype: it must be fp32 like the real file.
    """
    b = SpecBuilder("fp32")
    k3 = (3, 3, 3)

    def rms(name: str, dim: int, images: bool = False) -> None:
        b.ones(f"{name}.gamma", (dim, 1, 1) if images else (dim, 1, 1, 1))

    def res_block(p: str, cin: int, cout: int) -> None:
        rms(f"{p}.residual.0", cin)
        b.conv(f"{p}.residual.2", cout, cin, k3)
        rms(f"{p}.residual.3", cout)
        b.conv(f"{p}.residual.6", cout, cout, k3)
        if cin != cout:
            b.conv(f"{p}.shortcut", cout, cin, (1, 1, 1))

    def attn_block(p: str, dim: int) -> None:
        rms(f"{p}.norm", dim, images=True)
        b.conv(f"{p}.to_qkv", 3 * dim, dim, (1, 1))
        b.conv(f"{p}.proj", dim, dim, (1, 1))

    def middle(p: str, dim: int) -> None:
        res_block(f"{p}.0", dim, dim)
        attn_block(f"{p}.1", dim)
        res_block(f"{p}.2", dim, dim)

    # Encoder3d(96, z_dim*2=32, [1, 2, 4, 4], 2 res blocks, temporal [F, T, T]).
    b.conv("encoder.conv1", 96, 3, k3)
    enc = [(96, 96), (96, 96), "down2d", (96, 192), (192, 192), "down3d",
           (192, 384), (384, 384), "down3d", (384, 384), (384, 384)]
    dim = 96
    for k, item in enumerate(enc):
        p = f"encoder.downsamples.{k}"
        if isinstance(item, tuple):
            res_block(p, *item)
            dim = item[1]
        else:
            b.conv(f"{p}.resample.1", dim, dim, (3, 3))
            if item == "down3d":
                b.conv(f"{p}.time_conv", dim, dim, (3, 1, 1))
    middle("encoder.middle", 384)
    rms("encoder.head.0", 384)
    b.conv("encoder.head.2", 32, 384, k3)
    b.conv("conv1", 32, 32, (1, 1, 1))
    b.conv("conv2", 16, 16, (1, 1, 1))
    # Decoder3d(96, 16, [1, 2, 4, 4], 3 res blocks per level, temporal [T, T, F]);
    # each upsample halves the channels, hence the cin // 2 after it.
    b.conv("decoder.conv1", 384, 16, k3)
    middle("decoder.middle", 384)
    dec = [(384, 384), (384, 384), (384, 384), "up3d", (192, 384), (384, 384), (384, 384), "up3d",
           (192, 192), (192, 192), (192, 192), "up2d", (96, 96), (96, 96), (96, 96)]
    for k, item in enumerate(dec):
        p = f"decoder.upsamples.{k}"
        if isinstance(item, tuple):
            res_block(p, *item)
            dim = item[1]
        else:
            b.conv(f"{p}.resample.1", dim // 2, dim, (3, 3))
            if item == "up3d":
                b.conv(f"{p}.time_conv", dim * 2, dim, (3, 1, 1))
    rms("decoder.head.0", 96)
    b.conv("decoder.head.2", 3, 96, k3)
    return b.specs


# ---------------------------------------------------------------------------
# Tensor materialisation and file writers
# ---------------------------------------------------------------------------

_TORCH_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
_SAFETENSORS_DTYPES = {"bf16": "BF16", "fp16": "F16", "fp32": "F32"}


def make_tensor(spec: TensorSpec) -> torch.Tensor:
    """Fill one tensor per its spec; random draws use torch's global generator."""
    import torch

    dtype = getattr(torch, _TORCH_DTYPES[spec.dtype])
    if spec.init == "normal":
        # normal_ directly in the target dtype: no fp32 temporary, multi-threaded.
        return torch.empty(spec.shape, dtype=dtype).normal_(0.0, spec.std)
    if spec.init == "zeros":
        return torch.zeros(spec.shape, dtype=dtype)
    if spec.init == "ones":
        return torch.ones(spec.shape, dtype=dtype)
    if spec.init == "blur":
        k = torch.tensor([1.0, 3.0, 3.0, 1.0])
        kernel = k[None, :] * k[:, None]
        return (kernel / kernel.sum()).to(dtype)
    raise ValueError(f"unknown init {spec.init!r}")


def save_torch_state_dict(specs: Iterable[TensorSpec], path: Path, wrap_key: str | None = None) -> None:
    """torch.save a plain state dict (optionally wrapped as ``{wrap_key: sd}``).

    torch.save needs the whole dict in memory; the biggest one (umT5, 11.4 GB)
    fits the GPU machine's RAM.
    """
    import torch

    state = {s.name: make_tensor(s) for s in specs}
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


def write_safetensors(specs: Sequence[TensorSpec], path: Path) -> None:
    """Write one safetensors file, generating and writing one tensor at a time.

    The safetensors library only saves a complete in-memory dict; writing the
    format here (8-byte header length, JSON header, raw little-endian data)
    keeps memory at one tensor, which matters for the 34.5 GB full DiT.
    """
    import torch

    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for s in specs:
        header[s.name] = {"dtype": _SAFETENSORS_DTYPES[s.dtype], "shape": list(s.shape),
                          "data_offsets": [offset, offset + s.nbytes]}
        offset += s.nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # the format pads the header to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for s in specs:
            tensor = make_tensor(s).reshape(-1)
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


def write_dit(cfg: DitConfig, out: Path) -> None:
    """config.json, sharded safetensors and the index diffusers resolves them by."""
    (out / "config.json").write_text(json.dumps(dit_config_json(cfg), indent=2) + "\n")
    specs = dit_specs(cfg)
    shards = split_shards(specs, cfg.num_shards)
    weight_map: dict[str, str] = {}
    for k, shard in enumerate(shards, start=1):
        name = f"diffusion_pytorch_model-{k:05d}-of-{len(shards):05d}.safetensors"
        write_safetensors(shard, out / name)
        weight_map.update({s.name: name for s in shard})
    index = {"metadata": {"total_size": sum(s.nbytes for s in specs)}, "weight_map": weight_map}
    (out / DIT_INDEX).write_text(json.dumps(index, indent=2) + "\n")


# ---------------------------------------------------------------------------
# Tokenizers
# ---------------------------------------------------------------------------


def _unigram_vocab(specials: Sequence[str]) -> list[tuple[str, float]]:
    """Special tokens, then single characters with and without the "▁" word mark.

    ASCII, Latin-1 letters and the CJK block (20,992 characters) cover the
    prompts the pipeline sends (upstream's defaults are Chinese); anything else
    becomes <unk>. All ids stay below the real vocab sizes, so the embedding
    tables of the full-size encoders accept them.
    """
    chars = [chr(c) for c in range(0x21, 0x7F)]
    chars += [chr(c) for c in range(0xC0, 0x100)]
    chars += [chr(c) for c in range(0x4E00, 0xA000)]
    vocab = [(tok, 0.0) for tok in specials]
    vocab.append(("\u2581", -2.0))
    vocab += [("\u2581" + c, -8.0) for c in chars[:94]]  # word-initial ASCII
    vocab += [(c, -10.0) for c in chars]
    return vocab


def write_tokenizer(out: Path, kind: str) -> None:
    """A tokenizers-library Unigram model saved in Hugging Face format.

    ``AutoTokenizer.from_pretrained(out)`` reads tokenizer_config.json's
    ``tokenizer_class`` and builds the fast tokenizer from tokenizer.json
    alone: no sentencepiece model, no network, no config.json.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    if kind == "umt5":
        # umT5 ids: <pad>=0, </s>=1, <unk>=2; encoder input ends with </s>.
        specials = ["<pad>", "</s>", "<unk>"]
        post = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                             special_tokens=[("</s>", 1)])
        config = {"tokenizer_class": "T5Tokenizer", "pad_token": "<pad>", "eos_token": "</s>",
                  "unk_token": "<unk>", "extra_ids": 0, "additional_special_tokens": []}
    elif kind == "xlmr":
        # XLM-R ids: <s>=0, <pad>=1, </s>=2, <unk>=3; CLIP's pad_id=1 relies on it.
        specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        post = processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
                                             special_tokens=[("<s>", 0), ("</s>", 2)])
        config = {"tokenizer_class": "XLMRobertaTokenizer", "bos_token": "<s>", "eos_token": "</s>",
                  "sep_token": "</s>", "cls_token": "<s>", "pad_token": "<pad>", "unk_token": "<unk>",
                  "mask_token": "<mask>"}
    else:
        raise ValueError(f"unknown tokenizer kind {kind!r}")
    vocab = _unigram_vocab(specials)
    tok = Tokenizer(models.Unigram(vocab, unk_id=specials.index("<unk>")))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.post_processor = post
    tok.add_special_tokens(specials)
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    config["model_max_length"] = 512
    config["clean_up_tokenization_spaces"] = False
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    special_map = {k: v for k, v in config.items() if k.endswith("_token")}
    (out / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2) + "\n")


# ---------------------------------------------------------------------------
# ONNX models (hand-encoded protobuf)
# ---------------------------------------------------------------------------
# Only the handful of ONNX protobuf fields these two graphs use. Field numbers
# are from onnx/onnx.proto (IR version 8, default-domain opset 17).


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _pb_int(field_no: int, value: int) -> bytes:
    return _varint(field_no << 3) + _varint(value)


def _pb_bytes(field_no: int, payload: bytes | str) -> bytes:
    if isinstance(payload, str):
        payload = payload.encode()
    return _varint(field_no << 3 | 2) + _varint(len(payload)) + payload


_ONNX_FLOAT = 1  # TensorProto.DataType.FLOAT
_ONNX_ATTR_INT = 2  # AttributeProto.AttributeType.INT


def _onnx_tensor(name: str, array: np.ndarray) -> bytes:
    """TensorProto: dims (1), data_type (2), name (8), raw_data (9)."""
    dims = b"".join(_pb_int(1, d) for d in array.shape)
    raw = array.astype("<f4").tobytes()
    return dims + _pb_int(2, _ONNX_FLOAT) + _pb_bytes(8, name) + _pb_bytes(9, raw)


def _onnx_value_info(name: str, shape: Sequence[int]) -> bytes:
    """ValueInfoProto{name, TypeProto{tensor_type{elem_type, shape{dim{dim_value}}}}}."""
    dims = b"".join(_pb_bytes(1, _pb_int(1, d)) for d in shape)
    tensor_type = _pb_int(1, _ONNX_FLOAT) + _pb_bytes(2, dims)
    return _pb_bytes(1, name) + _pb_bytes(2, _pb_bytes(1, tensor_type))


def _onnx_node(op: str, inputs: Sequence[str], outputs: Sequence[str], **int_attrs: int) -> bytes:
    """NodeProto: input (1), output (2), name (3), op_type (4), attribute (5)."""
    body = b"".join(_pb_bytes(1, i) for i in inputs) + b"".join(_pb_bytes(2, o) for o in outputs)
    body += _pb_bytes(3, f"{op}_{outputs[0]}") + _pb_bytes(4, op)
    for key, value in int_attrs.items():
        body += _pb_bytes(5, _pb_bytes(1, key) + _pb_int(3, value) + _pb_int(20, _ONNX_ATTR_INT))
    return body


def constant_output_onnx(input_name: str, input_shape: Sequence[int], output_name: str,
                         output: np.ndarray) -> bytes:
    """Serialized ModelProto: ``output = template + 0 * mean(input)``.

    The zero-weighted input term keeps the graph a function of its input
    (onnxruntime checks the feed), while the result is the fixed template.
    """
    import numpy as np

    nodes = [
        _onnx_node("ReduceMean", [input_name], ["mean"], keepdims=0),
        _onnx_node("Mul", ["mean", "zero"], ["scaled"]),
        _onnx_node("Add", ["scaled", "template"], [output_name]),
    ]
    graph = b"".join(_pb_bytes(1, n) for n in nodes) + _pb_bytes(2, "synthetic")
    graph += _pb_bytes(5, _onnx_tensor("zero", np.zeros((), np.float32)))
    graph += _pb_bytes(5, _onnx_tensor("template", output))
    graph += _pb_bytes(11, _onnx_value_info(input_name, input_shape))
    graph += _pb_bytes(12, _onnx_value_info(output_name, output.shape))
    opset = _pb_bytes(1, "") + _pb_int(2, 17)
    return _pb_int(1, 8) + _pb_bytes(2, "make_synthetic_checkpoint") + _pb_bytes(7, graph) + _pb_bytes(8, opset)


# The detector's person box, in fractions of the frame (x1, y1, x2, y2).
PERSON_BOX = (0.3, 0.1, 0.7, 0.95)
DET_INPUT = 640  # pose2d.Yolo resizes every frame to 640 x 640
POSE_INPUT = (256, 192)  # ViTPose crop (height, width)
HEATMAP = (64, 48)  # ViTPose output (height, width): input / 4
HEATMAP_SIGMA = 2.0  # heatmap pixels, as ViTPose was trained with
HEATMAP_PEAK = 0.9  # becomes the keypoint score; drawing needs > 0.5


def yolo_output() -> np.ndarray:
    """[1, 300, 6] rows of (x1, y1, x2, y2, score, class) in 640 x 640 input pixels.

    YOLOv10 end-to-end export layout, read by pose2d.Yolo.postprocess (6
    columns: boxes, score, class id; class 0 = person). One confident person,
    299 empty rows that the 0.05 score threshold drops.
    """
    import numpy as np

    out = np.zeros((1, 300, 6), np.float32)
    out[0, 0, :4] = [c * DET_INPUT for c in PERSON_BOX]
    out[0, 0, 4] = 0.9
    return out


def wholebody_keypoints() -> np.ndarray:
    """133 COCO-WholeBody keypoints (u, v) of a front-facing standing person.

    Coordinates are fractions of the ViTPose crop, which is the detector box
    enlarged 1.25x to a 3:4 aspect. For frames from 9:16 to 16:9 the box then
    covers at least u in [0.36, 0.64] and v in [0.14, 0.86] of the crop; every
    point here lies in u [0.39, 0.61], v [0.22, 0.83], so inside the box. The
    person's left is image right.
    """
    import numpy as np

    cx, head_y, hw, hh = 0.5, 0.235, 0.02, 0.026  # face centre and half size
    body = {
        0: (cx, head_y + 0.1 * hh),  # nose
        1: (cx + 0.45 * hw, head_y - 0.2 * hh), 2: (cx - 0.45 * hw, head_y - 0.2 * hh),  # eyes
        3: (cx + hw, head_y), 4: (cx - hw, head_y),  # ears
        5: (cx + 0.05, 0.30), 6: (cx - 0.05, 0.30),  # shoulders
        7: (cx + 0.07, 0.41), 8: (cx - 0.07, 0.41),  # elbows
        9: (cx + 0.08, 0.50), 10: (cx - 0.08, 0.50),  # wrists
        11: (cx + 0.035, 0.52), 12: (cx - 0.035, 0.52),  # hips
        13: (cx + 0.04, 0.66), 14: (cx - 0.04, 0.66),  # knees
        15: (cx + 0.04, 0.79), 16: (cx - 0.04, 0.79),  # ankles
        # feet: big toe, small toe, heel; left then right
        17: (cx + 0.045, 0.825), 18: (cx + 0.06, 0.82), 19: (cx + 0.037, 0.80),
        20: (cx - 0.045, 0.825), 21: (cx - 0.06, 0.82), 22: (cx - 0.037, 0.80),
    }
    kps = np.zeros((133, 2), np.float64)
    for k, uv in body.items():
        kps[k] = uv
    kps[23:91] = _face68(cx, head_y, hw, hh)
    kps[91:112] = _hand21(body[9], direction=+1)
    kps[112:133] = _hand21(body[10], direction=-1)
    return kps


def _face68(cx: float, cy: float, hw: float, hh: float) -> np.ndarray:
    """iBUG 68-point face: jaw 17, brows 5+5, nose 4+5, eyes 6+6, lips 12+8."""
    import numpy as np

    pts: list[tuple[float, float]] = []
    for t in np.linspace(np.pi, 0.0, 17):  # jaw, ear to ear under the chin
        pts.append((cx - hw * np.cos(t), cy + hh * np.sin(t)))
    for side in (-1, 1):
        pts += [(cx + side * hw * s, cy - 0.45 * hh) for s in np.linspace(0.8, 0.2, 5)]
    pts += [(cx, cy + hh * s) for s in np.linspace(-0.35, 0.2, 4)]  # nose bridge
    pts += [(cx + hw * s, cy + 0.3 * hh) for s in np.linspace(-0.3, 0.3, 5)]  # nostrils
    for side in (-1, 1):
        ex, ey = cx + side * 0.45 * hw, cy - 0.2 * hh
        pts += [(ex + 0.25 * hw * np.cos(a), ey + 0.08 * hh * np.sin(a))
                for a in np.linspace(0.0, 2 * np.pi, 6, endpoint=False)]
    for radius, count in ((1.0, 12), (0.6, 8)):
        pts += [(cx + radius * 0.4 * hw * np.cos(a), cy + 0.6 * hh + radius * 0.12 * hh * np.sin(a))
                for a in np.linspace(0.0, 2 * np.pi, count, endpoint=False)]
    return np.asarray(pts)


def _hand21(wrist: tuple[float, float], direction: int) -> np.ndarray:
    """Wrist, then 4 joints for each of 5 fingers, fanning downwards."""
    import numpy as np

    wx, wy = wrist
    pts = [(wx, wy)]
    for finger in range(5):
        dx = direction * (finger - 1.5) * 0.003
        pts += [(wx + dx * j, wy + 0.007 * j) for j in range(1, 5)]
    return np.asarray(pts)


def vitpose_output() -> np.ndarray:
    """[1, 133, 64, 48] Gaussian heatmaps peaking at ``wholebody_keypoints``.

    pose2d_utils.keypoints_from_heatmaps (unbiased=True) takes the argmax,
    refines it from the log of a blurred heatmap, and maps it back through the
    crop; the peak value becomes the score. Every channel must have a positive
    peak away from the border, or decoding yields -1 / NaN.
    """
    import numpy as np

    h, w = HEATMAP
    kps = wholebody_keypoints()
    ys, xs = np.mgrid[0:h, 0:w]
    dx = xs[None] - (kps[:, 0] * w)[:, None, None]
    dy = ys[None] - (kps[:, 1] * h)[:, None, None]
    heat = HEATMAP_PEAK * np.exp(-(dx ** 2 + dy ** 2) / (2 * HEATMAP_SIGMA ** 2))
    return heat[None].astype(np.float32)


def write_onnx_models(out: Path, pose2d_layout: str) -> None:
    """YOLO detector and ViTPose whole-body model under process_checkpoint/.

    Input/output names are those of the public exports (ultralytics YOLOv10:
    images -> output0; mmdeploy ViTPose: input -> output); upstream reads them
    from the session anyway.
    """
    det = out / DET_FILE
    det.parent.mkdir(parents=True, exist_ok=True)
    det.write_bytes(constant_output_onnx("images", (1, 3, DET_INPUT, DET_INPUT), "output0", yolo_output()))
    pose = out / POSE_FILE
    if pose2d_layout == "folder":
        # The Hugging Face repo ships a folder; SimpleOnnxInference opens end2end.onnx in it.
        pose = pose / "end2end.onnx"
    pose.parent.mkdir(parents=True, exist_ok=True)
    pose.write_bytes(constant_output_onnx("input", (1, 3, *POSE_INPUT), "output", vitpose_output()))


# ---------------------------------------------------------------------------
# SAM2
# ---------------------------------------------------------------------------


SAM2_OBJ_SCORE_HEAD = "sam_mask_decoder.pred_obj_score_head.layers.2"


def write_sam2(out: Path) -> None:
    """``{"model": state_dict}`` of the sam2 package's ``sam2_hiera_l.yaml`` model.

    Built by the sam2 package itself (random init from the config) so the keys
    match what sam2.build_sam._load_checkpoint loads strictly; a CUDA-less sam2
    build (SAM2_BUILD_CUDA=0) is enough. One override: the object-score head
    always says "object present". A random head says "absent" on some frames,
    SAM2 then blanks the whole mask, and upstream's get_aug_mask crashes on an
    empty mask (Wan2.2 issue #300). The masks themselves stay random (near-zero
    logits; measured 14-27% of the frame on CPU).
    """
    import torch
    from sam2.build_sam import build_sam2

    model = build_sam2("sam2_hiera_l.yaml", ckpt_path=None, device="cpu", mode="eval")
    state = model.state_dict()
    state[f"{SAM2_OBJ_SCORE_HEAD}.weight"].zero_()
    state[f"{SAM2_OBJ_SCORE_HEAD}.bias"].fill_(10.0)
    path = out / SAM2_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state}, path)


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------


def write_light(out: Path, profile: str, pose2d_layout: str) -> None:
    """The profile-dependent and small parts: DiT, LoRA, tokenizers, ONNX."""
    cfg = PROFILES[profile]
    write_dit(cfg, out)
    save_torch_state_dict(lora_specs(cfg), out / LORA_FILE, wrap_key="state_dict")
    write_tokenizer(out / T5_TOKENIZER_DIR, "umt5")
    write_tokenizer(out / CLIP_TOKENIZER_DIR, "xlmr")
    write_onnx_models(out, pose2d_layout)


def write_heavy(out: Path) -> None:
    """The fixed-shape encoders (about 15 GB): umT5, CLIP, VAE, SAM2."""
    save_torch_state_dict(t5_specs(), out / T5_FILE)
    save_torch_state_dict(clip_specs(), out / CLIP_FILE)
    save_torch_state_dict(vae_specs(), out / VAE_FILE)
    write_sam2(out)


def make_checkpoint(out: Path, profile: str, pose2d_layout: str = "file", seed: int = 0,
                    skip_heavy: bool = False) -> None:
    """Write the whole synthetic checkpoint folder (or only its light parts)."""
    import torch

    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    write_light(out, profile, pose2d_layout)
    if not skip_heavy:
        write_heavy(out)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder to create")
    parser.add_argument("--profile", choices=sorted(PROFILES), required=True,
                        help="tiny: small DiT for fast end-to-end runs; full: the 14B DiT dims")
    parser.add_argument("--pose2d_layout", choices=["file", "folder"], default="file",
                        help="vitpose_h_wholebody.onnx as a file, or as a folder holding end2end.onnx "
                             "(the Hugging Face layout)")
    parser.add_argument("--seed", type=int, default=0, help="torch RNG seed for the random weights")
    parser.add_argument("--skip_heavy", action="store_true",
                        help="leave out umT5, CLIP, VAE and SAM2 (about 15 GB; for tests)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    make_checkpoint(args.out, args.profile, args.pose2d_layout, args.seed, args.skip_heavy)
    return 0


if __name__ == "__main__":
    sys.exit(main())
