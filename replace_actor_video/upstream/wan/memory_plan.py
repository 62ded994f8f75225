"""Which --memory_profile a GPU needs for Wan2.2-Animate-14B at a resolution: estimates for planning, made from
measured figures (shared measured-anchors.md and docs/PERFORMANCE.md, one H200, 2026-11/12). Checked against the
caps of scripts/bench_memory.py; update the constants from its report (peak GiB per profile and resolution).

What a clip needs on the GPU at its peak, in GiB:
- full: the DiT's weights (32.3) and its activations, or the VAE's decode beside the whole DiT (upstream never
  moves it), or T5 (10.6) beside it while the prompt is encoded (upstream's offload), plus CLIP and VAE weights;
- balanced / low (runtime/memory.py): the DiT's non-block parts (2.1) and two block slots (1.5) with its activations, or
  the VAE's decode alone (the DiT leaves the GPU while it runs); low runs T5 on the CPU, balanced keeps as many of the
  40 blocks (0.75 GiB each) as fit beyond that.
"""

from __future__ import annotations

CAP_ENV = "RAV_GPU_MEMORY_CAP_GIB"  # runtime/memory.py's test knob (it cannot import this file); auto plans for it
DIT_WEIGHTS_GIB = 32.3  # 17.27 B parameters in bf16 (measured)
DIT_REST_GIB = 2.1  # patch/text/time embeddings, face adapter and encoders, head
BLOCK_GIB = 0.752  # one of the 40 blocks
SLOTS_GIB = 2 * BLOCK_GIB
T5_GIB = 10.6  # umT5-XXL encoder in bf16
CLIP_GIB = 1.2  # CLIP (XLM-R + ViT-H) weights in fp16 (estimate)
VAE_WEIGHTS_GIB = 0.5  # the Wan2.1 VAE's 127 M parameters in fp32
ACT_GIB_PER_TOKEN = (43.5 - DIT_WEIGHTS_GIB) / 75_600  # 720p×77: 43.5 GiB peak on the cuDNN route, 75,600 tokens
VAE_GIB_PER_PIXEL = 20.6 / (1280 * 720)  # peak of encode + decode at 1280×720×77 (fp32 VAE, TF32)
MARGIN_GIB = 2.0  # allocator fragmentation, CUDA context
RAM_GIB_STREAMED = 64  # balanced/low: the DiT pinned in RAM (32.3 GiB) + T5 on the CPU (10.6) + CLIP, VAE, the OS
BALANCED_MIN_BLOCKS = 8  # below this many kept blocks balanced is low with T5 on the GPU: pick low


def tokens(width: int, height: int, frame_num: int) -> int:
    return ((frame_num - 1) // 4 + 2) * (height // 16) * (width // 16)


def needs_gib(profile: str, width: int, height: int, frame_num: int = 77) -> float:
    """Estimated peak GPU memory of one clip with `profile` (GiB)."""
    activations = ACT_GIB_PER_TOKEN * tokens(width, height, frame_num)
    vae = VAE_GIB_PER_PIXEL * width * height
    if profile == "full":
        return DIT_WEIGHTS_GIB + CLIP_GIB + VAE_WEIGHTS_GIB + max(activations, vae, T5_GIB) + MARGIN_GIB
    streamed = DIT_REST_GIB + SLOTS_GIB + activations
    alone = vae + VAE_WEIGHTS_GIB  # the VAE runs with the DiT and CLIP off the GPU
    if profile == "balanced":
        return max(streamed + BALANCED_MIN_BLOCKS * BLOCK_GIB, alone, T5_GIB + DIT_REST_GIB) + MARGIN_GIB
    return max(streamed, alone) + MARGIN_GIB


def choose(free_gib: float, width: int, height: int, frame_num: int = 77) -> str:
    """The profile `auto` picks for this much free GPU memory: the fastest whose estimate fits."""
    for profile in ("full", "balanced"):
        if needs_gib(profile, width, height, frame_num) <= free_gib:
            return profile
    return "low"
