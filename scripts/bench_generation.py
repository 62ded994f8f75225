#!/usr/bin/env python3
"""Generation benchmark for the GPU machine: the official Wan2.2-Animate-14B DiT (random weights, real
size) timed per forward on each attention route and speed option, side by side in one run, plus the parts
of a clip around it (VAE, CLIP, T5), and a lossless check of our default route against the official one.

    python3 scripts/bench_generation.py --wan22_dir Wan2.2 --out OUT_DIR [--width 1280 --height 720 --frames 77]

Routes (each: 1 warm-up forward, then 1 timed forward, CUDA events; the same weights and inputs):
  official-fa2    the official path as users get it: upstream's flash_attention on the FA2 kernel. flash_attn
                  is not installed on the lent machine, so it is EMULATED: the call sites go to torch SDPA
                  restricted to SDPBackend.FLASH_ATTENTION, which is PyTorch's FlashAttention-2 kernel.
  cudnn           `--attention cudnn` (auto without FA3): the launcher's SDPA functions under its cuDNN-first
                  kernel order and its float32 rope, imported from replace_actor_video/upstream/wan/runtime/launcher.py.
  fa3             `--attention fa3` (auto with FA3): FlashAttention-3 in the DiT (if flash_attn_interface imports).
  fa3-fp8         `--attention fa3-fp8`: FA3's FP8 kernel, q/k/v quantized per head (LOSSY).
  sdpa, sage      the other launcher routes, when asked for with --routes (sage only if importable).
  <best>+compile  `--compile` on the fastest lossless route (fa3, else cudnn): warm-up = compilation.
  fast            `--preset fast`'s speed options: fa3-fp8 attention + `--fp8` (torchao float8 linears, if
                  importable) + `--compile`; its clip estimate uses the bf16 VAE (`--vae_bf16`). LOSSY.
--profile adds a torch.profiler breakdown of one forward of the compiled lossless route (attention, GEMMs,
the rest): what limits it.
Reported per route: seconds per DiT forward, TFLOP/s (blocks only, the formula in docs/PERFORMANCE.md),
percent of --peak_tflops, peak GPU memory, max |difference| and PSNR of the DiT output against
official-fa2, and the speed ratio to official-fa2. Parts (measured): official Wan2_1_VAE encodes/decode,
CLIP visual, T5 encoder forwards, T5 offload to the CPU. Whole-clip times are DERIVED from those parts.

Needs torch with CUDA, the Wan2.2 `wan/` package (its __init__ files are bypassed: only model modules load)
and diffusers, easydict, transformers<=4.51.3, ftfy importable. Writes OUT_DIR/bench_generation.json and
OUT_DIR/bench_generation.md and prints both (the JSON as one line starting with BENCH_JSON).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import math
import os
import platform
import sys
import time
import types
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
LAUNCHER = REPO / "replace_actor_video" / "upstream" / "wan" / "runtime" / "launcher.py"
GIB = 2**30
OPTIONAL_MODULES = ("flash_attn", "flash_attn_interface", "sageattention", "torchao")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--wan22_dir",
        default=os.environ.get("WAN22_DIR", str(REPO / "Wan2.2")),
        help="a Wan2.2 checkout (only wan/ is used)",
    )
    p.add_argument("--out", required=True, help="folder for bench_generation.json and bench_generation.md")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--frames", type=int, default=77, help="frames per clip (4n+1)")
    p.add_argument(
        "--steps", type=int, default=20, help="sampling steps of the official default, for the clip estimate"
    )
    p.add_argument("--fast_steps", type=int, default=4, help="steps of --preset fast, for the clip estimate")
    p.add_argument(
        "--peak_tflops", type=float, default=790.0, help="reference dense bf16 TFLOP/s for the percent column"
    )
    p.add_argument(
        "--routes",
        default="official-fa2,cudnn,fa3,fa3-fp8,compile,fast",
        help="comma list from official-fa2,cudnn,sdpa,fa3,fa3-fp8,sage,compile,fast (official-fa2 always runs)",
    )
    p.add_argument(
        "--profile", action="store_true", help="profile one forward of the compiled lossless route by kernel kind"
    )
    p.add_argument("--skip_parts", action="store_true", help="time only the DiT (no VAE, CLIP, T5)")
    p.add_argument(
        "--budget_s",
        type=float,
        default=480.0,
        help="skip the remaining routes once one would end past this many seconds",
    )
    return p.parse_args(argv)


# ---- loading the official modules and our launcher ---------------------------------------------------------------


def import_wan(wan22_dir: Path):
    """The model modules of Wan2.2 without its package __init__ files (they import every pipeline)."""
    for name, sub in (
        ("wan", "wan"),
        ("wan.modules", "wan/modules"),
        ("wan.modules.animate", "wan/modules/animate"),
        ("wan.distributed", "wan/distributed"),
    ):
        module = types.ModuleType(name)
        module.__path__ = [str(wan22_dir / sub)]
        sys.modules[name] = module
    import wan.modules.animate.clip as clip
    import wan.modules.animate.model_animate as model_animate
    import wan.modules.t5 as t5
    import wan.modules.vae2_1 as vae2_1

    return types.SimpleNamespace(clip=clip, model_animate=model_animate, t5=t5, vae2_1=vae2_1)


def import_launcher():
    """The Wan launcher as the GPU run uses it: a standalone file, imported by path."""
    spec = importlib.util.spec_from_file_location("rav_wan_launcher", LAUNCHER)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # torch.compile traces into its attention functions and looks the module up
    spec.loader.exec_module(module)
    return module


def randomize_(module: torch.nn.Module) -> torch.nn.Module:
    """Random normal(0, 0.02) values in every floating parameter and buffer (docs/PERFORMANCE.md, "Model")."""
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            if tensor.is_floating_point():
                tensor.normal_(0, 0.02)
    return module.eval().requires_grad_(False)


def on_gpu_from_meta(build, device):
    with torch.device("meta"):
        module = build()
    return randomize_(module.to_empty(device=device))


def free():
    gc.collect()
    torch.cuda.empty_cache()


# ---- timing ----------------------------------------------------------------------------------------------------


def timed(fn):
    """(seconds, result) of fn() between two CUDA events."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    result = fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / 1000, result


