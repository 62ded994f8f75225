#!/usr/bin/env python3
"""A lossless check that can fail: the official Wan2.2-Animate DiT (upstream's WanAnimateModel class) sampled over
a short trajectory (UniPC, several steps, as WanAnimate.generate does) and decoded by upstream's VAE, once per
attention/rope route, with the decoded frames compared by PSNR against the official route.

    python3 scripts/lossless_check.py [--device cpu|cuda] [--dim 128 --heads 2 --layers 5] [--steps 4] [--json OUT]

Why a trajectory and structured weights (issue 16): with every weight N(0, 0.02), q/k norm gains included,
attention logits are ~1e-4 and softmax is uniform over the keys, so a wrong rope or a wrong key mask changes
nothing a test can see. The weights here are the synthetic checkpoint's (scripts/synthetic/specs.py): q/k RMSNorm
gains QK_GAIN = 2, so logits have a standard deviation of about QK_GAIN² = 4 and each query's softmax is peaked
(the logit spread is measured and printed). Sampling several steps lets a small per-step difference grow the way
it does in a real job, and the decoded frames are what users see.

Routes (each a set of the launcher's patches, imported from replace_actor_video/upstream/wan/runtime/launcher.py):
  official      upstream's rope (complex float64) and motion path, attention through SDPA in bf16 (the FA2 math)
  ours          the launcher's lossless route: float32 rope (wan_rope.py), face-motion cache, SDPA in bf16
  rope-fault    ours with the keys rotated one position further than the queries (a rope one position off)
  mask-fault    ours with the self-attention keys of the last latent frame masked (a wrong key mask)
--unstructured repeats everything with the old N(0, 0.02) weights, where the same faults pass unseen.
The CPU proof is tests/test_lossless_check.py (small dims); on a GPU the same script runs at larger dims.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import math
import os
import sys
import types
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from synthetic.specs import DitConfig, dit_specs  # noqa: E402
from synthetic.tensors import make_tensor  # noqa: E402

ROUTES = ("official", "ours", "rope-fault", "mask-fault")


def import_upstream(wan22_dir: Path):
    """Upstream's model, VAE and scheduler modules without wan/__init__.py (it imports every pipeline)."""
    for name in ("wan", "wan.modules", "wan.modules.animate", "wan.distributed", "wan.utils"):
        if name not in sys.modules or not hasattr(sys.modules[name], "__path__"):
            module = types.ModuleType(name)
            module.__path__ = [str(wan22_dir / name.replace(".", os.sep))]
            sys.modules[name] = module
    if "torchvision" not in sys.modules and importlib.util.find_spec("torchvision") is None:  # clip.py imports it
        for probe in ("transformers.utils.import_utils", "diffusers"):  # they look for torchvision once, at import
            importlib.import_module(probe)
        sys.modules.setdefault("torchvision", types.ModuleType("torchvision"))
        sys.modules.setdefault("torchvision.transforms", types.ModuleType("torchvision.transforms"))
    torch.cuda.current_device = torch.cuda.current_device if torch.cuda.is_available() else (lambda: 0)
    names = {
        "model_animate": "wan.modules.animate.model_animate",
        "model": "wan.modules.model",
        "vae2_1": "wan.modules.vae2_1",
        "unipc": "wan.utils.fm_solvers_unipc",
    }
    return types.SimpleNamespace(**{k: importlib.import_module(v) for k, v in names.items()})


