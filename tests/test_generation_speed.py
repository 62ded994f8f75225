"""Generation speed options on the CPU: the launcher's attention-route choice and arguments, LoRA key mapping
and merge math, the fast preset, the automatic T5 offload, and the argv contract with the generate.py mirror.
The GPU side (kernels, timings) is scripts/bench_generation.py (docs/PERFORMANCE.md)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import REPO, STANDINS, locations, run_cli

from replace_actor_video.core.errors import UserError
from replace_actor_video.core.gpu import Gpu
from replace_actor_video.core.options import build, to_argv
from replace_actor_video.stages import generate
from replace_actor_video.upstream.wan import generate as wan_generate
from replace_actor_video.upstream.wan import mirror_generate as gen_mirror
from replace_actor_video.upstream.wan.runtime import lora

LAUNCHER = REPO / "replace_actor_video" / "upstream" / "wan" / "runtime" / "launcher.py"
WAN22 = Path(os.environ.get("WAN22_DIR", REPO / "Wan2.2"))


def load_launcher():
    """The launcher as the GPU machine runs it: a standalone file, imported by path."""
    spec = importlib.util.spec_from_file_location("wan_launcher_under_test", LAUNCHER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


launcher = load_launcher()


# ---- attention route ------------------------------------------------------------------------------------------


def importable(*names):
    return lambda module: module in names


@pytest.mark.parametrize(
    "requested,modules,route",
    [
        ("auto", (), "cudnn"),
        ("auto", ("flash_attn",), "cudnn"),  # FA2 is slower than cuDNN SDPA on Hopper: auto does not pick it
        ("auto", ("flash_attn_interface",), "fa3"),
        ("auto", ("flash_attn", "flash_attn_interface", "sageattention"), "fa3"),  # lossless only
        ("cudnn", (), "cudnn"),
        ("sdpa", (), "sdpa"),
        ("flash", ("flash_attn",), "flash"),
        ("fa3", ("flash_attn_interface",), "fa3"),
        ("sage", ("sageattention",), "sage"),
        ("fast", (), "cudnn"),  # nothing lossy importable: fast is the lossless route
        ("fast", ("flash_attn_interface",), "fa3-fp8"),
        ("fa3-fp8", ("flash_attn_interface",), "fa3-fp8"),
    ],
)
def test_attention_route_choice(requested, modules, route):
    assert launcher.choose_attention(requested, importable(*modules)) == route


@pytest.mark.parametrize(
    "requested,missing",
    [
        ("flash", "flash_attn"),
        ("fa3", "flash_attn_interface"),
        ("fa3-fp8", "flash_attn_interface"),
        ("sage", "sageattention"),
    ],
)
def test_attention_route_without_its_package_says_what_is_missing(requested, missing):
    with pytest.raises(launcher.LauncherError, match=f"needs the {missing} module.*--attention auto"):
        launcher.choose_attention(requested, importable("flash_attn" if requested != "flash" else "x"))


def test_quantized_routes_are_marked_lossy():
    assert set(launcher.LOSSY_ROUTES) == {"sage", "fa3-fp8"}
    assert set(launcher.ROUTES) == set(
        wan_generate.GenerateOptions.__dataclass_fields__["attention"].metadata["option"].choices
    )


def test_launcher_arguments():
    own, upstream = launcher._split_argv(
        [
            "--wan22_dir",
            "/w",
            "--lora",
            "/a.safetensors:0.5",
            "--lora",
            "/b.pt",
            "--compile",
            "--fp8",
            "--vae_bf16",
            "--attention",
            "fa3",
            "--",
            "--task",
            "animate-14B",
        ]
    )
    args = launcher.build_parser().parse_args(own)
    assert (args.lora, args.compile, args.fp8, args.vae_bf16, args.attention) == (
        ["/a.safetensors:0.5", "/b.pt"],
        True,
        True,
        True,
        "fa3",
    )
    assert upstream == ["--task", "animate-14B"]
    with pytest.raises(SystemExit):
        launcher._split_argv(["--wan22_dir", "/w"])


def test_model_options_are_checked_before_anything_loads(tmp_path):
    with pytest.raises(launcher.LauncherError, match="single-GPU"):
        launcher.check_model_options(fp8=False, compile_=True, world_size=2)
    if importlib.util.find_spec("torchao") is None:
        with pytest.raises(launcher.LauncherError, match="--fp8 needs torchao"):
            launcher.check_model_options(fp8=True, compile_=False, world_size=1)
    with pytest.raises(launcher.LauncherError, match="is not a file"):
        launcher.parse_loras([str(tmp_path / "missing.safetensors:1.0")])
    (tmp_path / "x.safetensors").write_bytes(b"")
    assert launcher.parse_loras([f"{tmp_path / 'x.safetensors'}:0.25"]) == [(str(tmp_path / "x.safetensors"), 0.25)]


# ---- LoRA: arguments and key mapping (names only, no torch) ----------------------------------------------------


@pytest.mark.parametrize(
    "text,expect",
    [
        ("a.safetensors", ("a.safetensors", 1.0)),
        ("a.safetensors:0.8", ("a.safetensors", 0.8)),
        ("/x/y.safetensors:-1", ("/x/y.safetensors", -1.0)),
        (r"C:\loras\l.safetensors", (r"C:\loras\l.safetensors", 1.0)),
        (r"C:\loras\l.safetensors:1.2", (r"C:\loras\l.safetensors", 1.2)),
        ("dir:with:colons/l.safetensors", ("dir:with:colons/l.safetensors", 1.0)),
    ],
)
def test_lora_argument(text, expect):
    assert lora.parse_lora_arg(text) == expect


def official_names(num_blocks: int = 2) -> list[str]:
    """Module names of WanAnimateModel (checked against the real class in test_names_match_the_official_model)."""
    names = [
        "",
        "patch_embedding",
        "pose_patch_embedding",
        "text_embedding",
        "text_embedding.0",
        "text_embedding.2",
        "time_embedding",
        "time_embedding.0",
        "time_embedding.2",
        "time_projection",
        "time_projection.1",
        "blocks",
        "head",
        "head.norm",
        "head.head",
        "img_emb",
        "img_emb.proj",
        "img_emb.proj.0",
        "img_emb.proj.1",
        "img_emb.proj.3",
        "img_emb.proj.4",
    ]
    for i in range(num_blocks):
        b = f"blocks.{i}"
        names += [
            b,
            f"{b}.norm1",
            f"{b}.norm2",
            f"{b}.norm3",
            f"{b}.self_attn",
            f"{b}.cross_attn",
            f"{b}.ffn",
            f"{b}.ffn.0",
            f"{b}.ffn.2",
        ]
        names += [f"{b}.self_attn.{m}" for m in ("q", "k", "v", "o", "norm_q", "norm_k")]
        names += [
            f"{b}.cross_attn.{m}" for m in ("q", "k", "v", "o", "norm_q", "norm_k", "k_img", "v_img", "norm_k_img")
        ]
    return names


@pytest.mark.parametrize(
    "down,up,alpha,module",
    [
        # LightX2V / ComfyUI / Kijai files
        (
            "diffusion_model.blocks.1.self_attn.q.lora_down.weight",
            "diffusion_model.blocks.1.self_attn.q.lora_up.weight",
            "diffusion_model.blocks.1.self_attn.q.alpha",
            "blocks.1.self_attn.q",
        ),
        # kohya / musubi-tuner
        (
            "lora_unet_blocks_0_cross_attn_k_img.lora_down.weight",
            "lora_unet_blocks_0_cross_attn_k_img.lora_up.weight",
            "lora_unet_blocks_0_cross_attn_k_img.alpha",
            "blocks.0.cross_attn.k_img",
        ),
        # diffusers (WanTransformer3DModel names)
        (
            "transformer.blocks.0.attn2.add_v_proj.lora_A.weight",
            "transformer.blocks.0.attn2.add_v_proj.lora_B.weight",
            None,
            "blocks.0.cross_attn.v_img",
        ),
        (
            "transformer.blocks.1.ffn.net.0.proj.lora_A.weight",
            "transformer.blocks.1.ffn.net.0.proj.lora_B.weight",
            None,
            "blocks.1.ffn.0",
        ),
        (
            "transformer.blocks.1.attn1.to_out.0.lora_A.weight",
            "transformer.blocks.1.attn1.to_out.0.lora_B.weight",
            None,
            "blocks.1.self_attn.o",
        ),
        (
            "transformer.condition_embedder.time_proj.lora_A.weight",
            "transformer.condition_embedder.time_proj.lora_B.weight",
            None,
            "time_projection.1",
        ),
        ("transformer.proj_out.lora_A.weight", "transformer.proj_out.lora_B.weight", None, "head.head"),
        # PEFT with the adapter name (the relighting LoRA's spelling)
        (
            "base_model.model.blocks.0.ffn.2.lora_A.default.weight",
            "base_model.model.blocks.0.ffn.2.lora_B.default.weight",
            None,
            "blocks.0.ffn.2",
        ),
        # official names without a prefix
        ("img_emb.proj.1.lora_A.weight", "img_emb.proj.1.lora_B.weight", None, "img_emb.proj.1"),
    ],
)
def test_lora_key_formats_map_onto_official_modules(down, up, alpha, module):
    keys = [down, up] + ([alpha] if alpha else [])
    plan = lora.plan_merge(keys, official_names())
    assert plan.pairs == [lora.PairPatch(module, down, up, alpha, None)]
    assert not plan.unmatched and not plan.diffs


def test_lora_deltas_and_unmatched_keys():
    keys = [
        "diffusion_model.blocks.0.norm3.diff",
        "diffusion_model.blocks.0.norm3.diff_b",
        "diffusion_model.blocks.1.diff_m",
        "diffusion_model.head.head.diff_b",
        "diffusion_model.blocks.0.modulation.diff",  # ComfyUI's spelling of a parameter delta
        "transformer.blocks.0.attn1.to_q.lora_B.bias",  # diffusers' spelling of a bias delta
        "diffusion_model.blocks.7.self_attn.q.lora_down.weight",
        "diffusion_model.blocks.7.self_attn.q.lora_up.weight",
        "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight",
        "blocks.0.self_attn.q.weight",
    ]
    plan = lora.plan_merge(keys, official_names(), ["blocks.0.modulation", "blocks.1.modulation"])
    assert {(d.module, d.param) for d in plan.diffs} == {
        ("blocks.0.norm3", "weight"),
        ("blocks.0.norm3", "bias"),
        ("blocks.1", "modulation"),
        ("head.head", "bias"),
        ("blocks.0", "modulation"),
        ("blocks.0.self_attn.q", "bias"),
    }
    assert len(plan.unmatched) == 3  # a block this model lacks, a text-encoder key
    assert plan.ignored == ["blocks.0.self_attn.q.weight"]
    assert lora.lora_key_count(keys) == 9


@pytest.mark.parametrize(
    "keys,message",
    [
        (["blocks.0.self_attn.q.lora_down.weight"], "incomplete"),
        (
            [
                "blocks.0.ffn.0.lora_down.weight",
                "blocks.0.ffn.0.lora_up.weight",
                "lora_unet_blocks_0_ffn_0.lora_up.weight",
            ],
            "patch the same weight",
        ),
        (["blocks.0.ffn.0.lora_mid.weight"], "not supported"),
        (["blocks.0.ffn.0.dora_scale"], "not supported"),
    ],
)
def test_lora_plan_refuses_broken_files(keys, message):
    with pytest.raises(lora.LoraError, match=message):
        lora.plan_merge(keys, official_names())


def test_diffusers_aliases_cover_every_mapped_official_name():
    aliases = lora.module_aliases(official_names(1))
    assert aliases["blocks.0.attn2.norm_added_k"] == "blocks.0.cross_attn.norm_k_img"
    assert aliases["blocks.0.norm2"] == "blocks.0.norm2"  # an official name always means itself
    assert aliases["condition_embedder.image_embedder.ff.net.2"] == "img_emb.proj.3"
    assert aliases["blocks_0_attn1_to_q"] == "blocks.0.self_attn.q"  # onetrainer-style underscores of diffusers


@pytest.mark.skipif(
    not (WAN22 / "wan" / "modules" / "animate" / "model_animate.py").is_file(), reason=f"no Wan2.2 clone at {WAN22}"
)
def test_names_match_the_official_model():
    """Every module name the mapping knows exists in the real WanAnimateModel (built on the meta device)."""
    for module in ("torch", "diffusers", "einops"):
        pytest.importorskip(module, exc_type=ImportError)
    script = textwrap.dedent("""
        import json, os, sys, types
        root = sys.argv[1]
        for name, sub in [("wan", "wan"), ("wan.modules", "wan/modules"),
                          ("wan.modules.animate", "wan/modules/animate"), ("wan.distributed", "wan/distributed")]:
            m = types.ModuleType(name); m.__path__ = [os.path.join(root, sub)]; sys.modules[name] = m
        import torch
        from wan.modules.animate.model_animate import WanAnimateModel
        with torch.device("meta"):
            model = WanAnimateModel(num_layers=2)
        print(json.dumps([[n for n, _ in model.named_modules()], [n for n, _ in model.named_parameters()]]))
    """)
    res = subprocess.run([sys.executable, "-c", script, str(WAN22)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    modules, params = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(official_names(2)) <= set(modules)
    for name in modules:
        other = lora.diffusers_name(name)
        assert other is None or lora.module_aliases(modules)[other] == name
    assert "blocks.1.modulation" in params and "head.modulation" in params


# ---- LoRA: merge math (torch, CPU) ------------------------------------------------------------------------------

torch = importlib.import_module("torch") if importlib.util.find_spec("torch") else None
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


def tiny_wan(dim: int = 16, ffn: int = 24, dtype=None):
    """A module tree with WanAnimateModel's names (two blocks), small enough for exact CPU checks."""
    nn = torch.nn

    class Attn(nn.Module):
        def __init__(self, img=False):
            super().__init__()
            for name in ("q", "k", "v", "o") + (("k_img", "v_img") if img else ()):
                setattr(self, name, nn.Linear(dim, dim))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.self_attn, self.cross_attn = Attn(), Attn(img=True)
            self.norm3 = nn.LayerNorm(dim)
            self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.GELU(approximate="tanh"), nn.Linear(ffn, dim))
            self.modulation = nn.Parameter(torch.randn(1, 6, dim))

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(dim, 4)
            self.modulation = nn.Parameter(torch.randn(1, 2, dim))

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch_embedding = nn.Conv3d(6, dim, kernel_size=(1, 2, 2), stride=(1, 2, 2))
            self.blocks = nn.ModuleList([Block(), Block()])
            self.head = Head()

    torch.manual_seed(0)
    model = Tiny()
    return model.to(dtype) if dtype else model