def peak_gib() -> float:
    return round(torch.cuda.max_memory_allocated() / GIB, 1)


def db(value) -> str:
    return value if isinstance(value, str) else f"{value:.1f}"


def compare(out: torch.Tensor, ref: torch.Tensor) -> dict:
    """max |out - ref| and PSNR over the reference's value range."""
    diff = out.float() - ref.float()
    rmse = float(diff.pow(2).mean().sqrt())
    value_range = float(ref.max() - ref.min())
    psnr = float("inf") if rmse == 0 else 20 * math.log10(value_range / rmse)
    return {
        "max_abs_diff": float(diff.abs().max()),
        "rmse": rmse,
        "psnr_db": psnr,
        "ref_abs_max": float(ref.abs().max()),
    }


# ---- parts of a clip -------------------------------------------------------------------------------------------


def bench_parts(wan, launcher, args, device, log) -> dict:
    """The official VAE (Wan2_1_VAE), CLIP visual and T5 encoder on random weights at the real size, called the
    way WanAnimate.generate calls them (inside its bf16 autocast for the VAE and CLIP). Each model is freed
    before the next one is built."""
    parts = {}
    for bench in (bench_vae, bench_clip, bench_t5):
        parts.update(bench(wan, launcher, args, device))
        free()
    log(
        f"VAE: encode {parts['vae_encode_pose_s']:.2f} s, decode {parts['vae_decode_s']:.2f} s (bf16: "
        f"{parts['vae_bf16_encode_pose_s']:.2f} s, {parts['vae_bf16_decode_s']:.2f} s), peak "
        f"{parts['vae_peak_gib']} GiB; CLIP visual {parts['clip_visual_s']:.3f} s; T5 two forwards "
        f"{parts['t5_two_forwards_s']:.3f} s, offload to CPU {parts['t5_offload_to_cpu_s']:.2f} s"
    )
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in parts.items()}


def vae_clip_seconds(parts: dict, vae: str) -> float:
    """VAE encodes + decode + CLIP per clip, with the float32 (upstream) or the bf16 VAE."""
    prefix = "vae_bf16_" if vae == "bf16" else "vae_"
    return (
        sum(parts[prefix + p] for p in ("encode_pose_s", "encode_ref_s", "encode_reft_s", "decode_s"))
        + parts["clip_visual_s"]
    )