def import_launcher():
    spec = importlib.util.spec_from_file_location(
        "rav_wan_launcher", REPO / "replace_actor_video" / "upstream" / "wan" / "runtime" / "launcher.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# ---- the model, its weights, the inputs ---------------------------------------------------------------------------


def build_dit(wan, cfg: DitConfig, structured: bool, device) -> torch.nn.Module:
    """Upstream's WanAnimateModel at `cfg`'s dims; structured: the synthetic checkpoint's weights, else N(0, 0.02)."""
    torch.manual_seed(0)
    with torch.device("meta"):
        model = wan.model_animate.WanAnimateModel(
            dim=cfg.dim, ffn_dim=cfg.ffn_dim, num_heads=cfg.num_heads, num_layers=cfg.num_layers
        )
    model = model.to_empty(device=device)
    with torch.no_grad():
        if structured:
            state = {s.name: make_tensor(s) for s in dit_specs(cfg)}
            model.load_state_dict(state, strict=True)
        else:
            for tensor in [*model.parameters(), *model.buffers()]:
                if tensor.is_floating_point():
                    tensor.normal_(0, 0.02)
            for name, buf in model.named_buffers():  # the blur kernels are fixed, as the real checkpoint has them
                if name.endswith(".kernel"):
                    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
                    buf.copy_(k[None, :] * k[:, None] / 64)
    # On a GPU the weights are bf16 as from_pretrained(torch_dtype=bf16) gives them. On the CPU they stay float32
    # (holding bf16 values): upstream's float32 regions (torch.cuda.amp.autocast, a no-op on the CPU) then get float32
    # weights, through cpu_float32_regions().
    model = model.to(torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32)
    model = model.eval().requires_grad_(False)
    d = cfg.dim // cfg.num_heads
    rope = wan.model.rope_params
    model.freqs = torch.cat([rope(1024, d - 4 * (d // 6)), rope(1024, 2 * (d // 6)), rope(1024, 2 * (d // 6))], dim=1)
    return model


def cpu_float32_regions(wan) -> None:
    """model_animate's `amp.autocast(dtype=float32)` blocks (torch.cuda.amp: nothing on the CPU) as float32 regions
    inside the CPU's bf16 autocast, as they are inside CUDA's."""

    def autocast(dtype=None, enabled=True, **_kwargs):
        if dtype == torch.float32 or not enabled:
            return torch.autocast("cpu", enabled=False)
        return torch.autocast("cpu", dtype=dtype)

    wan.model_animate.amp = types.SimpleNamespace(autocast=autocast)


def build_vae(wan, device, dim: int):
    """Upstream's Wan2_1_VAE around a WanVAE_ of `dim` channels (96 is the real one), seeded random weights."""

    def small_video_vae(pretrained_path=None, z_dim=None, **_kwargs):
        torch.manual_seed(1)
        return wan.vae2_1.WanVAE_(
            dim=dim,
            z_dim=z_dim,
            dim_mult=[1, 2, 4, 4],
            num_res_blocks=2,
            attn_scales=[],
            temperal_downsample=[False, True, True],
            dropout=0.0,
        )

    original, wan.vae2_1._video_vae = wan.vae2_1._video_vae, small_video_vae
    try:
        return wan.vae2_1.Wan2_1_VAE(vae_pth="(random weights)", device=device)
    finally:
        wan.vae2_1._video_vae = original


def make_inputs(frames: int, height: int, width: int, device) -> dict:
    """What WanAnimate.generate feeds the DiT for one clip (seeded)."""
    g = torch.Generator().manual_seed(2)
    lat_t, lh, lw = frames // 4 + 1, height // 8, width // 8

    def rand(*shape, dtype=torch.float32):
        return torch.randn(*shape, generator=g).to(device=device, dtype=dtype)

    return {
        "noise": rand(16, lat_t + 1, lh, lw),
        "y": [rand(20, lat_t + 1, lh, lw, dtype=torch.bfloat16)],
        "pose_latents": rand(1, 16, lat_t, lh, lw),
        "clip_fea": rand(1, 257, 1280, dtype=torch.bfloat16),
        "context": [rand(60, 4096, dtype=torch.bfloat16)],
        "face_pixel_values": rand(1, 3, frames, 512, 512, dtype=torch.bfloat16).clamp(-1, 1),
        "seq_len": (lat_t + 1) * (lh // 2) * (lw // 2),
        "tokens_per_frame": (lh // 2) * (lw // 2),
    }


# ---- routes ---------------------------------------------------------------------------------------------------------


class KeysOneAhead:
    """rope_apply for the self-attention's q then k (upstream calls it in that order): the keys get the angles of
    the next position in every band, so every query sees every key one position off."""

    def __init__(self, rope_apply):
        self.rope_apply, self.calls = rope_apply, 0

    def __call__(self, x, grid_sizes, freqs):
        self.calls += 1
        if self.calls % 2 == 0:
            freqs = torch.roll(freqs, shifts=-1, dims=0)
        return self.rope_apply(x, grid_sizes, freqs)


def _mask_last_frame(attention, tokens_per_frame):
    """Self-attention (equal q and k lengths) with the keys of the last latent frame masked out."""

    def masked(q, k, v, q_lens=None, k_lens=None, *args, **kwargs):
        if q.size(1) == k.size(1) and k_lens is not None:
            k_lens = (k_lens - tokens_per_frame).clamp(min=1)
        return attention(q, k, v, q_lens, k_lens, *args, **kwargs)

    return masked


ATTENTION_SITES = ("wan.modules.attention", "wan.modules.model", "wan.modules.animate.model_animate")


@contextlib.contextmanager
def route(name: str, launcher, upstream_rope: dict, tokens_per_frame: int, upstream_motion: bool = True):
    """Install `name`'s patches (see the module docstring) for the block. Without `upstream_motion` the official
    routes keep the launcher's face-motion cache too (bit-identical to upstream's motion path, as
    tests/test_launcher_fast_ops.py checks), which spares the CPU proof the motion encoder's 512×512 convolutions in
    every step."""
    launcher.install_attention("sdpa")  # the launcher's SDPA drop-ins at every call site, its rope, its motion cache
    if name == "official":
        for site, function in upstream_rope.items():
            importlib.import_module(site).rope_apply = function
        if upstream_motion:
            launcher.uninstall_motion_cache()
    if name == "rope-fault":
        for site in launcher.ROPE_SITES:
            module = importlib.import_module(site)
            module.rope_apply = KeysOneAhead(module.rope_apply)
    if name == "mask-fault":
        for site in ATTENTION_SITES:
            module = importlib.import_module(site)
            module.flash_attention = _mask_last_frame(module.flash_attention, tokens_per_frame)
    try:
        yield
    finally:
        launcher.install_attention("sdpa")


def autocast(device):
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


def trajectory(wan, model, vae, inputs, steps: int, shift: float, device) -> torch.Tensor:
    """WanAnimate.generate's sampling loop for one clip (guide scale 1, UniPC), then its decode."""
    scheduler = wan.unipc.FlowUniPCMultistepScheduler(num_train_timesteps=1000, shift=1, use_dynamic_shifting=False)
    scheduler.set_timesteps(steps, device=device, shift=shift)
    latents = [inputs["noise"].clone()]
    g = torch.Generator(device=device).manual_seed(3)
    kwargs = {k: inputs[k] for k in ("clip_fea", "context", "seq_len", "y", "pose_latents", "face_pixel_values")}
    with autocast(device), torch.no_grad():
        for t in scheduler.timesteps:
            noise_pred = model(latents, t=torch.stack([t]), **kwargs)[0]
            latents[0] = scheduler.step(
                noise_pred.unsqueeze(0), t, latents[0].unsqueeze(0), return_dict=False, generator=g
            )[0].squeeze(0)
    with torch.no_grad():  # the VAE runs in float32 (upstream's Wan2_1_VAE dtype), outside the bf16 autocast
        return vae.decode([latents[0].float()[:, 1:]])[0].float()


def psnr(out: torch.Tensor, ref: torch.Tensor) -> float:
    rmse = float((out - ref).pow(2).mean().sqrt())
    value_range = float(ref.max() - ref.min())
    return float("inf") if rmse == 0 else 20 * math.log10(value_range / rmse)


def logit_spread(wan, model, inputs, device) -> dict:
    """Self-attention logits q·k/√d of the first block (after the q/k norms and the rope) on the first step's input:
    their standard deviation and maximum, and how peaked each query's softmax is."""
    captured = {}
    site = importlib.import_module("wan.modules.animate.model_animate")
    original = site.flash_attention

    def capture(q, k, v, *args, **kwargs):
        if "q" not in captured and q.size(1) == k.size(1):
            captured["q"], captured["k"] = q.float(), k.float()
        return original(q, k, v, *args, **kwargs)

    site.flash_attention = capture
    try:
        with autocast(device), torch.no_grad():
            model(
                [inputs["noise"]],
                t=torch.tensor([999.0], device=device),
                clip_fea=inputs["clip_fea"],
                context=inputs["context"],
                seq_len=inputs["seq_len"],
                y=inputs["y"],
                pose_latents=inputs["pose_latents"],
                face_pixel_values=inputs["face_pixel_values"],
            )
    finally:
        site.flash_attention = original
    q, k = captured["q"][0].transpose(0, 1), captured["k"][0].transpose(0, 1)  # [N, L, D]
    logits = q @ k.transpose(1, 2) / math.sqrt(q.size(-1))
    p = logits.softmax(-1)
    entropy = -(p * p.clamp_min(1e-30).log()).sum(-1)
    return {
        "keys": k.size(1),
        "logit_std": round(float(logits.std()), 3),
        "logit_max": round(float(logits.max()), 2),
        "top1_weight_mean": round(float(p.max(-1).values.mean()), 4),
        "entropy_over_log_keys": round(float(entropy.mean() / math.log(k.size(1))), 4),
    }


def check(
    wan22_dir: Path,
    *,
    device="cpu",
    dim=128,
    heads=2,
    layers=5,
    ffn=256,
    steps=4,
    shift=5.0,
    frames=5,
    height=128,
    width=128,
    vae_dim=16,
    structured=True,
    routes=ROUTES,
    upstream_motion=None,
    log=print,
) -> dict:
    """PSNR of every route's decoded frames against the official route's, plus the logit spread."""
    wan = import_upstream(Path(wan22_dir))
    if torch.device(device).type == "cpu":
        cpu_float32_regions(wan)
    launcher = import_launcher()
    upstream_rope = {site: importlib.import_module(site).rope_apply for site in launcher.ROPE_SITES}
    cfg = DitConfig(dim=dim, ffn_dim=ffn, num_heads=heads, num_layers=layers, num_shards=1)
    model = build_dit(wan, cfg, structured, device)
    vae = build_vae(wan, device, vae_dim)
    inputs = make_inputs(frames, height, width, device)
    if upstream_motion is None:
        upstream_motion = torch.device(device).type == "cuda"
    result = {
        "weights": "structured" if structured else "N(0, 0.02)",
        "dims": {"dim": dim, "heads": heads, "layers": layers, "tokens": inputs["seq_len"], "steps": steps},
    }
    with route("official", launcher, upstream_rope, inputs["tokens_per_frame"], upstream_motion):
        result["logits"] = logit_spread(wan, model, inputs, device)
        reference = trajectory(wan, model, vae, inputs, steps, shift, device)
    log(f"[lossless] {result['weights']}: logits {result['logits']}")
    result["psnr_db"] = {}
    for name in routes:
        if name == "official":
            continue
        with route(name, launcher, upstream_rope, inputs["tokens_per_frame"], upstream_motion):
            frames_out = trajectory(wan, model, vae, inputs, steps, shift, device)
        result["psnr_db"][name] = round(psnr(frames_out, reference), 2)
        log(
            f"[lossless] {result['weights']}: {name} vs official: PSNR {result['psnr_db'][name]} dB "
            f"(decoded frames after {steps} steps)"
        )
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--wan22_dir", type=Path, default=Path(os.environ.get("WAN22_DIR", REPO / "Wan2.2")))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--layers", type=int, default=5)
    p.add_argument("--ffn", type=int, default=256)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--frames", type=int, default=5, help="4n+1 pixel frames per clip")
    p.add_argument("--height", type=int, default=128)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--vae_dim", type=int, default=16, help="VAE channels (96 = the real VAE)")
    p.add_argument("--unstructured", action="store_true", help="also run with the old N(0, 0.02) weights")
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args(argv)
    kwargs = {
        k: getattr(args, k)
        for k in ("device", "dim", "heads", "layers", "ffn", "steps", "frames", "height", "width", "vae_dim")
    }
    results = [check(args.wan22_dir, structured=True, **kwargs)]
    if args.unstructured:
        results.append(check(args.wan22_dir, structured=False, **kwargs))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