@needs_torch
@pytest.mark.parametrize("fmt", ["lightx2v", "kohya", "diffusers"])
def test_merged_linear_equals_the_lora_forward(fmt):
    """W' x = W x + weight · (alpha/rank) · up(down(x)) for every key spelling."""
    model = tiny_wan()
    layer = model.blocks[1].cross_attn.k_img
    rank, alpha, weight = 4, 2.0, 0.7
    down, up = torch.randn(rank, 16), torch.randn(16, rank)
    name = {
        "lightx2v": "diffusion_model.blocks.1.cross_attn.k_img",
        "kohya": "lora_unet_blocks_1_cross_attn_k_img",
        "diffusers": "transformer.blocks.1.attn2.add_k_proj",
    }[fmt]
    a, b = (".lora_A.weight", ".lora_B.weight") if fmt == "diffusers" else (".lora_down.weight", ".lora_up.weight")
    sd = {name + a: down, name + b: up, name + ".alpha": torch.tensor(alpha)}
    x = torch.randn(3, 16)
    with torch.no_grad():
        expect = layer(x) + weight * (alpha / rank) * (x @ down.T @ up.T)
    report = lora.merge_state_dict(model, sd, weight)
    assert (report.pairs, report.diffs, report.unmatched) == (1, 0, [])
    with torch.no_grad():
        assert torch.allclose(layer(x), expect, atol=1e-5)