def generate_autocast():
    return torch.autocast("cuda", dtype=torch.bfloat16)  # the context WanAnimate.generate runs the models in


def bench_vae(wan, launcher, args, device) -> dict:
    """Wan2_1_VAE itself; only its checkpoint load is replaced by random weights. Then again with the
    launcher's --vae_bf16, and how far its latents and frames are from float32's (PSNR)."""
    H, W, T = args.height, args.width, args.frames

    def random_video_vae(pretrained_path=None, z_dim=None, **_kwargs):
        cfg = dict(
            dim=96,
            z_dim=z_dim,
            dim_mult=[1, 2, 4, 4],
            num_res_blocks=2,
            attn_scales=[],
            temperal_downsample=[False, True, True],
            dropout=0.0,
        )  # as vae2_1._video_vae builds it
        return on_gpu_from_meta(lambda: wan.vae2_1.WanVAE_(**cfg), device)

    original, wan.vae2_1._video_vae = wan.vae2_1._video_vae, random_video_vae
    try:
        vae = wan.vae2_1.Wan2_1_VAE(vae_pth="(random weights)", device=device)
    finally:
        wan.vae2_1._video_vae = original
    parts = {}
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad(), generate_autocast():
        pose = torch.randn(1, 3, T, H, W, device=device, dtype=torch.bfloat16)
        vae.encode(pose[:, :, :5])  # warm-up: the same per-chunk shapes (1 frame, then 4), cuDNN picks its kernels
        warm = vae.encode(pose[:, :, :5])
        vae.decode([warm[0][:, :2].float()])
        parts["vae_encode_pose_s"], latents = timed(lambda: vae.encode(pose))
        ref = torch.randn(1, 3, 1, H, W, device=device, dtype=torch.bfloat16)
        parts["vae_encode_ref_s"], _ = timed(lambda: vae.encode(ref))
        zeros = [torch.zeros(3, T, H, W, device=device)]  # clip 1 of animate mode: y_reft from zeros
        parts["vae_encode_reft_s"], _ = timed(lambda: vae.encode(zeros))
        x0 = latents[0].float()  # T//4 + 1 latents: what generate decodes after dropping the reference latent
        parts["vae_decode_s"], frames = timed(lambda: vae.decode([x0]))
        parts["vae_peak_gib"] = peak_gib()
        launcher.vae_in_bf16(vae)  # --vae_bf16
        vae.encode(pose[:, :, :5])
        parts["vae_bf16_encode_pose_s"], latents16 = timed(lambda: vae.encode(pose))
        parts["vae_bf16_encode_ref_s"], _ = timed(lambda: vae.encode(ref))
        parts["vae_bf16_encode_reft_s"], _ = timed(lambda: vae.encode(zeros))
        parts["vae_bf16_decode_s"], frames16 = timed(lambda: vae.decode([x0]))
    parts["vae_bf16_psnr_db"] = {
        "encode": compare(latents16[0], latents[0])["psnr_db"],
        "decode": compare(frames16[0], frames[0])["psnr_db"],
    }
    return parts


def bench_clip(wan, launcher, args, device) -> dict:
    """CLIPModel.visual on a CLIPModel whose weights are random (its __init__ only adds the checkpoint load)."""
    model, transforms = wan.clip.clip_xlm_roberta_vit_h_14(
        pretrained=False, return_transforms=True, return_tokenizer=False, dtype=torch.float16, device="meta"
    )
    clip = wan.clip.CLIPModel.__new__(wan.clip.CLIPModel)
    clip.dtype, clip.device = torch.float16, device
    clip.model, clip.transforms = randomize_(model.to_empty(device=device)), transforms
    torch.cuda.reset_peak_memory_stats()
    img = torch.rand(3, args.height, args.width, device=device, dtype=torch.bfloat16) * 2 - 1
    with torch.no_grad(), generate_autocast():
        clip.visual([img[:, None, :, :]])
        seconds, _ = timed(lambda: clip.visual([img[:, None, :, :]]))
    return {"clip_visual_s": seconds, "clip_peak_gib": peak_gib()}


