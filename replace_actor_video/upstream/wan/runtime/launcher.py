"""Run the official Wan2.2 generate.py as __main__, with patches applied in memory (the clone is never
edited). Started by the generation stage as `python launcher.py [launcher options] -- <the official
generate.py arguments>`, or under torchrun. RUNS INSIDE WAN2.2'S INTERPRETER: standard library and torch
only (and numpy, which upstream needs too, for the colour match), and the files it loads by path from beside it
(rope.py, lora.py, patch_sites.py, clip_color.py, color_match.py, memory.py, ../pin.py), never an import of our
package.

Loud patches: before `import wan` every site the patches below rely on (patch_sites.py: the functions and
attributes replaced, the call sites that must go through them, the methods wrapped) is checked in the clone's
source, and after patching each replacement is checked to be in place; a missing site stops the run with the
site, the clone's commit and the commit this launcher was written for (pin.py), before any model loads.

Patch 1, the prompt (generate.py L471-481 at the pinned commit): the animate branch calls
`WanAnimate.generate(...)` without `input_prompt`/`n_prompt`, so `--prompt` only reaches the log and the
model always gets the config prompt. We wrap WanAnimate.generate to pass them.

Patch 2, attention (wan/modules/attention.py `flash_attention`, animate/model_animate.py, animate/clip.py
`version=2`, animate/face_blocks.py `flash_attn_func`, distributed/ulysses.py): Animate calls flash_attn
directly and asserts FA2 is installed. `--attention` picks what those call sites run:
- cudnn: torch SDPA with the cuDNN kernel first (then flash, efficient, math for shapes cuDNN rejects).
  Same math as flash_attn, no package needed; on an H200 a 720p DiT forward took 12.8 s this way (with
  patches 4 and 5) against 18.7 s upstream on the FA2 kernel, 11.5 s with fa3 (docs/PERFORMANCE.md).
- sdpa: torch SDPA with PyTorch's own kernel choice (portable; on Hopper that is usually the FA2 kernel).
- flash: upstream unchanged (needs flash_attn; upstream itself uses FA3 in the DiT when it is installed).
- fa3: the DiT's attention through FA3 (`flash_attn_interface.flash_attn_func`, either return type, see
  Wan2.2 PR #312); CLIP and the face blocks, which upstream pins to FA2, through cuDNN SDPA.
- fa3-fp8: as fa3 with q, k, v quantized to float8 e4m3 per head (k centred per head first, which leaves
  softmax unchanged and shrinks its range): FA3's FP8 kernel, LOSSY; ~1.3x the bf16 FA3 kernel on an H200.
- sage: the DiT's attention through SageAttention (8-bit QK: LOSSY); the rest through cuDNN SDPA.
- auto: the fastest lossless route this Python can import: fa3 if flash_attn_interface imports, else cudnn.
- fast: the fastest route, lossy allowed: fa3-fp8 when FA3 imports, else cudnn.
Every route but flash also replaces upstream's complex-float64 rope with rope.py's float32 one
(Patch 5) and reuses the face motion features between steps (Patch 4).

Patch 3, imports (generate.py L20 → wan/utils/prompt_extend.py): generate.py imports the `dashscope` API
client for prompt extension, which we never enable. When it is not installed, an empty stand-in module is
registered so the import succeeds; enabling prompt extension would then fail loudly.

Patch 4, face motion features (animate/model_animate.py `after_patch_embedding`): every DiT forward runs
the motion encoder over all 77 face crops (512x512) again, though they are the same at every sampling step
of a clip: ~1.2 s of a ~11 s forward at 720p on an H200. The motion features are kept for the last two face
videos seen (the conditional one and CFG's constant unconditional one) and reused when the next call's face
video is equal to one of them (torch.equal), so the result is the same tensor upstream would compute.

Patch 5, rope (wan/modules/model.py and distributed/sequence_parallel.py `rope_apply`): see rope.py.

Speed options, applied to the DiT when `WanAnimate` builds it:
- `--lora PATH:WEIGHT` (repeatable): merged into the weights before upstream configures the model (before
  the relighting adapter and FSDP sharding), so it costs nothing per step;
- `--fp8`: float8 dynamic-activation/weight linears in the DiT blocks via torchao (lossy; single GPU);
- `--compile`: torch.compile of each DiT block (single GPU; the first forward pays the compilation);
- `--vae_bf16`: the VAE's convolutions in bf16 autocast instead of float32 (LOSSY, ~1.4x faster VAE).

Patch 6, colour match across clips (`--color_match METHOD --color_match_strength S --color_match_anchor A`):
each clip's decoded frames are colour-matched inside WanAnimate.generate's loop, before its last frames guide the
next clip (clip_color.py, color_match.py).

Patch 7, memory profiles (`--memory_profile balanced|low`, memory.py): the DiT loads into CPU memory and its
blocks are streamed to the GPU (block swap, some kept with balanced); CLIP and the VAE visit the GPU only while they
run. RAV_GPU_MEMORY_CAP_GIB caps this process's GPU memory (a test knob for smaller cards' budgets).

Loading (fastload.py, lossless): T5 built on the meta device and loaded from a memory-mapped file,
memory-mapped torch.load, diffusers' parallel shard loader, page-cache prefetch of the checkpoint files.
Timing (timing.py): one `[rav-timing]` line per model load, T5 call, VAE call, DiT forward and save.
The warm worker (worker.py) runs the same setup once (prepare()) and then many jobs.
"""