@needs_torch
def test_merge_without_alpha_scales_by_one_and_adds_deltas():
    model = tiny_wan()
    block = model.blocks[0]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    down, up = torch.randn(2, 16), torch.randn(24, 2)
    sd = {
        "diffusion_model.blocks.0.ffn.0.lora_down.weight": down,
        "diffusion_model.blocks.0.ffn.0.lora_up.weight": up,
        "diffusion_model.blocks.0.ffn.0.diff_b": torch.ones(24),
        "diffusion_model.blocks.0.norm3.diff": torch.full((16,), 0.5),
        "diffusion_model.blocks.0.diff_m": torch.ones(6, 16),  # stored without the leading 1
        "diffusion_model.head.modulation.diff": torch.ones(1, 2, 16),
    }
    report = lora.merge_state_dict(model, sd, 2.0)
    assert (report.pairs, report.diffs) == (1, 4)
    assert torch.allclose(block.ffn[0].weight, before["blocks.0.ffn.0.weight"] + 2.0 * up @ down, atol=1e-5)
    assert torch.allclose(block.ffn[0].bias, before["blocks.0.ffn.0.bias"] + 2.0)
    assert torch.allclose(block.norm3.weight, before["blocks.0.norm3.weight"] + 1.0)
    assert torch.allclose(block.modulation, before["blocks.0.modulation"] + 2.0)
    assert torch.allclose(model.head.modulation, before["head.modulation"] + 2.0)
    untouched = [
        k
        for k in before
        if not k.startswith(("blocks.0.ffn.0.", "blocks.0.norm3.weight", "blocks.0.modulation", "head.modulation"))
    ]
    assert all(torch.equal(before[k], model.state_dict()[k]) for k in untouched)


