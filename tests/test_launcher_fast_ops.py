"""The launcher's lossless fast paths on the CPU: the float32 rope (rope.py) against the rotary embedding's
definition and against upstream's complex-float64 rope_apply, its sequence-parallel slices, the face-motion cache
against upstream's after_patch_embedding, and the per-head FP8 quantization of the fa3-fp8 route. Timings are
scripts/bench_generation.py's (docs/PERFORMANCE.md)."""

from __future__ import annotations

import ast
import importlib.util
import math
import os
import sys
import textwrap
import types
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from conftest import REPO  # noqa: E402

RUNTIME = REPO / "replace_actor_video" / "upstream" / "wan" / "runtime"
WAN22 = Path(os.environ.get("WAN22_DIR", REPO / "Wan2.2"))


def needs_wan22(*packages: str) -> pytest.MarkDecorator:
    """Skip without the Wan2.2 clone (the reason names it), or when the upstream code under test imports a package
    that is not installed (the reason names the package)."""
    if not (WAN22 / "wan" / "modules" / "model.py").is_file():
        return pytest.mark.skipif(True, reason=f"needs the Wan2.2 clone ({WAN22}; install.sh clones it)")
    missing = [name for name in packages if importlib.util.find_spec(name) is None]
    return pytest.mark.skipif(
        bool(missing),
        reason=f"the Wan2.2 code under test imports {', '.join(missing)}, not installed (requirements-dev.txt)",
    )