import argparse
import contextlib
import functools
import importlib
import importlib.util
import os
import runpy
import sys
import time

TAG = "[rav-launcher]"
ROUTES = ("auto", "fast", "cudnn", "flash", "fa3", "fa3-fp8", "sage", "sdpa")
LOSSY_ROUTES = ("sage", "fa3-fp8")
ROUTE_PACKAGES = {  # route → (module it imports, how to get it)
    "flash": ("flash_attn", "pip install flash-attn --no-build-isolation"),
    "fa3": ("flash_attn_interface", "build FlashAttention-3: bash scripts/build_fa3.sh"),
    "fa3-fp8": ("flash_attn_interface", "build FlashAttention-3: bash scripts/build_fa3.sh"),
    "sage": ("sageattention", "pip install sageattention"),
}
SDPA_SITES = (
    "wan.modules.attention",
    "wan.modules.model",
    "wan.modules.animate.model_animate",
    "wan.modules.animate.clip",
    "wan.distributed.ulysses",
)
DIT_SITES = (
    "wan.modules.attention",
    "wan.modules.model",
    "wan.modules.animate.model_animate",
    "wan.distributed.ulysses",
)  # not clip.py: upstream pins CLIP to FA2 (version=2)
FACE_BLOCKS = "wan.modules.animate.face_blocks"
ROPE_SITES = ("wan.modules.model", "wan.modules.animate.model_animate")  # model_animate imports the name
SP_ROPE_SITE = "wan.distributed.sequence_parallel"
FP8_MAX = 448.0  # largest float8 e4m3 value


class LauncherError(Exception):
    """A launcher option that cannot work in this Python; the message says why and what to do."""


def _split_argv(argv):
    if "--" not in argv:
        sys.exit(
            f"{TAG} usage: launcher.py --wan22_dir DIR [--attention {'|'.join(ROUTES)}] [--lora PATH:W] "
            "[--compile] [--fp8] -- <generate.py args>"
        )
    cut = argv.index("--")
    return argv[:cut], argv[cut + 1 :]


def _log(message):
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"{TAG} {message}", flush=True)