@needs_torch
def test_conv_lora_and_bf16_weights():
    """A LoRA on the Conv3d patch embedding, merged into bf16 weights through float32."""
    model = tiny_wan(dtype=torch.bfloat16)
    conv = model.patch_embedding
    w0 = conv.weight.detach().float().clone()
    down, up = torch.randn(3, 6, 1, 2, 2), torch.randn(16, 3, 1, 1, 1)
    lora.merge_state_dict(model, {"patch_embedding.lora_down.weight": down, "patch_embedding.lora_up.weight": up}, 1.0)
    assert conv.weight.dtype == torch.bfloat16
    expect = w0 + (up.flatten(1) @ down.flatten(1)).reshape(w0.shape)
    assert torch.allclose(conv.weight.float(), expect, rtol=1e-2, atol=1e-2)


@needs_torch
def test_merge_goes_through_a_peft_wrapper():
    """With the relighting LoRA, upstream wraps linears in PEFT layers: patch the wrapped base layer."""
    model = tiny_wan()

    class PeftLike(torch.nn.Module):
        def __init__(self, base):
            super().__init__()
            self.base_layer = base

    base = model.blocks[0].self_attn.q
    model.blocks[0].self_attn.q = PeftLike(base)
    w0 = base.weight.detach().clone()
    down, up = torch.randn(2, 16), torch.randn(16, 2)
    lora.merge_state_dict(
        model, {"blocks.0.self_attn.q.lora_A.weight": down, "blocks.0.self_attn.q.lora_B.weight": up}, 1.0
    )
    assert torch.allclose(base.weight, w0 + up @ down, atol=1e-5)


