"""Memory profiles on the CPU: the streamed DiT (upstream/wan/runtime/memory.py) computes exactly what the resident
one does, on upstream's own WanAnimateModel at small dims (low: every block streamed; balanced: some kept, chosen from
a budget; after the DiT was evicted for the VAE; with torch.compile of each block); a forward that bypasses the
streamed blocks is caught (the statements it relies on in upstream's source are patch sites: tests/test_patch_sites.py
refuses a clone without them); and the generation stage resolves --memory_profile auto from the free GPU memory and
refuses what cannot work, before anything runs. GPU timings and peaks: scripts/bench_memory.py (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import importlib.util
import sys
import types

import pytest
from conftest import REPO, run_cli
from upstream_wan import drop_wan_modules, needs_wan22, stub_packages

torch = pytest.importorskip("torch")

RUNTIME = REPO / "replace_actor_video" / "upstream" / "wan" / "runtime"


def load(stem: str):
    spec = importlib.util.spec_from_file_location(f"under_test_{stem}", RUNTIME / f"{stem}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


memory = load("memory")
DIMS = {"dim": 64, "ffn_dim": 96, "num_heads": 4, "num_layers": 10, "text_dim": 32, "freq_dim": 32, "text_len": 16}


@pytest.fixture
def upstream_dit(monkeypatch):
    """Upstream's WanAnimateModel (small dims, float32, seeded) and the inputs generate() gives it, with the
    launcher's SDPA attention at upstream's call sites (flash_attn is not installed here)."""
    stub_packages(monkeypatch)
    import wan.modules.animate.model_animate as model_animate

    launcher = load("launcher")
    launcher.install_attention("sdpa")
    torch.manual_seed(0)
    model = model_animate.WanAnimateModel(**DIMS).eval().requires_grad_(False)
    with torch.no_grad():
        for param in model.parameters():  # upstream zeroes the head: give every weight a value
            param.normal_(0, 0.05)
    frames, h, w = 1, 8, 8  # one frame: the motion encoder (512×512 crops) dominates a CPU forward
    lat_t = frames // 4 + 1
    g = torch.Generator().manual_seed(1)
    inputs = dict(
        x=[torch.randn(16, lat_t + 1, h, w, generator=g)],
        t=torch.tensor([500.0]),
        clip_fea=torch.randn(1, 257, 1280, generator=g),
        context=[torch.randn(6, DIMS["text_dim"], generator=g)],
        seq_len=(lat_t + 1) * (h // 2) * (w // 2),
        y=[torch.randn(20, lat_t + 1, h, w, generator=g)],
        pose_latents=torch.randn(1, 16, lat_t, h, w, generator=g),
        face_pixel_values=torch.randn(1, 3, frames, 512, 512, generator=g),
    )
    yield model_animate, model, inputs
    launcher.uninstall_motion_cache()
    drop_wan_modules()


def forward(model, inputs):
    with torch.no_grad():
        return model(**inputs)[0].clone()


def test_streamed_forward_equals_resident_bit_for_bit(upstream_dit):
    _, model, inputs = upstream_dit
    resident = forward(model, inputs)
    logs = []
    streamer = memory.DiTStreamer(model, "cpu", resident=0, log=logs.append)
    assert isinstance(model.blocks, memory.StreamedBlocks) and len(list(model.blocks)) == DIMS["num_layers"]
    streamed = forward(model, inputs)
    assert torch.equal(streamed, resident)
    # between forwards every streamed block reads its own CPU copy again (nothing left in the slots)
    for block, group in zip(torch.nn.ModuleList.__iter__(model.blocks), streamer.blocks):
        assert block.ffn[0].weight.untyped_storage().data_ptr() == group.cpu.untyped_storage().data_ptr()
    assert streamer.forwards == 1 and "DiT weights in CPU memory" in logs[0]
    streamer.evict()  # as before the VAE runs
    assert torch.equal(forward(model, inputs), resident)


def test_balanced_keeps_what_fits_and_still_computes_the_same(upstream_dit):
    _, model, inputs = upstream_dit
    resident = forward(model, inputs)
    block_bytes = max(sum(t.numel() * t.element_size() for t in b.parameters()) for b in model.blocks)
    logs = []
    streamer = memory.DiTStreamer(
        model, "cpu", resident="fit", budget=memory.MARGIN + int(3.6 * block_bytes), log=logs.append
    )
    assert torch.equal(forward(model, inputs), resident)  # the first forward streams everything and measures
    assert streamer.resident == memory.spread(10, 3) == {0, 3, 6}
    assert "balanced keeps 3 of 10 DiT blocks on the GPU" in logs[-1]
    assert torch.equal(forward(model, inputs), resident)
    assert set(streamer.gpu) == {0, 3, 6}  # kept between forwards
    streamer.evict()
    assert not streamer.gpu and torch.equal(forward(model, inputs), resident)


def test_streaming_works_under_torch_compile(upstream_dit):
    _, model, inputs = upstream_dit
    eager = forward(model, inputs)
    memory.DiTStreamer(model, "cpu", resident=2, log=lambda line: None)
    for block in torch.nn.ModuleList.__iter__(model.blocks):
        block.compile(backend="aot_eager")  # what --compile does (Inductor on the GPU); the same graph capture
    first, second = forward(model, inputs), forward(model, inputs)
    assert torch.allclose(first, eager, atol=1e-5, rtol=0) and torch.equal(first, second)


def test_a_fault_in_streaming_is_caught(upstream_dit, monkeypatch):
    """The equality check can fail: a streamer that hands a block the wrong weights changes the output."""
    _, model, inputs = upstream_dit
    resident = forward(model, inputs)
    streamer = memory.DiTStreamer(model, "cpu", resident=0, log=lambda line: None)
    original = streamer._copy

    def stale(group, flat):  # block 3 gets block 2's weights
        return original(streamer.blocks[2] if group is streamer.blocks[3] else group, flat)

    monkeypatch.setattr(streamer, "_copy", stale)
    assert not torch.equal(forward(model, inputs), resident)


def test_place_moves_clip_and_vae_only_for_their_calls_and_evicts_the_dit(upstream_dit):
    """What the launcher does once WanAnimate is built (memory.place): the DiT streamed; CLIP's visual and the
    VAE's encode/decode run with their weights on the device and the DiT off it; the DiT computes the same after."""
    _, model, inputs = upstream_dit
    resident = forward(model, inputs)
    seen = []

    class Part:
        def __init__(self, name):
            self.model, self.name = torch.nn.Linear(2, 2), name

        def call(self, *args):
            seen.append((self.name, streamer.rest_gpu is None and not streamer.gpu))  # the DiT is off the GPU
            return args

    clip, vae = Part("clip"), Part("vae")
    clip.visual, vae.encode, vae.decode = clip.call, vae.call, vae.call
    animate = types.SimpleNamespace(device=torch.device("cpu"), noise_model=model, clip=clip, vae=vae)
    streamer = memory.place(animate, "balanced", log=lambda line: None)
    assert torch.equal(forward(model, inputs), resident) and streamer.rest_gpu is not None
    animate.clip.visual("image")
    animate.vae.encode(["video"])
    animate.vae.decode(["latents"])
    assert seen == [("clip", True), ("vae", True), ("vae", True)]
    assert torch.equal(forward(model, inputs), resident)


