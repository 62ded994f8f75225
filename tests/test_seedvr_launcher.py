"""SeedVR2 without flash_attn or apex (upstream/seedvr/runtime/launcher.py) and its synthetic checkpoint
(scripts/make_synthetic_seedvr.py), on the CPU: the SDPA stand-in computes flash_attn's varlen attention, the norm
stand-ins take apex's arguments and keys, and the written checkpoint loads into SeedVR's own classes the way the
inference script loads it (strict, assign). The GPU run is tests/test_upscale_contracts.py's real-SeedVR2 test."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO

torch = pytest.importorskip("torch")
SEEDVR = REPO / "SeedVR"


def load_launcher():
    spec = importlib.util.spec_from_file_location(
        "seedvr_launcher_under_test", REPO / "replace_actor_video" / "upstream" / "seedvr" / "runtime" / "launcher.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


launcher = load_launcher()


@pytest.mark.parametrize("lengths", [(16, 16, 16), (5, 16, 9)])
def test_varlen_stand_in_equals_attention_per_sequence(lengths):
    torch.manual_seed(0)
    heads, dim = 4, 32
    q, k, v = (torch.randn(sum(lengths), heads, dim) for _ in range(3))
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    out = launcher.flash_attn_varlen_func(q, k, v, cu, cu, max(lengths), max(lengths), softmax_scale=0.3)
    expect = []
    for a, b in zip(cu.tolist(), cu.tolist()[1:]):
        scores = torch.einsum("qhd,khd->hqk", q[a:b], k[a:b]) * 0.3
        expect.append(torch.einsum("hqk,khd->qhd", scores.softmax(-1), v[a:b]))
    assert torch.allclose(out, torch.cat(expect), atol=1e-5)


def test_stand_ins_only_for_what_is_missing_and_with_apex_signatures(monkeypatch):
    for name in ("flash_attn", "apex", "apex.normalization"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    installed = launcher.install_stand_ins()
    if importlib.util.find_spec("flash_attn") is not None and "flash_attn (SDPA)" not in installed:
        pytest.skip("flash_attn is installed here: no stand-in needed")
    from apex.normalization import FusedLayerNorm, FusedRMSNorm

    rms = FusedRMSNorm(normalized_shape=8, elementwise_affine=True, eps=1e-5)  # as models/dit_v2/normalization.py
    ln = FusedLayerNorm(normalized_shape=8, elementwise_affine=True, eps=1e-5)
    assert set(rms.state_dict()) == {"weight"} and set(ln.state_dict()) == {"weight", "bias"}
    assert importlib.util.find_spec("flash_attn") is not None  # a spec: diffusers' probe does not fail on it
    for name in ("flash_attn", "apex", "apex.normalization"):
        sys.modules.pop(name, None)


@pytest.mark.skipif(not (SEEDVR / "configs_3b" / "main.yaml").is_file(), reason=f"needs the SeedVR clone ({SEEDVR})")
def test_synthetic_checkpoint_loads_like_the_inference_script(tmp_path):
    for dep in ("omegaconf", "rotary_embedding_torch", "diffusers", "einops"):
        pytest.importorskip(dep, reason=f"SeedVR's models import {dep}")
    clone = tmp_path / "SeedVR"
    shutil.copytree(SEEDVR, clone, ignore=shutil.ignore_patterns("assets", "ckpts"))
    small = ["dit.model.num_layers=2", "dit.model.vid_dim=256", "dit.model.heads=2", "dit.model.mm_layers=1"]
    code = textwrap.dedent(f"""
        import sys, torch
        sys.path.insert(0, {str(REPO / "scripts")!r})
        import make_synthetic_seedvr as m
        sizes = m.write(m.Path({str(clone)!r}), "3b", "cpu", {small!r})
        # what projects/video_diffusion_sr/infer.py does: DiT on meta, strict load with assign; VAE strict load
        from common.config import create_object, load_config
        config = load_config("configs_3b/main.yaml", {small!r})
        with torch.device("meta"):
            dit = create_object(config.dit.model)
        state = torch.load("ckpts/seedvr2_ema_3b.pth", map_location="cpu", mmap=True)
        print(dit.load_state_dict(state, strict=True, assign=True))
        assert {{v.dtype for v in state.values() if v.is_floating_point()}} == {{torch.bfloat16}}
        vae = create_object(config.vae.model)
        print(vae.load_state_dict(torch.load(config.vae.checkpoint, map_location="cpu", mmap=True)))
        print("OK", sizes)
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=False)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert "OK {'seedvr2_ema_3b.pth'" in res.stdout and res.stdout.count("<All keys matched successfully>") == 2


def test_ffmpeg_video_reader_gives_read_videos_frames(tmp_path):
    clip = tmp_path / "c.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=64x48:rate=16",
            "-frames:v",
            "5",
            "-c:v",
            "libx264rgb",
            "-crf",
            "0",
            str(clip),
        ],
        check=True,
    )
    frames, audio, info = launcher.read_video_ffmpeg(clip, output_format="TCHW")
    assert frames.shape == (5, 3, 48, 64) and frames.dtype == torch.uint8 and info == {"video_fps": 16.0}
    thwc, _, _ = launcher.read_video_ffmpeg(clip)
    assert torch.equal(thwc.permute(0, 3, 1, 2), frames) and audio.numel() == 0
    png = tmp_path / "f0.png"  # the first frame, decoded on its own: the same pixels (lossless clip)
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip), "-frames:v", "1", str(png)], check=True)
    import numpy as np
    from PIL import Image

    assert torch.equal(torch.from_numpy(np.asarray(Image.open(png).convert("RGB"))), thwc[0])