@needs_torch
@pytest.mark.parametrize(
    "sd,message",
    [
        (
            {"blocks.0.self_attn.q.lora_down.weight": "down8", "blocks.0.self_attn.q.lora_up.weight": "up8"},
            "another model",
        ),
        ({"lora_te_x.lora_down.weight": "down", "lora_te_x.lora_up.weight": "up"}, "no key names a module"),
    ],
)
def test_merge_refuses_loras_for_other_models(sd, message):
    shapes = {"down8": (2, 8), "up8": (8, 2), "down": (2, 16), "up": (16, 2)}
    sd = {k: torch.randn(*shapes[v]) for k, v in sd.items()}
    with pytest.raises(lora.LoraError, match=message):
        lora.merge_state_dict(tiny_wan(), sd, 1.0)


@needs_torch
def test_merge_file_reads_safetensors_and_headers(tmp_path):
    st = pytest.importorskip("safetensors.torch", exc_type=ImportError)
    path = tmp_path / "l.safetensors"
    st.save_file(
        {
            "diffusion_model.blocks.0.self_attn.v.lora_down.weight": torch.randn(2, 16),
            "diffusion_model.blocks.0.self_attn.v.lora_up.weight": torch.zeros(16, 2),
        },
        str(path),
    )
    assert sorted(lora.safetensors_keys(path)) == [
        "diffusion_model.blocks.0.self_attn.v.lora_down.weight",
        "diffusion_model.blocks.0.self_attn.v.lora_up.weight",
    ]
    report = lora.merge_file(tiny_wan(), path, 1.0)
    assert report.pairs == 1 and "merged 1 low-rank pairs" in report.summary()


@needs_torch
def test_compile_blocks_wraps_every_block():
    model = tiny_wan()
    launcher.compile_blocks(model)
    assert all(block._compiled_call_impl is not None for block in model.blocks)


# ---- the launcher end to end on the CPU (a fake Wan2.2 whose WanAnimate builds a tiny torch model) -------------

FAKE_ANIMATE = """
import torch

from .modules.animate.model_animate import WanAnimateModel

class WanAnimate:
    def __init__(self, **kwargs):
        torch.manual_seed(0)
        self.device = torch.device("cpu")
        model = torch.nn.Module()
        model.blocks = torch.nn.ModuleList([torch.nn.Module()])
        model.blocks[0].self_attn = torch.nn.Module()
        model.blocks[0].self_attn.q = torch.nn.Linear(4, 4, bias=False)
        torch.nn.init.zeros_(model.blocks[0].self_attn.q.weight)
        self.clip = None
        self.vae = type("Wan2_1_VAE", (), {"dtype": torch.float})()
        # upstream loads the DiT so; the tiny model above stands for it
        WanAnimateModel.from_pretrained("unused", device_map=self.device)
        self.noise_model = self._configure_model(model=model, use_sp=False, dit_fsdp=False)

    def _configure_model(self, model, use_sp, dit_fsdp):
        return model.eval().requires_grad_(False)

    def prepare_source(self, src_pose_path, src_face_path, src_ref_path):
        return [], [], None

    def prepare_source_for_replace(self, src_bg_path, src_mask_path):
        return [], []

    def get_valid_len(self, real_len, clip_len=81, overlap=1):
        return real_len

    def inputs_padding(self, array, target_len):
        return array

    def generate(self, input_prompt="", n_prompt="", clip_len=77, refert_num=1, replace_flag=False, **kwargs):
        from .modules import attention
        from .modules.animate import model_animate
        from .distributed import sequence_parallel
        w = self.noise_model.blocks[0].self_attn.q.weight
        compiled = self.noise_model.blocks[0]._compiled_call_impl is not None
        print(f"fake: weight_sum={float(w.sum()):.4f} compiled={compiled} "
              f"attention={attention.flash_attention.__name__} "
              f"rope={model_animate.rope_apply.__module__}.{model_animate.rope_apply.__name__},"
              f"{sequence_parallel.rope_apply.__name__} "
              f"motion_cache={hasattr(model_animate.WanAnimateModel.after_patch_embedding, 'rav_upstream')} "
              f"vae={self.vae.dtype}",
              flush=True)
        # upstream's clip loop with the statements the colour match's patch sites name, over no frames
        cond_images, _, _ = self.prepare_source(src_pose_path=None, src_face_path=None, src_ref_path=None)
        cond_images = self.inputs_padding(cond_images, self.get_valid_len(len(cond_images), clip_len,
                                                                          overlap=refert_num))
        if replace_flag:
            self.prepare_source_for_replace(None, None)
        start = 0
        while start + refert_num < len(cond_images):
            out_frames = torch.stack(self.vae.decode([]))
            print(out_frames[0, :, -refert_num:].shape)
            start += clip_len - refert_num
"""
FAKE_GENERATE = """
import wan
from wan.utils.utils import save_video

video = wan.WanAnimate(config=None).generate(input_prompt="")
if video is not None:  # the fake generates nothing to save; upstream saves here
    save_video(video, save_file="out.mp4")
"""