def test_wrapped_init_builds_the_dit_in_cpu_memory_and_puts_other_hooks_back(upstream_dit):
    """wrap_init() (what the launcher installs as WanAnimate.__init__): WanAnimate's `from_pretrained(...,
    device_map=self.device)` loads into CPU memory instead, then the DiT is placed; a wrapper another hook put on
    from_pretrained (the launcher's timing) is used and restored."""
    model_animate, model, _ = upstream_dit
    asked = []

    class Dit(model_animate.WanAnimateModel):
        pass

    def timed_loader(klass, *args, **kwargs):  # stands for timing.py's wrapper
        asked.append(kwargs.get("device_map"))
        return model

    Dit.from_pretrained = classmethod(timed_loader)
    part = types.SimpleNamespace(
        model=torch.nn.Linear(2, 2), visual=lambda *a: a, encode=lambda *a: a, decode=lambda *a: a
    )

    class WanAnimate:
        def __init__(self, checkpoint_dir):
            self.device = torch.device("cpu")
            self.clip, self.vae = part, types.SimpleNamespace(**vars(part))
            self.noise_model = Dit.from_pretrained(checkpoint_dir, device_map=self.device)

    logs = []
    upstream_init = WanAnimate.__init__
    WanAnimate.__init__ = memory.wrap_init(upstream_init, Dit, "low", logs.append)
    assert WanAnimate.__init__.__wrapped__ is upstream_init  # the launcher's verify_patches sees through it
    built = WanAnimate("ckpt")
    assert asked == ["cpu"] and isinstance(built.noise_model.blocks, memory.StreamedBlocks)
    assert Dit.__dict__["from_pretrained"].__func__ is timed_loader  # the other hook's wrapper is back
    assert any("profile low" in line for line in logs)