def module_available(name):
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def choose_attention(requested, available=module_available):
    """The route to install for `--attention requested`, given which modules this Python can import."""
    if requested not in ROUTES:
        raise LauncherError(f"--attention {requested}: choose one of {', '.join(ROUTES)}")
    has_fa3 = available(ROUTE_PACKAGES["fa3"][0])
    if requested == "auto":
        return "fa3" if has_fa3 else "cudnn"
    if requested == "fast":
        return "fa3-fp8" if has_fa3 else "cudnn"
    if requested in ROUTE_PACKAGES:
        module, how = ROUTE_PACKAGES[requested]
        if not available(module):
            raise LauncherError(
                f"--attention {requested} needs the {module} module, which this Python cannot "
                f"import ({how}); or use --attention auto (cuDNN SDPA, nothing to install)"
            )
    return requested


# ---- attention functions ----------------------------------------------------------------------------------------


def _half_qkv(q, k, v, q_scale, dtype):
    """Upstream flash_attention's dtype handling: fp16/bf16 kept, anything else cast to `dtype`."""
    import torch

    half = (torch.float16, torch.bfloat16)
    dtype = dtype or torch.bfloat16
    q, k, v = (t if t.dtype in half else t.to(dtype) for t in (q, k, v))
    q, k = q.to(v.dtype), k.to(v.dtype)
    if q_scale is not None:
        q = q * q_scale
    return q, k, v


def _key_mask(k, k_lens):
    """A [B, 1, 1, Lk] keep-mask when some keys are padding, else None (the varlen kernels skip padding)."""
    import torch

    if k_lens is None:
        return None
    if k_lens.device.type == "cpu" and int(k_lens.min()) >= k.size(1):  # the DiT's case: no GPU round trip
        return None
    keep = torch.arange(k.size(1), device=k.device)[None, :] < k_lens.to(k.device)[:, None]
    return None if bool(keep.all()) else keep[:, None, None, :]


def _sdpa_flash_attention(
    q,
    k,
    v,
    q_lens=None,
    k_lens=None,
    dropout_p=0.0,
    softmax_scale=None,
    q_scale=None,
    causal=False,
    window_size=(-1, -1),
    deterministic=False,
    dtype=None,
    version=None,
):
    """Drop-in for wan.modules.attention.flash_attention on [B, L, N, D] tensors. Padded keys beyond
    `k_lens` are masked exactly as the varlen flash kernel skips them."""
    import torch.nn.functional as F

    out_dtype = q.dtype
    q, k, v = _half_qkv(q, k, v, q_scale, dtype)
    out = F.scaled_dot_product_attention(
        q.transpose(1, 2),
        k.transpose(1, 2),
        v.transpose(1, 2),
        attn_mask=_key_mask(k, k_lens),
        dropout_p=dropout_p,
        is_causal=causal,
        scale=softmax_scale,
    )
    return out.transpose(1, 2).contiguous().type(out_dtype)


def _sdpa_flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False, **_unused):
    """Drop-in for flash_attn.flash_attn_func ([B, L, N, D]) as FaceBlock calls it."""
    import torch.nn.functional as F

    out = F.scaled_dot_product_attention(
        q.transpose(1, 2),
        k.transpose(1, 2),
        v.transpose(1, 2),
        dropout_p=dropout_p,
        is_causal=causal,
        scale=softmax_scale,
    )
    return out.transpose(1, 2)