@pytest.fixture
def fake_torch_wan22(tmp_path):
    root = tmp_path / "Wan2.2"
    shutil.copytree(STANDINS / "fake_wan" / "wan", root / "wan")
    (root / "wan" / "animate.py").write_text(FAKE_ANIMATE)
    (root / "generate.py").write_text(FAKE_GENERATE)
    return root


def run_launcher(wan22: Path, *own: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(LAUNCHER), "--wan22_dir", str(wan22), *own, "--"],
        capture_output=True,
        text=True,
        timeout=300,
    )


@needs_torch
def test_launcher_merges_loras_and_compiles_when_the_model_is_built(fake_torch_wan22, tmp_path):
    st = pytest.importorskip("safetensors.torch", exc_type=ImportError)
    path = tmp_path / "one.safetensors"
    st.save_file(
        {
            "diffusion_model.blocks.0.self_attn.q.lora_down.weight": torch.ones(1, 4),
            "diffusion_model.blocks.0.self_attn.q.lora_up.weight": torch.ones(4, 1),
        },
        str(path),
    )
    res = run_launcher(fake_torch_wan22, "--lora", f"{path}:0.5", "--lora", str(path), "--compile", "--vae_bf16")
    assert res.returncode == 0, res.stderr
    assert "fake: weight_sum=24.0000 compiled=True attention=_sdpa_flash_attention" in res.stdout  # 16·(0.5+1)
    assert "rope=rav_rope.rope_apply,sequence_parallel_rope_apply motion_cache=True vae=torch.bfloat16" in res.stdout
    assert "merged 1 low-rank pairs" in res.stdout and "attention route: cudnn (requested auto)" in res.stdout


@needs_torch
def test_launcher_refuses_what_it_cannot_do(fake_torch_wan22, tmp_path):
    res = run_launcher(fake_torch_wan22, "--attention", "sage")
    assert res.returncode != 0 and "needs the sageattention module" in res.stderr
    bad = tmp_path / "other.safetensors"
    pytest.importorskip("safetensors.torch", exc_type=ImportError).save_file(
        {"lora_te_x.lora_down.weight": torch.ones(1, 4), "lora_te_x.lora_up.weight": torch.ones(4, 1)}, str(bad)
    )
    res = run_launcher(fake_torch_wan22, "--lora", str(bad))
    assert res.returncode != 0 and "no key names a module of this model" in res.stderr


# ---- the generation stage -------------------------------------------------------------------------------------


def write_safetensors(path: Path, names: list[str]) -> Path:
    """A valid safetensors file of 1-element float32 tensors, written without torch or numpy."""
    header, offset = {}, 0
    for name in names:
        header[name] = {"dtype": "F32", "shape": [1], "data_offsets": [offset, offset + 4]}
        offset += 4
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * offset)
    return path


def test_lora_option_parses_and_round_trips():
    opts = build(wan_generate.GenerateOptions, {"lora": ["a.safetensors:0.5", "b.safetensors"]})
    assert opts.lora == "a.safetensors:0.5 b.safetensors:1"
    assert build(wan_generate.GenerateOptions, {"lora": to_argv(opts)[1]}).lora == opts.lora
    with pytest.raises(UserError, match="--lora"):
        build(wan_generate.GenerateOptions, {"lora": [" "]})