def load(stem: str):
    spec = importlib.util.spec_from_file_location(f"under_test_{stem}", RUNTIME / f"{stem}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


rope = load("rope")
launcher = load("launcher")


def rope_freqs(head_dim: int = 128, positions: int = 64) -> torch.Tensor:
    """Wan's frequency table: three bands (frames, rows, columns) of e^{i·p·θ_k}, complex128 [positions, D/2]."""

    def band(dim):
        theta = 1.0 / 10000 ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)
        return torch.polar(
            torch.ones(positions, dim // 2, dtype=torch.float64),
            torch.outer(torch.arange(positions, dtype=torch.float64), theta),
        )

    d = head_dim
    return torch.cat([band(d - 4 * (d // 6)), band(2 * (d // 6)), band(2 * (d // 6))], dim=1)


def rotary_by_definition(x, grid, freqs):
    """Each channel pair (a, b) of token (f, h, w) times e^{iθ}, θ from the frame/row/column bands, in complex128."""
    f, h, w = grid
    c = x.size(-1) // 2
    sizes = [c - 2 * (c // 3), c // 3, c // 3]
    bands = freqs.split(sizes, dim=1)
    out = x.double().clone()
    for t in range(f * h * w):
        fi, hi, wi = t // (h * w), (t // w) % h, t % w
        mult = torch.cat([bands[0][fi], bands[1][hi], bands[2][wi]])
        z = torch.view_as_complex(x[t].double().reshape(x.size(1), c, 2).contiguous()) * mult
        out[t] = torch.view_as_real(z).flatten(1)
    return out


def test_rope_matches_the_rotary_definition_and_passes_padding_through():
    freqs = rope_freqs()
    x = torch.randn(2, 3 * 4 * 5 + 7, 4, 128).bfloat16()
    grids = torch.tensor([[3, 4, 5], [2, 4, 5]])
    out = rope.rope_apply(x, grids, freqs)
    assert out.dtype == torch.float32 and out.shape == x.shape
    for i, grid in enumerate(grids.tolist()):
        n = math.prod(grid)
        expect = rotary_by_definition(x[i, :n], grid, freqs)
        assert (out[i, :n].double() - expect).abs().max() < 1e-5
        assert torch.equal(out[i, n:], x[i, n:].float())  # tokens past the grid: unchanged
    assert rope.rope_apply(x, grids, freqs).data_ptr() != out.data_ptr()  # cached tables, fresh output


def test_rope_sequence_parallel_slices_join_to_the_whole(monkeypatch):
    import torch.distributed as dist

    freqs, grid = rope_freqs(), torch.tensor([[3, 4, 5]])  # 60 tokens, padded to 2 × 32
    x = torch.randn(1, 64, 4, 128).bfloat16()
    whole = rope.rope_apply(x, grid, freqs)
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    parts = []
    for rank in (0, 1):
        monkeypatch.setattr(dist, "get_rank", lambda rank=rank: rank)
        parts.append(rope.sequence_parallel_rope_apply(x[:, rank * 32 : (rank + 1) * 32], grid, freqs))
    joined = torch.cat(parts, dim=1)
    assert torch.allclose(joined, whole, atol=1e-6, rtol=0)
    assert torch.equal(joined[:, 60:], x[:, 60:].float())  # upstream pads the table with 1: identity


def load_upstream_rope():
    for name, sub in (("wan", "wan"), ("wan.modules", "wan/modules"), ("wan.distributed", "wan/distributed")):
        if name not in sys.modules or not hasattr(sys.modules[name], "__path__"):
            module = types.ModuleType(name)
            module.__path__ = [str(WAN22 / sub)]
            sys.modules[name] = module
    import wan.modules.model as model

    return model


@needs_wan22("diffusers")  # wan/modules/model.py imports diffusers' ModelMixin
def test_rope_agrees_with_upstream_to_the_bf16_attention_inputs():
    model = load_upstream_rope()
    d = 128
    freqs = torch.cat(
        [
            model.rope_params(1024, d - 4 * (d // 6)),
            model.rope_params(1024, 2 * (d // 6)),
            model.rope_params(1024, 2 * (d // 6)),
        ],
        dim=1,
    )
    x = torch.randn(1, 5 * 6 * 8 + 3, 8, d).bfloat16()
    grid = torch.tensor([[5, 6, 8]])
    ours, theirs = rope.rope_apply(x, grid, freqs), model.rope_apply(x, grid, freqs)
    assert ours.dtype == theirs.dtype and (ours - theirs).abs().max() < 1e-5
    # what attention receives after its cast to bf16: float32 vs float64 rounding flips at most a few values
    assert (ours.bfloat16() != theirs.bfloat16()).float().mean() < 1e-3


# ---- face motion cache -------------------------------------------------------------------------------------------


class TinyAnimate(torch.nn.Module):
    """The parts of WanAnimateModel that after_patch_embedding touches, with a counting motion encoder."""

    def __init__(self):
        super().__init__()
        self.pose_patch_embedding = torch.nn.Conv3d(4, 8, (1, 2, 2), stride=(1, 2, 2))
        self.encoded_frames = 0
        self.motion_encoder = types.SimpleNamespace(get_motion=self.get_motion)
        self.face_encoder = lambda motion: motion[:, :, None, :].repeat(1, 1, 2, 1)

    def get_motion(self, faces):
        self.encoded_frames += faces.shape[0]
        return faces.mean(dim=(2, 3))


def by_definition(self, x, pose_latents, face_pixel_values):
    """What after_patch_embedding computes: pose patches added to every latent frame after the reference one;
    motion features of every face crop, through the face encoder, behind one zero (reference) frame."""
    for x_, pose in zip(x, pose_latents):
        x_[:, :, 1:] += self.pose_patch_embedding(pose.unsqueeze(0))
    b, c, t, h, w = face_pixel_values.shape
    frames = face_pixel_values.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    motion = self.face_encoder(self.motion_encoder.get_motion(frames).reshape(b, t, -1))
    return x, torch.cat([torch.zeros_like(motion[:, :1]), motion], dim=1)


def upstream_after_patch_embedding():
    """Upstream's own method, compiled from the clone's source."""
    from einops import rearrange

    source = WAN22 / "wan" / "modules" / "animate" / "model_animate.py"
    text = source.read_text()
    node = next(
        n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.FunctionDef) and n.name == "after_patch_embedding"
    )
    namespace = {"math": math, "torch": torch, "rearrange": rearrange, "List": list}
    exec(compile(textwrap.dedent(ast.get_source_segment(text, node)), str(source), "exec"), namespace)  # noqa: S102
    return namespace["after_patch_embedding"]


REFERENCES = [
    pytest.param(lambda: by_definition, id="definition"),
    pytest.param(upstream_after_patch_embedding, id="upstream", marks=needs_wan22("einops")),
]


@pytest.mark.parametrize("reference", REFERENCES)
def test_motion_cache_gives_the_same_result_and_encodes_each_face_video_once(reference):
    upstream = reference()
    cached = launcher._cached_motion(upstream)
    model = TinyAnimate()
    face, pose = torch.randn(1, 3, 17, 8, 8), [torch.randn(4, 4, 6, 6)]
    uncond = face * 0 - 1
    for step in range(3):
        for video in (face, uncond):
            x_ref, x_ours = [torch.zeros(1, 8, 5, 3, 3)], [torch.zeros(1, 8, 5, 3, 3)]
            ref = upstream(model, x_ref, pose, video)
            before = model.encoded_frames
            ours = cached(model, x_ours, pose, video.clone())  # a new tensor with the same values, as CFG makes it
            assert torch.equal(ours[0][0], ref[0][0]) and torch.equal(ours[1], ref[1])
            assert model.encoded_frames - before == (17 if step == 0 else 0)
    other = torch.randn(1, 3, 17, 8, 8)  # the next clip: new face crops are encoded, the oldest entry dropped
    before = model.encoded_frames
    assert torch.equal(
        cached(model, [torch.zeros(1, 8, 5, 3, 3)], pose, other)[1],
        upstream(model, [torch.zeros(1, 8, 5, 3, 3)], pose, other)[1],
    )
    assert model.encoded_frames - before == 2 * 17
    assert len(model._rav_motion_cache) == launcher.MOTION_CACHE_SIZE


# ---- fa3-fp8 quantization ----------------------------------------------------------------------------------------


def test_fp8_per_head_scales_and_centring():
    x = torch.randn(2, 300, 4, 128, dtype=torch.bfloat16) * torch.tensor([0.01, 1.0, 30.0, 500.0]).view(1, 1, 4, 1)
    q8, scale = launcher.fp8_per_head(x)
    assert q8.dtype == torch.float8_e4m3fn and scale.shape == (2, 4) and scale.dtype == torch.float32
    restored = q8.float() * scale[:, None, :, None]
    amax = x.float().abs().amax(dim=(1, 3))
    assert ((restored - x.float()).abs().amax(dim=(1, 3)) <= amax / 16 + 1e-6).all()  # e4m3: 3 mantissa bits
    assert torch.allclose(q8.float().abs().amax(dim=(1, 3)), torch.full((2, 4), launcher.FP8_MAX))
    k8, k_scale = launcher.fp8_per_head(x + 7.0, centre=True)  # a per-head offset: removed before quantizing
    centred = (k8.float() * k_scale[:, None, :, None]).mean(dim=1)
    assert centred.abs().max() < 0.05 * k_scale.max() * launcher.FP8_MAX