def _fa3_flash_attention(
    q,
    k,
    v,
    q_lens=None,
    k_lens=None,
    dropout_p=0.0,
    softmax_scale=None,
    q_scale=None,
    causal=False,
    window_size=(-1, -1),
    deterministic=False,
    dtype=None,
    version=None,
    fp8=False,
):
    """flash_attention through FA3's dense kernel, or with `fp8` its FP8 one (LOSSY); padded keys (never in
    Animate's DiT) or dropout go to SDPA."""
    if dropout_p or _key_mask(k, k_lens) is not None:
        return _sdpa_flash_attention(
            q,
            k,
            v,
            q_lens,
            k_lens,
            dropout_p,
            softmax_scale,
            q_scale,
            causal,
            window_size,
            deterministic,
            dtype,
            version,
        )
    import flash_attn_interface

    out_dtype = q.dtype
    q, k, v = _half_qkv(q, k, v, q_scale, dtype)
    scales = {}
    if fp8:
        (q, scales["q_descale"]), (k, scales["k_descale"]), (v, scales["v_descale"]) = (
            fp8_per_head(q),
            fp8_per_head(k, centre=True),
            fp8_per_head(v),
        )
    out = flash_attn_interface.flash_attn_func(q, k, v, softmax_scale=softmax_scale, causal=causal, **scales)
    if isinstance(out, tuple):  # FA3 before 2025 returned (out, lse); newer builds return out (Wan2.2 PR #312)
        out = out[0]
    return out.contiguous().type(out_dtype)


def fp8_per_head(x, centre=False):
    """x [B, L, N, D] → (float8 e4m3 tensor, float32 descale [B, N]) with one scale per head, as FA3's FP8
    kernel takes them. `centre` subtracts each head's mean over the tokens first: for keys that changes
    every score of a query by the same amount, which softmax ignores, and it narrows what FP8 must hold."""
    import torch

    if centre:
        x = x - x.mean(dim=1, keepdim=True)
    scale = x.abs().amax(dim=(1, 3)).float().clamp(min=1e-12) / FP8_MAX
    return (x / scale[:, None, :, None].to(x.dtype)).to(torch.float8_e4m3fn), scale


def _sage_flash_attention(
    q,
    k,
    v,
    q_lens=None,
    k_lens=None,
    dropout_p=0.0,
    softmax_scale=None,
    q_scale=None,
    causal=False,
    window_size=(-1, -1),
    deterministic=False,
    dtype=None,
    version=None,
):
    """flash_attention through SageAttention (INT8 QK, lossy) where its kernels apply, else SDPA."""
    if dropout_p or q.size(-1) not in (64, 128) or _key_mask(k, k_lens) is not None:
        return _sdpa_flash_attention(
            q,
            k,
            v,
            q_lens,
            k_lens,
            dropout_p,
            softmax_scale,
            q_scale,
            causal,
            window_size,
            deterministic,
            dtype,
            version,
        )
    from sageattention import sageattn

    out_dtype = q.dtype
    q, k, v = _half_qkv(q, k, v, q_scale, dtype)
    out = sageattn(q, k, v, tensor_layout="NHD", is_causal=causal, sm_scale=softmax_scale)
    return out.contiguous().type(out_dtype)


PATCHED = []  # (owner, attribute, value) of every replacement made, checked by verify_patches()


def _patch(module_names, attribute, value):
    for name in module_names:
        module = importlib.import_module(name)
        if not hasattr(module, attribute):
            raise LauncherError(f"patch site {name}.{attribute} is missing in this Wan2.2")
        _replace(module, attribute, value)


def _replace(owner, attribute, value):
    setattr(owner, attribute, value)
    PATCHED.append((owner, attribute, value))


def _wraps(current, value):
    """Whether `current` is `value` or a functools.wraps wrapper around it (timing.py and fastload.py wrap some
    of our replacements again)."""
    seen = set()
    while current is not None and id(current) not in seen:
        if current is value:
            return True
        seen.add(id(current))
        current = getattr(current, "__wrapped__", None)
    return False


def verify_patches():
    """Every replacement is still what upstream's code will find, directly or inside a wrapper (a module that
    re-binds the name after our patch, or a class that caches it, would silently undo it)."""
    for owner, attribute, value in PATCHED:
        if not _wraps(getattr(owner, attribute, None), value):
            raise LauncherError(f"patch of {getattr(owner, '__name__', owner)}.{attribute} did not take effect")