def test_a_forward_that_bypasses_the_streamed_blocks_is_caught(upstream_dit):
    _, model, _ = upstream_dit
    streamer = memory.DiTStreamer(model, "cpu", log=lambda line: None)
    streamer.active = True  # a forward that reaches the blocks some other way than iterating model.blocks
    with pytest.raises(memory.MemoryProfileError, match="ran 0 of 10 blocks"):
        streamer.end()


def test_spread_keeps_blocks_evenly():
    assert memory.spread(40, 0) == set()
    assert memory.spread(40, 4) == {0, 10, 20, 30}
    assert memory.spread(40, 40) == set(range(40))


# ---- the stage ---------------------------------------------------------------------------------------------------

from replace_actor_video.core.errors import UserError  # noqa: E402
from replace_actor_video.core.gpu import Gpu  # noqa: E402
from replace_actor_video.stages import generate  # noqa: E402
from replace_actor_video.upstream.wan import generate as wan_generate  # noqa: E402


@pytest.mark.parametrize(
    "free_gib,width,height,profile",
    [
        (139, 1280, 720, "full"),
        (78, 1280, 720, "full"),
        (47, 1280, 720, "low"),
        (31, 1280, 720, "low"),
        (23, 1280, 720, "low"),
        (47, 832, 480, "full"),
        (23, 832, 480, "low"),
        (15, 832, 480, "low"),
    ],
)
def test_auto_profile_from_free_memory(free_gib, width, height, profile):
    gpu = Gpu(0, "GPU", free_gib * 1024 + 1024, free_gib * 1024)
    assert generate.choose_memory_profile("auto", [gpu], width=width, height=height, frame_num=77)[0] == profile


def test_memory_profile_reaches_the_launcher_and_low_runs_t5_on_the_cpu(media, fake_wan22, fake_ckpt, tmp_path):
    pre = run_cli(
        "run_preprocessing.py",
        "--video_path",
        media["dance"],
        "--refer_path",
        media["ref"],
        "--resolution",
        "320x240",
        "--save_path",
        tmp_path / "pp",
        "--wan22_dir",
        fake_wan22,
        "--ckpt_dir",
        fake_ckpt,
        cwd=tmp_path,
    )  # the dry run checks the preprocessing folder as the real run would
    assert pre.returncode == 0, pre.stderr
    res = run_cli(
        "run_generation.py",
        "--src_root_path",
        tmp_path / "pp",
        "--memory_profile",
        "low",
        "--dry_run",
        "--wan22_dir",
        fake_wan22,
        "--ckpt_dir",
        fake_ckpt,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert "--memory_profile low" in res.stdout and "--t5_cpu" in res.stdout


@pytest.mark.parametrize(
    "values,message",
    [
        ({"memory_profile": "low", "fp8": True}, "--fp8 with --memory_profile low"),
        ({"memory_profile": "balanced", "multi_gpu": True}, "--memory_profile balanced is for one GPU"),
    ],
)
def test_memory_profile_refuses_what_cannot_work(values, message):
    with pytest.raises(UserError, match=message):
        wan_generate.validate(wan_generate.GenerateOptions(**values))


def test_run_generation_help_lists_the_new_options(tmp_path):
    res = run_cli("run_generation.py", "--help", cwd=tmp_path)
    assert res.returncode == 0 and "--color_match" in res.stdout and "--memory_profile" in res.stdout


@needs_wan22()
def test_bench_memory_runs_end_to_end_at_tiny_dims(tmp_path):
    """scripts/bench_memory.py's rows, report and budget on the CPU (the GPU run measures; this checks the script)."""
    import json
    import subprocess

    out = tmp_path / "bench"
    res = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "bench_memory.py"),
            "--tiny",
            "--device",
            "cpu",
            "--caps",
            "none",
            "--profiles",
            "full,low,balanced",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "expected ~" in res.stdout  # the time budget is printed up front
    rows = json.loads((out / "bench_memory.json").read_text())["rows"]
    assert [(r["profile"], r["cap_gib"]) for r in rows] == [("full", "none"), ("low", "none"), ("balanced", "none")]
    assert all(r["s_per_forward"] > 0 for r in rows) and rows[1]["resident_blocks"] == 0
    assert rows[2]["resident_blocks"] == 10  # no cap: every block fits
    assert "| low | none | tiny |" in (out / "bench_memory.md").read_text()
    skipped = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "bench_memory.py"),
            "--tiny",
            "--device",
            "cpu",
            "--caps",
            "none",
            "--profiles",
            "low",
            "--budget_s",
            "0",
            "--out",
            str(tmp_path / "b2"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert (
        skipped.returncode == 0
        and "skipped" in json.loads((tmp_path / "b2" / "bench_memory.json").read_text())["rows"][0]
    )
