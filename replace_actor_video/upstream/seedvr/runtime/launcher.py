"""Run SeedVR's official inference script (projects/inference_seedvr2_{3b,7b}.py) as __main__, with stand-ins for the
two compiled packages it imports but a plain PyTorch install lacks; the clone is never edited. Started by the upscale
stage under torchrun as `launcher.py <script> <its arguments>` (cwd and PYTHONPATH = the clone; no `--`:
torchrun's argument parser drops it).

- `flash_attn` (models/dit_v2/attention.py imports `flash_attn_varlen_func` at module level; SeedVR pins 2.5.9):
  when it does not import, a stand-in module answers `flash_attn_varlen_func` with torch's
  scaled_dot_product_attention over the same packed sequences (windows of equal length in one batched call), the
  way the Wan launcher routes Animate's attention to SDPA. Same math; the kernel is whatever SDPA picks.
- `apex` (models/dit_v2/normalization.py builds `apex.normalization.FusedLayerNorm`/`FusedRMSNorm` for the
  configs' `fusedln`/`fusedrms` norms): when it does not import, torch.nn.LayerNorm / torch.nn.RMSNorm with the same
  arguments and the same state-dict keys (weight, bias).
- `IPython` (mediapy, which writes SeedVR's output, imports IPython.display at the top for its notebook helpers):
  when it does not import, empty modules (the video writer never uses them).
- `torchvision.io.read_video` needs PyAV (`av`), which a plain install lacks and newer torchvision deprecates:
  without `av`, the name is answered by a reader that decodes with the ffmpeg and ffprobe on PATH (the same frames,
  uint8, in the layout asked for, and the stream's fps), before the script imports it.
Each stand-in is announced on stdout. Standard library, torch and numpy only (it runs in SeedVR's environment).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import runpy
import sys
import types

TAG = "[rav-seedvr]"


def _say(text: str) -> None:
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"{TAG} {text}", flush=True)


def flash_attn_varlen_func(
    q,
    k,
    v,
    cu_seqlens_q,
    cu_seqlens_k,
    max_seqlen_q=None,
    max_seqlen_k=None,
    dropout_p=0.0,
    softmax_scale=None,
    causal=False,
    window_size=(-1, -1),
    deterministic=False,
    **_unused,
):
    """flash_attn's varlen attention on packed [total, heads, dim] tensors, through SDPA."""
    import torch
    import torch.nn.functional as F

    if tuple(window_size) != (-1, -1):
        raise NotImplementedError("the SDPA stand-in for flash_attn has no sliding window")
    bq, bk = cu_seqlens_q.tolist(), cu_seqlens_k.tolist()
    lens_q = {b - a for a, b in zip(bq, bq[1:])}
    lens_k = {b - a for a, b in zip(bk, bk[1:])}

    def attend(q_, k_, v_):  # [B, L, H, D] → [B, L, H, D]
        out = F.scaled_dot_product_attention(
            q_.transpose(1, 2),
            k_.transpose(1, 2),
            v_.transpose(1, 2),
            dropout_p=dropout_p,
            is_causal=causal,
            scale=softmax_scale,
        )
        return out.transpose(1, 2)

    if len(lens_q) == 1 and len(lens_k) == 1:  # equal windows: one batched call
        n = len(bq) - 1
        out = attend(q.reshape(n, -1, *q.shape[1:]), k.reshape(n, -1, *k.shape[1:]), v.reshape(n, -1, *v.shape[1:]))
        return out.reshape(-1, *out.shape[2:])
    return torch.cat(
        [attend(q[a:b][None], k[c:d][None], v[c:d][None])[0] for a, b, c, d in zip(bq, bq[1:], bk, bk[1:])]
    )


def _module(name: str) -> types.ModuleType:
    """An empty module with a spec: libraries that probe with importlib.util.find_spec (diffusers) then look for its
    distribution metadata, find none and treat the package as absent instead of failing on a spec-less module."""
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, loader=None)
    return module


def install_stand_ins() -> list[str]:
    """Register the stand-ins for whatever of flash_attn, apex and IPython does not import; returns their names."""
    import torch

    installed = []
    if importlib.util.find_spec("flash_attn") is None:
        module = _module("flash_attn")
        module.flash_attn_varlen_func = flash_attn_varlen_func
        sys.modules["flash_attn"] = module
        installed.append("flash_attn (SDPA)")
    if importlib.util.find_spec("apex") is None:
        apex = _module("apex")
        normalization = _module("apex.normalization")
        normalization.FusedLayerNorm = torch.nn.LayerNorm
        normalization.FusedRMSNorm = torch.nn.RMSNorm
        apex.normalization = normalization
        sys.modules["apex"], sys.modules["apex.normalization"] = apex, normalization
        installed.append("apex.normalization (torch LayerNorm/RMSNorm)")
    if importlib.util.find_spec("IPython") is None:
        ipython = _module("IPython")
        ipython.display = _module("IPython.display")
        sys.modules["IPython"], sys.modules["IPython.display"] = ipython, ipython.display
        installed.append("IPython (empty: mediapy's notebook helpers)")
    return installed


def read_video_ffmpeg(filename, start_pts=0, end_pts=None, pts_unit="pts", output_format="THWC"):
    """torchvision.io.read_video's result for a whole video: (frames uint8 [T, H, W, C] or [T, C, H, W], an empty
    audio tensor, {"video_fps": fps}), decoded by ffmpeg."""
    import json
    import subprocess
    from fractions import Fraction

    import numpy as np
    import torch

    if start_pts or end_pts is not None:
        raise NotImplementedError("the ffmpeg stand-in for read_video reads whole videos only")
    probe = json.loads(
        subprocess.run(
            [
                "ffprobe",
                "-v",
                "error",
                "-select_streams",
                "v:0",
                "-show_entries",
                "stream=width,height,avg_frame_rate",
                "-of",
                "json",
                str(filename),
            ],
            capture_output=True,
            check=True,
        ).stdout
    )["streams"][0]
    width, height = int(probe["width"]), int(probe["height"])
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(filename), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    ).stdout
    frames = torch.from_numpy(np.frombuffer(raw, np.uint8).copy().reshape(-1, height, width, 3))
    if output_format == "TCHW":
        frames = frames.permute(0, 3, 1, 2)
    return frames, torch.empty(1, 0), {"video_fps": float(Fraction(probe["avg_frame_rate"]))}


def install_video_reader() -> bool:
    """torchvision.io(.video).read_video through ffmpeg when PyAV does not import (and torchvision does)."""
    if importlib.util.find_spec("av") is not None or importlib.util.find_spec("torchvision") is None:
        return False
    import torchvision.io
    import torchvision.io.video

    torchvision.io.video.read_video = read_video_ffmpeg
    torchvision.io.read_video = read_video_ffmpeg
    return True


def main() -> None:
    if len(sys.argv) < 2 or not sys.argv[1].endswith(".py"):
        sys.exit(f"{TAG} usage: launcher.py <projects/inference_seedvr2_*.py> <its arguments>")
    script, *args = sys.argv[1:]
    installed = install_stand_ins()
    if install_video_reader():
        installed.append("torchvision read_video (ffmpeg; no PyAV)")
    if installed:
        _say("not installed here, stand-ins registered: " + ", ".join(installed))
    sys.path.insert(0, os.getcwd())  # SeedVR imports data/, common/, models/ from the repository root
    sys.argv = [script, *args]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