def bench_t5(wan, launcher, args, device) -> dict:
    """The umT5-XXL encoder in bf16: a prompt and a negative prompt per call, padded to text_len 512; then what
    upstream's single-GPU default (--offload_model True) adds per call: T5 back to the CPU."""
    t5 = on_gpu_from_meta(
        lambda: wan.t5.umt5_xxl(encoder_only=True, return_tokenizer=False, dtype=torch.bfloat16, device="meta"), device
    )
    ids = torch.randint(0, 256384, (1, 512), device=device)
    mask = torch.zeros(1, 512, dtype=torch.long, device=device)
    mask[:, :40] = 1
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        t5(ids, mask)
        seconds, _ = timed(lambda: (t5(ids, mask), t5(ids, mask)))
    peak = peak_gib()
    started = time.perf_counter()
    t5.cpu()
    torch.cuda.synchronize()
    return {"t5_two_forwards_s": seconds, "t5_peak_gib": peak, "t5_offload_to_cpu_s": time.perf_counter() - started}


# ---- the DiT ---------------------------------------------------------------------------------------------------


def build_dit(wan, device):
    torch.set_default_dtype(torch.bfloat16)  # from_pretrained(torch_dtype=bf16) gives bf16 parameters
    try:
        with torch.device("meta"):
            model = wan.model_animate.WanAnimateModel()
    finally:
        torch.set_default_dtype(torch.float32)
    model = structured_attention_(randomize_(model.to_empty(device=device)))
    d = model.dim // model.num_heads
    rope = wan.model_animate.rope_params
    model.freqs = torch.cat([rope(1024, d - 4 * (d // 6)), rope(1024, 2 * (d // 6)), rope(1024, 2 * (d // 6))], dim=1)
    return model


def structured_attention_(model: torch.nn.Module) -> torch.nn.Module:
    """q/k RMSNorm gains QK_GAIN, as in the synthetic checkpoint (scripts/synthetic/specs.py): with the N(0, 0.02)
    gains of randomize_ the attention logits are ~1e-4, softmax is uniform and the lossless column could not see a
    wrong rope or mask; with these the logits spread like a trained model's (std ≈ QK_GAIN², peaked softmax)."""
    from synthetic.specs import QK_GAIN

    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("norm_q.weight", "norm_k.weight", "norm_k_img.weight", "q_norm.weight", "k_norm.weight")):
                param.fill_(QK_GAIN)
    return model


def dit_inputs(args, device):
    """What WanAnimate.generate passes per step for one clip (text context: 60 tokens)."""
    lat_t, lh, lw = args.frames // 4 + 1, args.height // 8, args.width // 8
    g = torch.Generator(device=device).manual_seed(0)
    rand = lambda *shape, dtype=torch.float32: torch.randn(*shape, device=device, generator=g, dtype=dtype)  # noqa: E731
    seq_len = (lat_t + 1) * (lh // 2) * (lw // 2)
    # dtypes as generate() has them: noise and VAE latents float32, T5 output and pixel batches bf16
    return dict(
        x=[rand(16, lat_t + 1, lh, lw)],
        t=torch.tensor([500.0], device=device),
        clip_fea=rand(1, 257, 1280, dtype=torch.bfloat16),
        context=[rand(60, 4096, dtype=torch.bfloat16)],
        seq_len=seq_len,
        y=[rand(20, lat_t + 1, lh, lw, dtype=torch.bfloat16)],
        pose_latents=rand(1, 16, lat_t, lh, lw),
        face_pixel_values=rand(1, 3, args.frames, 512, 512, dtype=torch.bfloat16),
    )


def dit_flops(model, tokens: int) -> float:
    """Blocks only: 40 × (2·L·(6d² + 2·d·ffn) + 4·L²·d + 4·L·769·d) (docs/PERFORMANCE.md)."""
    d, ffn = model.dim, model.ffn_dim
    return model.num_layers * (2 * tokens * (6 * d * d + 2 * d * ffn) + 4 * tokens * tokens * d + 4 * tokens * 769 * d)


def run_route(model, inputs, context, flops, args):
    """1 warm-up + 1 timed forward under `context`; the output of the timed one."""

    def forward():
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            return model(**inputs)[0]

    torch.cuda.reset_peak_memory_stats()
    with context():
        warm_s, _ = timed(forward)
        seconds, out = timed(forward)
    if not torch.isfinite(out).all():
        raise RuntimeError("non-finite DiT output")
    return {
        "s_per_forward": round(seconds, 3),
        "warmup_s": round(warm_s, 3),
        "tflops": round(flops / seconds / 1e12, 1),
        "pct_of_peak": round(100 * flops / seconds / 1e12 / args.peak_tflops, 1),
        "peak_gib": peak_gib(),
    }, out


KERNEL_KINDS = (
    ("attention", ("flash", "fmha", "sdpa", "attention")),
    ("gemm", ("gemm", "nvjet", "xmma", "cutlass", "matmul", "scaled_mm")),
    ("collective", ("nccl",)),
    ("fused elementwise (Inductor)", ("triton",)),
)


def kernel_kind(name: str) -> str:
    lowered = name.lower()
    return next((kind for kind, words in KERNEL_KINDS if any(w in lowered for w in words)), "other kernels")


def profile_forward(model, inputs, context) -> dict:
    """GPU time of one forward by kernel kind (torch.profiler), and the wall time the kernels leave idle
    (launch gaps, host work such as graph breaks)."""
    from torch.profiler import ProfilerActivity, profile

    with (
        context(),
        torch.no_grad(),
        torch.autocast("cuda", dtype=torch.bfloat16),
        profile(activities=[ProfilerActivity.CUDA]) as prof,
    ):
        wall, _ = timed(lambda: model(**inputs))
    kinds: dict[str, float] = {}
    top: list[tuple[float, str]] = []
    for event in prof.key_averages():
        seconds = getattr(event, "self_device_time_total", 0) / 1e6
        if seconds <= 0:
            continue
        kinds[kernel_kind(event.key)] = kinds.get(kernel_kind(event.key), 0.0) + seconds
        top.append((seconds, event.key[:90]))
    busy = sum(kinds.values())
    return {
        "wall_s": round(wall, 3),
        "kernels_s": {k: round(v, 3) for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])},
        "idle_s": round(max(wall - busy, 0.0), 3),
        "top_kernels": [[round(t, 3), name] for t, name in sorted(top, reverse=True)[:8]],
    }


def time_motion_encoder(wan, model, inputs) -> float:
    """Upstream's face path of after_patch_embedding (motion encoder over every face crop, face encoder):
    what each upstream forward pays and our launcher pays once per clip."""
    cls = wan.model_animate.WanAnimateModel
    upstream = getattr(cls.after_patch_embedding, "rav_upstream", cls.after_patch_embedding)
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        upstream(model, [], [], inputs["face_pixel_values"])
        seconds, _ = timed(lambda: upstream(model, [], [], inputs["face_pixel_values"]))
    return round(seconds, 3)


def bench_dit(wan, launcher, args, device, started, log, report: dict, save) -> None:
    """Fills report['dit'] and report['routes'], calling save() after each route."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    t0 = time.perf_counter()
    model = build_dit(wan, device)
    inputs = dit_inputs(args, device)
    flops = dit_flops(model, inputs["seq_len"])
    info = {
        "params_b": round(sum(p.numel() for p in model.parameters()) / 1e9, 2),
        "tokens": inputs["seq_len"],
        "pflop_per_forward": round(flops / 1e15, 3),
        "build_s": round(time.perf_counter() - t0, 1),
        "weights_gib": round(torch.cuda.memory_allocated() / GIB, 1),
    }
    log(
        f"DiT: {info['params_b']} B params ({info['weights_gib']} GiB) built in {info['build_s']} s; "
        f"{info['tokens']} tokens, {info['pflop_per_forward']} PFLOP per forward"
    )
    wanted = [r.strip() for r in args.routes.split(",") if r.strip()]
    available = {m: launcher.module_available(m) for m in OPTIONAL_MODULES}
    results, ref = {}, None
    report["dit"], report["routes"] = info, results

    def record(name, note, fn, expected_s):
        nonlocal ref
        elapsed = time.perf_counter() - started
        if elapsed + expected_s > args.budget_s:
            results[name] = {"note": note, "skipped": f"time budget ({elapsed:.0f} s used, ~{expected_s:.0f} s needed)"}
            log(f"{name}: skipped (time budget)")
            return
        try:
            row, out = fn()
        except Exception as exc:  # a route that fails is reported, the others still run
            results[name] = {"note": note, "error": repr(exc)[:400]}
            log(f"{name}: FAILED {exc!r}"[:400])
            return
        row["note"] = note
        if ref is None:
            ref = out
        else:
            row["vs_official"] = {k: (v if math.isfinite(v) else str(v)) for k, v in compare(out, ref).items()}
        results[name] = row
        save()  # what is measured so far survives a run cut short by the device's time limit
        log(
            f"{name}: {row['s_per_forward']} s/forward, {row['tflops']} TFLOP/s, peak {row['peak_gib']} GiB"
            + (
                f", max|diff| {row['vs_official']['max_abs_diff']:.3g}, PSNR {db(row['vs_official']['psnr_db'])} dB"
                if "vs_official" in row
                else ""
            )
        )

    def route(name):
        launcher.install_attention(name)
        return lambda: launcher.attention_context(name)

    def official():
        """Upstream as users run it: its rope (complex float64) and flash_attention on the FA2 kernel."""
        launcher.install_attention("cudnn")  # the launcher's SDPA functions at every call site ...
        for site, function in upstream_rope.items():  # ... but upstream's own rope and face motion path
            importlib.import_module(site).rope_apply = function
        launcher.uninstall_motion_cache()
        return lambda: sdpa_kernel([SDPBackend.FLASH_ATTENTION])

    upstream_rope = wan.upstream_rope
    info["motion_encoder_s"] = time_motion_encoder(wan, model, inputs)
    log(
        f"face motion encoder + face encoder (per forward upstream, once per clip with our cache): "
        f"{info['motion_encoder_s']} s"
    )
    guess = 2 * 20.0  # a forward is ~13-19 s on an H200 at 720p: warm-up + timed
    record(
        "official-fa2",
        "EMULATED official path: upstream flash_attention → torch SDPA restricted to "
        "FLASH_ATTENTION (PyTorch's FA2 kernel), upstream rope; flash_attn is not installed here",
        lambda: run_route(model, inputs, official(), flops, args),
        0,
    )
    per = results.get("official-fa2", {}).get("s_per_forward", guess / 2)
    notes = {
        "cudnn": "--attention cudnn (auto without FA3): SDPA, cuDNN kernel first; float32 rope",
        "sdpa": "--attention sdpa: SDPA, PyTorch's kernel order; float32 rope",
        "fa3": "--attention fa3 (auto with FA3): FlashAttention-3 in the DiT; float32 rope",
        "fa3-fp8": "--attention fa3-fp8: FA3 FP8 kernel, per-head scales: LOSSY",
        "sage": "--attention sage: SageAttention in the DiT: LOSSY (INT8 QK)",
    }
    for name, note in notes.items():
        if name not in wanted:
            continue
        module = launcher.ROUTE_PACKAGES.get(name, ("torch",))[0]
        if available.get(module, True):
            record(name, note, lambda name=name: run_route(model, inputs, route(name), flops, args), 2 * per)
        else:
            results[name] = {"note": note, "skipped": f"not available ({module} not importable)"}
    lossless = "fa3" if available["flash_attn_interface"] else "cudnn"
    if "compile" in wanted:

        def compiled():
            launcher.compile_blocks(model)
            return run_route(model, inputs, route(lossless), flops, args)

        record(
            f"{lossless}+compile",
            f"--attention {lossless} --compile: torch.compile of each DiT block (warm-up = compilation)",
            compiled,
            per + 100,
        )  # H200: ~75 s compilation + one forward
        if args.profile and "s_per_forward" in results[f"{lossless}+compile"]:  # only a compiled forward that ran
            results[f"{lossless}+compile"]["profile"] = profile_forward(model, inputs, route(lossless))
            save()
            log(f"profile: {results[f'{lossless}+compile']['profile']}")
    if "fast" in wanted:
        fast_route = launcher.choose_attention("fast", launcher.module_available)
        use_fp8 = available["torchao"]
        note = (
            f"--preset fast's speed options: --attention fast ({fast_route})"
            + (" + --fp8 (torchao float8 linears)" if use_fp8 else " (torchao not importable: no --fp8)")
            + " + --compile; clip columns with --vae_bf16: LOSSY"
        )

        def fast():
            if use_fp8:
                launcher.quantize_fp8(model)
            launcher.compile_blocks(model)
            return run_route(model, inputs, route(fast_route), flops, args)

        record("fast", note, fast, per + 340)  # H200: ~325 s compilation with torchao's float8 tensors
        if "fast" in results:
            results["fast"]["vae"] = "bf16"


# ---- report ----------------------------------------------------------------------------------------------------


def derive(report: dict, args) -> None:
    """Whole-clip estimates per route from the measured parts (DERIVED, not timed end to end)."""
    parts = report.get("parts")
    if not parts:
        return
    per_clip = vae_clip_seconds(parts, "fp32")
    report["derived"] = {
        "vae_clip_per_clip_s": round(per_clip, 2),
        "vae_bf16_clip_per_clip_s": round(vae_clip_seconds(parts, "bf16"), 2),
        "t5_per_call_s": parts["t5_two_forwards_s"],
        "official_offload_per_call_s": parts["t5_offload_to_cpu_s"],
    }
    motion = report["dit"].get("motion_encoder_s", 0.0)
    for name, row in report["routes"].items():
        if "s_per_forward" in row:
            # our routes reuse the face motion features: the first step of a clip pays them once more
            around = vae_clip_seconds(parts, row.get("vae", "fp32")) + (0.0 if name == "official-fa2" else motion)
            row["clip_s"] = round(args.steps * row["s_per_forward"] + around, 1)
            row["fast_clip_s"] = round(args.fast_steps * row["s_per_forward"] + around, 1)


def markdown(report: dict, args) -> str:
    env = report["env"]
    lines = [
        f"# Generation benchmark: {args.width}×{args.height}×{args.frames}, {env['gpu']}",
        "",
        f"torch {env['torch']}, cuDNN {env['cudnn']}, Python {env['python']}; importable: "
        + ", ".join(f"{m} {'yes' if ok else 'no'}" for m, ok in env["optional_modules"].items())
        + ".",
        f"DiT: {report['dit']['params_b']} B params, random weights; {report['dit']['tokens']} tokens, "
        f"{report['dit']['pflop_per_forward']} PFLOP per forward (blocks). 1 warm-up + 1 timed forward per route.",
        "",
        f"| route | s / forward | TFLOP/s | % of {args.peak_tflops:g} | peak GiB | speed-up vs official | "
        f"max abs diff vs official | PSNR vs official (dB) | clip s ({args.steps} steps) | "
        f"clip s ({args.fast_steps} steps) | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    base = report["routes"].get("official-fa2", {}).get("s_per_forward")
    for name, row in report["routes"].items():
        if "s_per_forward" not in row:
            lines.append(
                f"| {name} | {row.get('skipped') or 'failed: ' + row.get('error', '')} |  |  |  |  |  |  |  |  | "
                f"{row['note']} |"
            )
            continue
        vs = row.get("vs_official", {})
        ratio = f"{base / row['s_per_forward']:.2f}" if base else ""
        diff = f"{vs['max_abs_diff']:.3g}" if vs else "reference"
        psnr = db(vs["psnr_db"]) if vs else ""
        lines.append(
            f"| {name} | {row['s_per_forward']:.2f} | {row['tflops']:.0f} | {row['pct_of_peak']:.0f}% | "
            f"{row['peak_gib']} | {ratio} | {diff} | {psnr} | {row.get('clip_s', '')} | "
            f"{row.get('fast_clip_s', '')} | {row['note']} |"
        )
    parts = report.get("parts")
    if parts:
        lines += [
            "",
            "| part (measured, official modules, random weights) | seconds | peak GiB |",
            "|---|---|---|",
            f"| VAE encode, pose video ({args.frames} frames) | {parts['vae_encode_pose_s']} | "
            f"{parts['vae_peak_gib']} |",
            f"| VAE encode, reference image (1 frame) | {parts['vae_encode_ref_s']} | |",
            f"| VAE encode, temporal-guide video ({args.frames} frames) | {parts['vae_encode_reft_s']} | |",
            f"| VAE decode ({args.frames // 4 + 1} latents → {args.frames} frames) | {parts['vae_decode_s']} | |",
            f"| `--vae_bf16`: the three encodes | {parts['vae_bf16_encode_pose_s']} + "
            f"{parts['vae_bf16_encode_ref_s']} + "
            f"{parts['vae_bf16_encode_reft_s']} | |",
            f"| `--vae_bf16`: decode (PSNR vs float32: latents {db(parts['vae_bf16_psnr_db']['encode'])} dB, frames "
            f"{db(parts['vae_bf16_psnr_db']['decode'])} dB) | {parts['vae_bf16_decode_s']} | |",
            f"| CLIP visual (reference image) | {parts['clip_visual_s']} | {parts['clip_peak_gib']} |",
            f"| T5 encoder, prompt + negative prompt (once per call) | {parts['t5_two_forwards_s']} | "
            f"{parts['t5_peak_gib']} |",
            f"| T5 to the CPU (upstream's single-GPU offload, once per call) | {parts['t5_offload_to_cpu_s']} | |",
        ]
        d = report["derived"]
        lines += [
            "",
            f"Derived (not timed end to end): clip s = steps × s/forward + VAE and CLIP per clip "
            f"({d['vae_clip_per_clip_s']} s; {d['vae_bf16_clip_per_clip_s']} s with --vae_bf16, the fast row) "
            f"+ for our routes the face motion encoder once ({report['dit'].get('motion_encoder_s')} s: upstream "
            f"runs it in every forward, our launcher reuses its result from the clip's first step on); "
            f"once per call add T5 ({d['t5_per_call_s']} s), model loading, the compilation of compiled routes "
            f"(their warm-up), and on the official single-GPU path the T5 offload "
            f"({d['official_offload_per_call_s']} s).",
        ]
    for name, row in report["routes"].items():
        prof = row.get("profile")
        if prof:
            lines += [
                "",
                f"Where one forward of {name} goes (torch.profiler, {prof['wall_s']} s wall): "
                + ", ".join(f"{kind} {sec} s" for kind, sec in prof["kernels_s"].items())
                + f", GPU idle {prof['idle_s']} s.",
                "Top kernels: " + "; ".join(f"{sec} s {name}" for sec, name in prof["top_kernels"][:5]) + ".",
            ]
    lines += [
        "",
        "official-fa2 is an emulation of the official flash_attn path (see note). PSNR is over the official "
        "output's value range; lossless routes differ from it only by floating-point summation order and the "
        "float32 rope; LOSSY routes show how much they change the output. Compiled routes: warm-up_s in the "
        "JSON is the compilation, paid once per run.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = lambda msg: print(f"[bench {time.perf_counter() - started:5.0f}s] {msg}", flush=True)  # noqa: E731
    if not torch.cuda.is_available():
        sys.exit("bench_generation.py needs a CUDA GPU")
    if args.frames % 4 != 1:
        sys.exit("--frames must be 4n+1")
    device = torch.device("cuda")
    wan = import_wan(Path(args.wan22_dir).resolve())
    launcher = import_launcher()
    wan.upstream_rope = {
        site: importlib.import_module(site).rope_apply  # before the launcher replaces them
        for site in (*launcher.ROPE_SITES, launcher.SP_ROPE_SITE)
    }
    launcher.install_attention("cudnn")
    report = {
        "env": {
            "gpu": torch.cuda.get_device_name(),
            "torch": torch.__version__,
            "cudnn": torch.backends.cudnn.version(),
            "python": platform.python_version(),
            "optional_modules": {m: launcher.module_available(m) for m in OPTIONAL_MODULES},
        },
        "size": {"width": args.width, "height": args.height, "frames": args.frames},
    }
    log(f"{report['env']['gpu']}, torch {report['env']['torch']}, optional modules {report['env']['optional_modules']}")
    if not args.skip_parts:
        with launcher.attention_context("cudnn"):
            report["parts"] = bench_parts(wan, launcher, args, device, log)

    def save():
        derive(report, args)
        report["total_s"] = round(time.perf_counter() - started, 1)
        (out_dir / "bench_generation.json").write_text(json.dumps(report, indent=1) + "\n")
        (out_dir / "bench_generation.md").write_text(markdown(report, args))

    bench_dit(wan, launcher, args, device, started, log, report, save)
    free()
    save()
    print("BENCH_JSON " + json.dumps(report), flush=True)
    print(markdown(report, args), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