def clone_commit(wan22_dir):
    """The clone's commit: git, else the .rav-commit file install.sh writes for exported trees, else 'unknown'."""
    import subprocess

    marker = os.path.join(wan22_dir, ".rav-commit")
    if os.path.isfile(marker):
        with open(marker) as fh:
            return fh.read().strip()
    try:
        return subprocess.run(
            ["git", "-C", wan22_dir, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def check_patch_sites(wan22_dir):
    """LauncherError naming the first patch site this clone lacks, its commit and the pinned one."""
    missing = _sibling("patch_sites").missing_sites(wan22_dir)
    if missing:
        pinned = _load("pin", os.path.join(HERE, os.pardir, "pin.py")).COMMIT
        more = f" (and {len(missing) - 1} more site(s))" if len(missing) > 1 else ""
        raise LauncherError(
            f"Wan2.2 at {wan22_dir} (commit {clone_commit(wan22_dir)[:12]}) lacks the patch site "
            f"{missing[0].describe()}{more}; this launcher was written for Wan2.2 {pinned[:12]}: "
            "check that commit out (./install.sh) or update "
            "replace_actor_video/upstream/wan/runtime/patch_sites.py"
        )


def install_attention(route):
    """Point upstream's attention call sites at the functions of `route`, and its rope at rope.py's
    (after `import wan`). `flash` leaves upstream as it is."""
    if route == "flash":
        return
    _patch(SDPA_SITES, "flash_attention", _sdpa_flash_attention)
    _patch((FACE_BLOCKS,), "flash_attn_func", _sdpa_flash_attn_func)
    install_motion_cache()
    rope = _sibling("rope")
    _patch(ROPE_SITES, "rope_apply", rope.rope_apply)
    _patch((SP_ROPE_SITE,), "rope_apply", rope.sequence_parallel_rope_apply)
    if route == "fa3":
        _patch(DIT_SITES, "flash_attention", _fa3_flash_attention)
    elif route == "fa3-fp8":
        _patch(DIT_SITES, "flash_attention", functools.partial(_fa3_flash_attention, fp8=True))
    elif route == "sage":
        _patch(DIT_SITES, "flash_attention", _sage_flash_attention)


MOTION_CACHE_SIZE = 2  # the conditional face video and CFG's unconditional one (face * 0 - 1)


def _cached_motion(compute):
    """after_patch_embedding that reuses the motion features of an equal face video (see Patch 4)."""
    import torch

    def after_patch_embedding(self, x, pose_latents, face_pixel_values):
        # the pose half of upstream's method, as it is written there (pinned commit, L340-343)
        for x_, pose in zip(x, (self.pose_patch_embedding(u.unsqueeze(0)) for u in pose_latents)):
            x_[:, :, 1:] += pose
        cache = self.__dict__.setdefault("_rav_motion_cache", [])
        for face, motion_vec in cache:
            if (
                face.shape == face_pixel_values.shape
                and face.device == face_pixel_values.device
                and face.dtype == face_pixel_values.dtype
                and torch.equal(face, face_pixel_values)
            ):
                return x, motion_vec
        _, motion_vec = compute(self, [], [], face_pixel_values)
        cache.insert(0, (face_pixel_values.clone(), motion_vec))
        del cache[MOTION_CACHE_SIZE:]
        return x, motion_vec

    after_patch_embedding.rav_upstream = compute
    return after_patch_embedding


def install_motion_cache():
    from wan.modules.animate import model_animate

    cls = model_animate.WanAnimateModel
    if not hasattr(cls.after_patch_embedding, "rav_upstream"):
        _replace(cls, "after_patch_embedding", _cached_motion(cls.after_patch_embedding))


def uninstall_motion_cache():
    from wan.modules.animate import model_animate

    cls = model_animate.WanAnimateModel
    cls.after_patch_embedding = getattr(cls.after_patch_embedding, "rav_upstream", cls.after_patch_embedding)


def cudnn_first_context():
    """Prefer cuDNN attention, then flash, efficient, math (whatever the GPU supports for each call)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    order = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    try:
        return sdpa_kernel(order, set_priority=True)
    except TypeError:  # torch < 2.6 has no priority order; it still picks the best supported backend
        return sdpa_kernel(order)


def attention_context(route):
    """The SDPA kernel preference the run goes under: cuDNN first except for plain `sdpa` and upstream."""
    if route in ("sdpa", "flash"):
        return contextlib.nullcontext()
    return cudnn_first_context()


# ---- the model -----------------------------------------------------------------------------------------------

HERE = os.path.dirname(os.path.abspath(__file__))


def _load(stem, path):
    name = f"rav_{stem}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the file executes
        spec.loader.exec_module(module)
    return sys.modules[name]


def _sibling(stem):
    """A module file beside this one (lora.py, rope.py, patch_sites.py), loaded by path: the launcher runs
    outside our package, in the upstream environment."""
    return _load(stem, os.path.join(HERE, f"{stem}.py"))


def parse_loras(args):
    """`PATH:WEIGHT` strings → [(path, weight)], each file checked to exist."""
    lora = _sibling("lora")
    specs = []
    for text in args or ():
        path, weight = lora.parse_lora_arg(text)
        if not os.path.isfile(path):
            raise LauncherError(f"--lora {text}: {path} is not a file")
        specs.append((path, weight))
    return specs


def merge_loras(model, specs):
    lora = _sibling("lora")
    for path, weight in specs:
        started = time.time()
        try:
            report = lora.merge_file(model, path, weight)
        except lora.LoraError as exc:
            sys.exit(f"{TAG} --lora {path}: {exc}")
        _log(f"LoRA {report.summary()} ({time.time() - started:.1f} s)")


def quantize_fp8(model):
    """Float8 dynamic-activation + float8-weight linears in the DiT blocks (torchao; lossy)."""
    from torch import nn
    from torchao.quantization import quantize_

    try:
        from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow

        config = Float8DynamicActivationFloat8WeightConfig(granularity=PerRow())
    except ImportError:  # torchao < 0.10
        from torchao.quantization import float8_dynamic_activation_float8_weight

        config = float8_dynamic_activation_float8_weight()
    quantize_(model.blocks, config, filter_fn=lambda m, fqn: isinstance(m, nn.Linear) and "lora_" not in fqn)


def compile_blocks(model):
    for block in model.blocks:
        block.compile()


def check_model_options(fp8, compile_, world_size, memory_profile="full"):
    if (fp8 or compile_) and world_size > 1:
        raise LauncherError(
            "--fp8 and --compile are single-GPU options (FSDP shards the blocks); drop them for multi-GPU runs"
        )
    if memory_profile != "full" and (fp8 or world_size > 1):
        raise LauncherError(
            f"--memory_profile {memory_profile} streams one GPU's DiT blocks: not with "
            + ("--fp8 (torchao's float8 weights cannot be streamed)" if fp8 else "several GPUs (FSDP)")
        )
    if fp8 and not module_available("torchao"):
        raise LauncherError("--fp8 needs torchao, which this Python cannot import (pip install torchao); or drop --fp8")


def vae_in_bf16(vae):
    """Wan2_1_VAE runs encode/decode under autocast(self.dtype); float32 there disables autocast (upstream
    default), bf16 runs the convolutions in bf16. Weights stay float32."""
    import torch

    vae.dtype = torch.bfloat16


def hook_model_build(loras, fp8, compile_, vae_bf16=False):
    """Apply the model options when upstream builds the models: LoRAs merged as WanAnimate._configure_model
    starts (before the relighting adapter and FSDP); fp8, compile and the VAE dtype once WanAnimate.__init__
    is done."""
    import wan.animate

    cls = wan.animate.WanAnimate
    if loras:
        configure = cls._configure_model

        def _configure_model(self, model, *args, **kwargs):
            merge_loras(model, loras)
            return configure(self, model, *args, **kwargs)

        _replace(cls, "_configure_model", _configure_model)
    if fp8 or compile_ or vae_bf16:
        init = cls.__init__

        def __init__(self, *args, **kwargs):
            init(self, *args, **kwargs)
            if fp8:
                quantize_fp8(self.noise_model)
                _log("fp8: DiT block linears quantized (float8 weights and activations, torchao)")
            if compile_:
                compile_blocks(self.noise_model)
                _log(
                    f"compile: {len(self.noise_model.blocks)} DiT blocks wrapped with torch.compile "
                    "(compiled on the first forward)"
                )
            if vae_bf16:
                vae_in_bf16(self.vae)
                _log("vae: encode/decode in bf16 autocast (LOSSY)")

        _replace(cls, "__init__", __init__)


PROMPTS = {"prompt": None, "negative_prompt": None}  # what the prompt patch passes; the worker sets it per job


def pass_prompt_to_animate(prompt, negative_prompt):
    import wan.animate

    PROMPTS.update(prompt=prompt, negative_prompt=negative_prompt)
    original = wan.animate.WanAnimate.generate
    if hasattr(original, "rav_prompt_patch"):
        return

    @functools.wraps(original)  # verify_patches sees the colour match's wrapper through this one
    def generate(self, *args, **kwargs):
        if PROMPTS["prompt"] and not kwargs.get("input_prompt"):
            kwargs["input_prompt"] = PROMPTS["prompt"]
        if PROMPTS["negative_prompt"] and not kwargs.get("n_prompt"):
            kwargs["n_prompt"] = PROMPTS["negative_prompt"]
        _log(
            f"prompt patch: WanAnimate.generate(input_prompt={kwargs.get('input_prompt', '')!r}, "
            f"n_prompt={'custom' if kwargs.get('n_prompt') else 'config default'})"
        )
        return original(self, *args, **kwargs)

    generate.rav_prompt_patch = True
    _replace(wan.animate.WanAnimate, "generate", generate)


def upstream_prompt(upstream_argv):
    """generate.py's --prompt in its argument list (None when absent)."""
    prompt = argparse.ArgumentParser(add_help=False)
    prompt.add_argument("--prompt", default=None)
    return prompt.parse_known_args(upstream_argv)[0].prompt


def upstream_checkpoint(upstream_argv):
    """(--ckpt_dir, --use_relighting_lora) of generate.py's argument list."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--ckpt_dir", default=None)
    parser.add_argument("--use_relighting_lora", action="store_true")
    known = parser.parse_known_args(upstream_argv)[0]
    return known.ckpt_dir, known.use_relighting_lora


def stand_in_for_dashscope():
    if importlib.util.find_spec("dashscope") is None:
        import types

        sys.modules["dashscope"] = types.ModuleType("dashscope")
        _log("dashscope is not installed: registered an empty stand-in (prompt extension is never used)")


def build_parser():
    parser = argparse.ArgumentParser(prog="launcher.py")
    parser.add_argument("--wan22_dir", required=True)
    parser.add_argument("--attention", choices=ROUTES, default="auto")
    parser.add_argument("--negative_prompt", default=None)
    parser.add_argument("--lora", action="append", default=[], metavar="PATH:WEIGHT")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--fp8", action="store_true")
    parser.add_argument("--vae_bf16", action="store_true")
    parser.add_argument("--color_match", default="off")
    parser.add_argument("--color_match_strength", type=float, default=1.0)
    parser.add_argument("--color_match_anchor", default="join")
    parser.add_argument("--memory_profile", choices=("full", "balanced", "low"), default="full")
    return parser


def install_memory_profile(profile):
    """Patch 7, and the memory cap test knob (before anything is put on the GPU; after hook_model_build, whose
    __init__ it wraps, so the DiT is placed once LoRAs and compile are applied)."""
    memory = _sibling("memory")
    memory.apply_cap(_log)
    if profile == "full":
        return
    import wan.animate

    cls = wan.animate.WanAnimate
    _replace(cls, "__init__", memory.wrap_init(cls.__init__, wan.animate.WanAnimateModel, profile, _log))


COLOR_MATCH = {"method": "off", "strength": 1.0, "anchor": "join"}  # what the colour-match patch applies


def install_color_match(method, strength, anchor):
    """Patch 6 (before the prompt patch, which wraps it: the hook binds upstream's own generate signature)."""
    color_match = _sibling("color_match")
    if method not in color_match.METHODS:
        raise LauncherError(f"--color_match {method}: choose one of {', '.join(color_match.METHODS)}")
    if anchor not in color_match.ANCHORS:
        raise LauncherError(f"--color_match_anchor {anchor}: choose one of {', '.join(color_match.ANCHORS)}")
    if not 0.0 <= strength <= 1.0:
        raise LauncherError(f"--color_match_strength {strength}: must be between 0 and 1")
    COLOR_MATCH.update(method=method, strength=strength, anchor=anchor)
    if method == "off" or strength == 0.0:
        return
    import wan.animate

    cls = wan.animate.WanAnimate
    if not hasattr(cls.generate, "rav_color_match"):
        _replace(cls, "generate", _sibling("clip_color").wrap_generate(cls.generate, color_match, COLOR_MATCH, _log))


def prepare(own, upstream_argv):
    """Everything before upstream's generate.py runs: checks (the patch sites first), `import wan`, the patches,
    the model hooks, fast loading and timing. Returns the attention route. Exits with a one-line message on a bad
    option or a clone the patches do not fit."""
    started = time.perf_counter()
    wan22_dir = os.path.abspath(own.wan22_dir)
    sys.path.insert(0, wan22_dir)
    try:
        check_patch_sites(wan22_dir)
        route = choose_attention(own.attention)
        check_model_options(own.fp8, own.compile, int(os.environ.get("WORLD_SIZE", "1")), own.memory_profile)
        loras = parse_loras(own.lora)
        fastload = _sibling("fastload")
        if fastload.enabled():
            ckpt_dir, relighting = upstream_checkpoint(upstream_argv)
            fastload.parallel_shard_loading()
            if ckpt_dir:
                fastload.prefetch(fastload.checkpoint_files(ckpt_dir, relighting=relighting))
        stand_in_for_dashscope()
        import wan  # noqa: F401  (binds upstream modules so the patches below replace the names they use)

        install_attention(route)
        _log(
            f"attention route: {route} (requested {own.attention})"
            + (": LOSSY (quantized attention)" if route in LOSSY_ROUTES else "")
        )
        install_color_match(own.color_match, own.color_match_strength, own.color_match_anchor)
        pass_prompt_to_animate(upstream_prompt(upstream_argv), own.negative_prompt)
        hook_model_build(loras, own.fp8, own.compile, own.vae_bf16)
        install_memory_profile(own.memory_profile)
        if fastload.enabled():
            fastload.install()
            _log("fast loading: T5 on the meta device + memory-mapped checkpoints, parallel DiT shards, prefetch")
        timing = _sibling("timing")
        timing.install()
        verify_patches()
    except LauncherError as exc:
        sys.exit(f"{TAG} {exc}")
    timing.emit("import", time.perf_counter() - started, "launcher setup and import wan")
    return route


def main():
    own_argv, upstream_argv = _split_argv(sys.argv[1:])
    own = build_parser().parse_args(own_argv)
    route = prepare(own, upstream_argv)
    generate_py = os.path.join(os.path.abspath(own.wan22_dir), "generate.py")
    sys.argv = [generate_py, *upstream_argv]
    with attention_context(route):
        runpy.run_path(generate_py, run_name="__main__")


if __name__ == "__main__":
    main()
