"""The launcher's fast model loading (upstream/wan/runtime/fastload.py) loads exactly what upstream's own loading
does, on the CPU with the real upstream classes: T5EncoderModel built on the meta device and loaded by assignment from a
memory-mapped file, the VAE and the relighting LoRA through memory-mapped torch.load, the DiT of the tiny
synthetic checkpoint through diffusers' parallel shard loader; and the prefetch order. Timings are GPU work:
scripts/bench_job.py."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from conftest import REPO  # noqa: E402
from upstream_wan import drop_wan_modules, needs_wan22, stub_packages  # noqa: E402

RUNTIME = REPO / "replace_actor_video" / "upstream" / "wan" / "runtime"
sys.path.insert(0, str(REPO / "scripts"))
from synthetic import checkpoint, layout, specs, tensors, tokenizer_files  # noqa: E402


def load(stem: str):
    spec = importlib.util.spec_from_file_location(f"under_test_{stem}", RUNTIME / f"{stem}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


fastload = load("fastload")


@pytest.fixture
def wan_modules(monkeypatch):
    stub_packages(monkeypatch)
    yield importlib.import_module
    drop_wan_modules()


def same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert sa[key].dtype == sb[key].dtype and sa[key].device == sb[key].device, key
        assert torch.equal(sa[key], sb[key]), key


def mapped_from(tensor: torch.Tensor, path: Path) -> bool:
    """True when the tensor's memory lies in a mapping of `path` (/proc/self/maps): loaded by mmap, not copied."""
    address = tensor.data_ptr()
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[5] == str(path):
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if start <= address < end:
                return True
    return False


def small_umt5(t5_module):
    """umt5_xxl's code path (_t5 → T5Encoder) at small dims: the meta build must not care about the size."""

    def umt5_xxl(**kwargs):
        cfg = {
            "vocab_size": 300,
            "dim": 64,
            "dim_attn": 64,
            "dim_ffn": 96,
            "num_heads": 4,
            "encoder_layers": 2,
            "decoder_layers": 2,
            "num_buckets": 32,
            "shared_pos": False,
            "dropout": 0.1,
        }
        cfg.update(**kwargs)
        return t5_module._t5("umt5-xxl", **cfg)

    return umt5_xxl


@needs_wan22()
def test_t5_meta_build_and_mmap_load_equal_upstream(wan_modules, tmp_path, monkeypatch):
    t5 = wan_modules("wan.modules.t5")
    monkeypatch.setattr(t5, "umt5_xxl", small_umt5(t5))
    torch.manual_seed(0)
    reference_model = t5.umt5_xxl(encoder_only=True, return_tokenizer=False, dtype=torch.bfloat16, device="cpu")
    for p in reference_model.parameters():
        p.data.normal_()  # values a random init would not reproduce
    path = tmp_path / layout.T5_FILE
    torch.save(reference_model.state_dict(), path)
    tokenizer_files.write_tokenizer(tmp_path / "umt5", "umt5")
    args = {
        "text_len": 16,
        "dtype": torch.bfloat16,
        "device": torch.device("cpu"),
        "checkpoint_path": str(path),
        "tokenizer_path": str(tmp_path / "umt5"),
    }
    upstream = t5.T5EncoderModel(**args)

    inits = []
    monkeypatch.setattr(torch.nn.init, "normal_", lambda t, *a, **k: inits.append(t.device.type) or t)
    monkeypatch.setattr(t5, "umt5_xxl", fastload.meta_built(t5.umt5_xxl))
    with fastload.mmap_torch_load():
        fast = t5.T5EncoderModel(**args)
    assert set(inits) <= {"meta"}  # no random init of real memory
    same_state(fast.model, upstream.model)
    assert "load_state_dict" not in fast.model.__dict__  # an ordinary module afterwards
    ids = torch.randint(3, 300, (1, 8))
    assert torch.equal(fast.model(ids, torch.ones_like(ids)), upstream.model(ids, torch.ones_like(ids)))
    assert all(mapped_from(p, path) for p in fast.model.parameters())  # the parameters are the mapped file
    assert not any(mapped_from(p, path) for p in upstream.model.parameters())

    broken = {k: v for k, v in reference_model.state_dict().items() if not k.endswith("norm.weight")}
    torch.save(broken, path)
    with pytest.raises(RuntimeError, match="Missing key"), fastload.mmap_torch_load():
        t5.T5EncoderModel(**args)


@needs_wan22()
def test_meta_built_model_left_half_filled_fails_loud(wan_modules):
    t5 = wan_modules("wan.modules.t5")
    model = fastload.meta_built(small_umt5(t5))(encoder_only=True, return_tokenizer=False, dtype=torch.float32)
    with pytest.raises(fastload.MetaLoadError, match="did not fill"):
        model.load_state_dict({}, strict=False)


@needs_wan22()
def test_vae_mmap_load_equals_upstream(wan_modules, tmp_path):
    vae2_1 = wan_modules("wan.modules.vae2_1")
    torch.manual_seed(1)
    path = tmp_path / layout.VAE_FILE
    tensors.save_torch_state_dict(specs.vae_specs(), path)
    upstream = vae2_1.Wan2_1_VAE(vae_pth=str(path), device="cpu")
    with fastload.mmap_torch_load():
        fast = vae2_1.Wan2_1_VAE(vae_pth=str(path), device="cpu")
    same_state(fast.model, upstream.model)
    assert all(mapped_from(p, path) for p in fast.model.parameters())


