"""Every state dict of the checkpoint as a list of tensor specs: name, shape, dtype and how to fill it. The
names and shapes are those of the upstream modules (checked in tests/test_synthetic_checkpoint.py).

Structured attention (issue 16): with every weight random and small, attention logits are ~1e-4 and softmax
is uniform, so a benchmark or test comparing two attention paths cannot see a wrong rope or a wrong key mask.
The DiT's q/k RMSNorm gains are therefore set to QK_GAIN instead of 1: after the RMSNorm each q and k channel
has unit RMS, so a head's logit q·k/sqrt(head_dim) has a standard deviation of about QK_GAIN² (4 here), as in
trained models, and each query's softmax is peaked on a few keys (tests/test_lossless_check.py measures both).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

# q/k RMSNorm gain of the DiT self/cross attention and the face adapter: logit std ≈ QK_GAIN² (see above).
QK_GAIN = 2.0


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


@dataclass(frozen=True)
class TensorSpec:
    """One state-dict entry: its name, shape, dtype and how to fill it."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # "bf16" | "fp16" | "fp32"
    init: str  # "normal" | "zeros" | "ones" | "const" | "blur"
    std: float = 0.0  # "normal": the standard deviation; "const": the value

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
            std = fan_in**-0.5
        self.specs.append(TensorSpec(name, tuple(shape), self.dtype, "normal", std))

    def zeros(self, name: str, shape: Sequence[int]) -> None:
        self.specs.append(TensorSpec(name, tuple(shape), self.dtype, "zeros"))

    def ones(self, name: str, shape: Sequence[int]) -> None:
        self.specs.append(TensorSpec(name, tuple(shape), self.dtype, "ones"))

    def const(self, name: str, shape: Sequence[int], value: float) -> None:
        self.specs.append(TensorSpec(name, tuple(shape), self.dtype, "const", value))

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

    def qk_norm(self, prefix: str, dim: int) -> None:
        """A q or k RMSNorm of an attention whose logits should be spread (see QK_GAIN)."""
        self.const(f"{prefix}.weight", (dim,), QK_GAIN)


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
            b.qk_norm(f"{p}.{attn}.norm_q", d)
            b.qk_norm(f"{p}.{attn}.norm_k", d)
        b.linear(f"{p}.cross_attn.k_img", d, d)
        b.linear(f"{p}.cross_attn.v_img", d, d)
        b.qk_norm(f"{p}.cross_attn.norm_k_img", d)
        b.norm(f"{p}.norm3", d)  # cross_attn_norm=True: the only affine block norm
        b.linear(f"{p}.ffn.0", f, d)
        b.linear(f"{p}.ffn.2", d, f)
        b.normal(f"{p}.modulation", (1, 6, d), std=d**-0.5)
    b.linear("head.head", 4 * 16, d)  # prod(patch_size) * out_dim
    b.normal("head.modulation", (1, 2, d), std=d**-0.5)
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
        b.qk_norm(f"{p}.q_norm", head_dim)
        b.qk_norm(f"{p}.k_norm", head_dim)
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


DISTILL_LORA_RANK = 64  # wan2.1_i2v_lora_rank64_lightx2v_4step.safetensors


def distill_lora_specs(cfg: DitConfig) -> list[TensorSpec]:
    """A step-distill LoRA in LightX2V's layout (``diffusion_model.<module>.lora_down/lora_up/alpha``) on the
    same DiT linears, for ``--preset fast --lora`` runs (replace_actor_video/upstream/wan/runtime/lora.py merges it)."""
    b = SpecBuilder("bf16")
    for module, fan_in, fan_out in lora_targets(cfg):
        key = f"diffusion_model.{module}"
        b.normal(f"{key}.lora_down.weight", (DISTILL_LORA_RANK, fan_in))
        b.normal(f"{key}.lora_up.weight", (fan_out, DISTILL_LORA_RANK), std=0.01)
        b.const(f"{key}.alpha", (), float(DISTILL_LORA_RANK))
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
            b.normal(f"{p}.attn.{proj}.weight", (dim, dim), std=dim**-0.5)
        b.normal(f"{p}.attn.o.weight", (dim, dim), std=dim**-0.5)
        b.norm(f"{p}.norm2", dim, bias=False)
        b.normal(f"{p}.ffn.gate.0.weight", (dim_ffn, dim), std=dim**-0.5)
        b.normal(f"{p}.ffn.fc1.weight", (dim_ffn, dim), std=dim**-0.5)
        b.normal(f"{p}.ffn.fc2.weight", (dim, dim_ffn), std=dim_ffn**-0.5)
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
    b.normal("visual.cls_embedding", (1, 1, vdim), std=vdim**-0.5)
    b.normal("visual.pos_embedding", (1, tokens, vdim), std=vdim**-0.5)
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
    b.normal("visual.head", (vdim, 1024), std=vdim**-0.5)
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
    enc = [
        (96, 96),
        (96, 96),
        "down2d",
        (96, 192),
        (192, 192),
        "down3d",
        (192, 384),
        (384, 384),
        "down3d",
        (384, 384),
        (384, 384),
    ]
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
    dec = [
        (384, 384),
        (384, 384),
        (384, 384),
        "up3d",
        (192, 384),
        (384, 384),
        (384, 384),
        "up3d",
        (192, 192),
        (192, 192),
        (192, 192),
        "up2d",
        (96, 96),
        (96, 96),
        (96, 96),
    ]
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