def test_fast_preset_fills_unset_sampling_and_needs_a_lora():
    opts = wan_generate.GenerateOptions(preset="fast", lora="l.safetensors:1", sample_shift=3.0)
    fast = wan_generate.apply_preset(opts)
    assert (fast.sample_steps, fast.sample_shift, fast.sample_guide_scale) == (4, 3.0, 1.0)
    assert wan_generate.apply_preset(wan_generate.GenerateOptions()) == wan_generate.GenerateOptions()
    with pytest.raises(UserError, match="--preset fast .* --lora"):
        wan_generate.validate(wan_generate.GenerateOptions(preset="fast"))
    with pytest.raises(UserError, match="single-GPU"):
        wan_generate.validate(wan_generate.GenerateOptions(multi_gpu=True, compile=True))


@pytest.mark.parametrize(
    "no_offload,nproc,gpus,offload",
    [
        (False, 1, [], True),  # no nvidia-smi: upstream's default
        (False, 1, [Gpu(0, "NVIDIA H200", 143771)], False),
        (False, 1, [Gpu(0, "NVIDIA H100 80GB HBM3", 81559)], False),
        (False, 1, [Gpu(0, "NVIDIA L40S", 46068)], True),
        (True, 1, [Gpu(0, "NVIDIA L40S", 46068)], False),
        (False, 2, [], False),
    ],
)
def test_t5_offload_only_where_memory_is_short(no_offload, nproc, gpus, offload):
    assert generate.offload_t5(wan_generate.GenerateOptions(no_offload=no_offload), nproc, gpus) is offload


def test_speed_options_reach_the_launcher_and_upstream_still_parses():
    opts = wan_generate.GenerateOptions(
        wan22_dir="/w",
        ckpt_dir="/ck",
        src_root_path="/pp",
        save_file="/o.mp4",
        sample_steps=4,
        sample_guide_scale=1.0,
        sample_shift=5.0,
        seed=5,
        attention="fa3",
        lora="/l/a.safetensors:0.8 /l/b:c.pt:1",
        compile=True,
        fp8=True,
        vae_bf16=True,
        memory_profile="full",
    )
    call = wan_generate.GenerateCall(opts, offload_model=False, nproc=1)
    argv = call.argv("python")
    cut = argv.index("--")
    own = launcher.build_parser().parse_args(argv[2:cut])
    assert own.lora == ["/l/a.safetensors:0.8", "/l/b:c.pt:1"] and own.compile and own.fp8 and own.attention == "fa3"
    assert own.vae_bf16
    assert [lora.parse_lora_arg(a) for a in own.lora] == [("/l/a.safetensors", 0.8), ("/l/b:c.pt", 1.0)]
    args = gen_mirror.build_parser().parse_args(argv[cut + 1 :])
    assert (args.sample_steps, args.sample_guide_scale, args.sample_shift, args.offload_model) == (4, 1.0, 5.0, False)


def test_stage_dry_run_shows_the_fast_preset_and_the_lora(media, fake_wan22, fake_ckpt, tmp_path):
    path = write_safetensors(
        tmp_path / "distill.safetensors",
        [
            "diffusion_model.blocks.0.self_attn.q.lora_down.weight",
            "diffusion_model.blocks.0.self_attn.q.lora_up.weight",
        ],
    )
    loc = ["--wan22_dir", fake_wan22, "--ckpt_dir", fake_ckpt, "--runs_dir", tmp_path / "runs"]
    assert (
        run_cli(
            "run_preprocessing.py",
            "--video_path",
            media["dance"],
            "--refer_path",
            media["ref"],
            "--resolution",
            "320x240",
            *loc,
            cwd=tmp_path,
        ).returncode
        == 0
    )  # ./process_results
    res = run_cli(
        "run_generation.py",
        "--dry-run",
        "--preset",
        "fast",
        "--lora",
        f"{path}:0.8",
        "--compile",
        "--attention",
        "fast",
        "--vae_bf16",
        *loc,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    line = next(line for line in res.stdout.splitlines() if line.startswith("[dry-run]") and "generate.py" in line)
    for needle in (
        "--sample_steps 4",
        "--sample_shift 5.0",
        "--sample_guide_scale 1.0",
        f"--lora {path}:0.8",
        "--compile",
        "--attention fast",
        "--vae_bf16",
    ):
        assert needle in line


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--preset", "fast"], "--preset fast samples 4 steps"),
        (["--lora", "missing.safetensors"], "file not found"),
        (["--lora", "NOTLORA"], "no LoRA weights in it"),
        (["--lora", "BROKEN"], "not a safetensors file"),
        (["--lora", "weights.bin"], "expected one of"),
        (["--compile", "--multi_gpu", "--nproc_per_node", "2"], "single-GPU"),
    ],
)
def test_stage_bad_speed_options_exit_2_with_one_line(media, fake_wan22, fake_ckpt, tmp_path, extra, message):
    names = {
        "NOTLORA": write_safetensors(tmp_path / "full.safetensors", ["blocks.0.self_attn.q.weight"]),
        "BROKEN": tmp_path / "broken.safetensors",
    }
    (tmp_path / "broken.safetensors").write_bytes(b"\xff" * 16)
    (tmp_path / "weights.bin").write_bytes(b"x")
    extra = [str(names.get(a, a)) for a in extra]
    pp = tmp_path / "pp"
    pp.mkdir()
    for name in ("src_pose.mp4", "src_face.mp4"):
        shutil.copy(media["dance"], pp / name)
    shutil.copy(media["ref"], pp / "src_ref.png")
    res = run_cli(
        "run_generation.py",
        "--src_root_path",
        pp,
        "--save_file",
        tmp_path / "o.mp4",
        *extra,
        *locations(fake_wan22, fake_ckpt, tmp_path),
        cwd=tmp_path,
    )
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.mp4").exists()