def test_mmap_only_for_zip_checkpoints(tmp_path):
    path = tmp_path / "legacy.pt"
    torch.save({"w": torch.arange(4.0)}, path, _use_new_zipfile_serialization=False)
    with fastload.mmap_torch_load():  # torch.load(mmap=True) refuses the legacy format: left as it is
        assert torch.equal(torch.load(path)["w"], torch.arange(4.0))
    assert torch.load is not None and not hasattr(torch.load, "__wrapped__")


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    pytest.importorskip("tokenizers", exc_type=ImportError)
    pytest.importorskip("onnx", exc_type=ImportError)
    out = tmp_path_factory.mktemp("ckpt")
    checkpoint.make_checkpoint(out, "tiny", skip_heavy=True)
    return out


@needs_wan22()
def test_dit_parallel_shard_loading_equals_sequential(wan_modules, tiny_ckpt, monkeypatch):
    from diffusers.models import modeling_utils

    model_animate = wan_modules("wan.modules.animate.model_animate")
    assert len(set(json.loads((tiny_ckpt / layout.DIT_INDEX).read_text())["weight_map"].values())) == 2  # shards
    monkeypatch.setattr(modeling_utils, "HF_ENABLE_PARALLEL_LOADING", False)
    sequential = model_animate.WanAnimateModel.from_pretrained(str(tiny_ckpt), torch_dtype=torch.bfloat16)
    monkeypatch.setattr(modeling_utils, "HF_ENABLE_PARALLEL_LOADING", True)  # what the launcher's env var sets
    parallel = model_animate.WanAnimateModel.from_pretrained(str(tiny_ckpt), torch_dtype=torch.bfloat16)
    same_state(parallel, sequential)
    # WanAnimate passes device_map (its GPU): accelerate's dispatch path, here to the CPU
    mapped = model_animate.WanAnimateModel.from_pretrained(
        str(tiny_ckpt), torch_dtype=torch.bfloat16, device_map=torch.device("cpu")
    )
    same_state(mapped, sequential)
    gains = [v for k, v in parallel.state_dict().items() if k.endswith("self_attn.norm_q.weight")]
    assert gains and all(torch.all(g == specs.QK_GAIN) for g in gains)  # the structured weights arrived


@needs_wan22()
def test_relighting_lora_mmap_load_equals_upstream(wan_modules, tiny_ckpt):
    from peft import set_peft_model_state_dict

    model_animate = wan_modules("wan.modules.animate.model_animate")
    animate_utils = wan_modules("wan.modules.animate.animate_utils")

    def with_lora():  # what WanAnimate._configure_model does with use_lora
        model = model_animate.WanAnimateModel.from_pretrained(str(tiny_ckpt), torch_dtype=torch.bfloat16)
        model.add_adapter(animate_utils.get_loraconfig(transformer=model, rank=128, alpha=128))
        set_peft_model_state_dict(model, torch.load(str(tiny_ckpt / layout.LORA_FILE))["state_dict"])
        return model

    upstream = with_lora()
    with fastload.mmap_torch_load():
        fast = with_lora()
    lora_keys = [k for k in upstream.state_dict() if "lora_" in k]
    assert lora_keys
    for key in lora_keys:
        assert torch.equal(fast.state_dict()[key], upstream.state_dict()[key]), key


def test_prefetch_follows_upstream_load_order(tmp_path):
    names = [
        layout.T5_FILE,
        layout.CLIP_FILE,
        layout.VAE_FILE,
        "diffusion_pytorch_model-00002-of-00002.safetensors",
        "diffusion_pytorch_model-00001-of-00002.safetensors",
        layout.LORA_FILE,
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"x" * 10)
    files = [Path(p).name for p in fastload.checkpoint_files(str(tmp_path), relighting=True)]
    assert files == [
        layout.T5_FILE,
        layout.CLIP_FILE,
        layout.VAE_FILE,
        "diffusion_pytorch_model-00001-of-00002.safetensors",
        "diffusion_pytorch_model-00002-of-00002.safetensors",
        layout.LORA_FILE,
    ]
    assert layout.LORA_FILE not in [Path(p).name for p in fastload.checkpoint_files(str(tmp_path))]
    thread = fastload.prefetch(fastload.checkpoint_files(str(tmp_path)))
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert fastload.prefetch([]) is None


def test_pipeline_prefetches_the_checkpoint_while_it_preprocesses(tmp_path, monkeypatch, capsys):
    import io

    from replace_actor_video.core.rundir import RunContext
    from replace_actor_video.stages import generate

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    for name in (layout.T5_FILE, layout.VAE_FILE, layout.LORA_FILE):
        (ckpt / name).write_bytes(b"x" * 1000)
    opts = generate.GenerateOptions(ckpt_dir=str(ckpt), replace=True, use_relighting_lora=True)
    echo = io.StringIO()
    asked = []
    monkeypatch.setattr(generate.wan_fastload, "prefetch", lambda files: asked.append(files))
    generate.prefetch_checkpoint(opts, RunContext(run_dir=tmp_path / "run", echo=echo))
    assert [Path(f).name for f in asked[0]] == [layout.T5_FILE, layout.VAE_FILE, layout.LORA_FILE]
    assert "into the page cache while earlier steps run" in echo.getvalue()
    asked.clear()
    monkeypatch.setenv("RAV_FASTLOAD", "0")
    generate.prefetch_checkpoint(opts, RunContext(run_dir=tmp_path / "run", echo=echo))
    generate.prefetch_checkpoint(opts, RunContext(run_dir=tmp_path / "run", echo=echo, dry_run=True))
    assert not asked
    pipeline_source = (REPO / "replace_actor_video" / "pipeline" / "run.py").read_text()
    assert pipeline_source.index("prefetch_checkpoint") < pipeline_source.index("preprocess.run(")