# ---- the launcher's attention functions and the bench report (CPU) ---------------------------------------------


@needs_torch
def test_sdpa_drop_in_masks_padded_keys_like_the_varlen_kernel():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 5, 2, 8, dtype=torch.bfloat16) for _ in range(3))
    full = launcher._sdpa_flash_attention(q, k, v, k_lens=torch.tensor([5, 5]))
    assert torch.equal(full, launcher._sdpa_flash_attention(q, k, v))  # all keys valid: no mask at all
    padded = launcher._sdpa_flash_attention(q, k, v, k_lens=torch.tensor([5, 3]))
    assert torch.equal(padded[0], full[0])
    only_three = launcher._sdpa_flash_attention(q[1:], k[1:, :3], v[1:, :3])
    assert torch.allclose(padded[1].float(), only_three[0].float(), atol=1e-2)


@needs_torch
def test_bench_report_marks_skipped_routes_and_derives_clip_time():
    spec = importlib.util.spec_from_file_location("bench_generation", REPO / "scripts" / "bench_generation.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    args = bench.parse_args(["--out", "x"])
    parts = {
        "vae_encode_pose_s": 4.0,
        "vae_encode_ref_s": 0.1,
        "vae_encode_reft_s": 4.0,
        "vae_decode_s": 6.0,
        "vae_peak_gib": 21.0,
        "vae_bf16_encode_pose_s": 3.0,
        "vae_bf16_encode_ref_s": 0.1,
        "vae_bf16_encode_reft_s": 3.0,
        "vae_bf16_decode_s": 4.0,
        "vae_bf16_psnr_db": {"encode": 90.0, "decode": 55.0},
        "clip_visual_s": 0.1,
        "clip_peak_gib": 1.5,
        "t5_two_forwards_s": 0.2,
        "t5_peak_gib": 11.5,
        "t5_offload_to_cpu_s": 3.0,
    }
    row = {"s_per_forward": 10.0, "tflops": 654.0, "pct_of_peak": 82.8, "peak_gib": 46.0, "note": "n"}
    report = {
        "env": {"gpu": "G", "torch": "t", "cudnn": 1, "python": "3", "optional_modules": {"torchao": False}},
        "dit": {"params_b": 17.27, "tokens": 75600, "pflop_per_forward": 6.54, "motion_encoder_s": 1.0},
        "parts": parts,
        "routes": {
            "official-fa2": dict(row, s_per_forward=20.0),
            "cudnn": dict(row, vs_official={"max_abs_diff": 0.01, "psnr_db": 60.0}),
            "fast": dict(row, s_per_forward=8.0, vae="bf16"),
            "cudnn+fp8": {"note": "fp8", "skipped": "not available (torchao not importable)"},
        },
    }
    bench.derive(report, args)
    # official: steps × forward + VAE/CLIP; ours also pays the face motion encoder once (1.0 s)
    assert report["routes"]["official-fa2"]["clip_s"] == round(20 * 20.0 + 14.2, 1)
    assert report["routes"]["cudnn"]["clip_s"] == round(20 * 10.0 + 14.2 + 1.0, 1)
    assert report["routes"]["cudnn"]["fast_clip_s"] == round(4 * 10.0 + 14.2 + 1.0, 1)
    assert report["routes"]["fast"]["fast_clip_s"] == round(4 * 8.0 + 10.2 + 1.0, 1)  # with the bf16 VAE
    text = bench.markdown(report, args)
    assert "| cudnn | 10.00 | 654 | 83% | 46.0 | 2.00 | 0.01 | 60.0 | 215.2 | 55.2 | n |" in text
    assert "| cudnn+fp8 | not available (torchao not importable) |" in text
    assert all(line.count("|") == 12 for line in text.splitlines() if line.startswith("| c") or line.startswith("| o"))
