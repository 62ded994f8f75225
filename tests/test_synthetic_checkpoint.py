"""CPU checks of scripts/make_synthetic_checkpoint.py (tiny profile, light parts).

The heavy fixed-shape encoders (umT5 11 GB, CLIP, VAE, SAM2) are never written
here: their state-dict *specs* are compared with the upstream modules built on
the meta device instead. Checks that need the upstream checkout (Wan2.2/, a
gitignored export) or optional packages skip with the reason shown.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "make_synthetic_checkpoint.py"
WAN_ROOT = REPO / "Wan2.2"
PREPROCESS_DIR = WAN_ROOT / "wan" / "modules" / "animate" / "preprocess"

sys.path.insert(0, str(SCRIPT.parent))
from synthetic import checkpoint, layout, onnx_models, tensors
from synthetic import specs as sp


def test_help_needs_only_the_standard_library() -> None:
    code = (
        "import runpy, sys\n"
        f"sys.argv = [{str(SCRIPT)!r}, '--help']\n"
        "try:\n"
        f"    runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "heavy = {'torch', 'numpy', 'tokenizers', 'sam2'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "--profile" in result.stdout and "--skip_heavy" in result.stdout


def test_full_profile_and_fixed_encoders_have_the_real_sizes() -> None:
    def gb(specs: list[sp.TensorSpec]) -> float:
        return sum(s.nbytes for s in specs) / 1e9

    # Real files: DiT 34.5 GB bf16, umT5 encoder 11.4 GB bf16, Wan2.1 VAE 508 MB fp32.
    assert gb(sp.dit_specs(sp.PROFILES["full"])) == pytest.approx(34.55, abs=0.01)
    assert gb(sp.t5_specs()) == pytest.approx(11.36, abs=0.01)
    assert gb(sp.vae_specs()) == pytest.approx(0.508, abs=0.001)
    assert gb(sp.lora_specs(sp.PROFILES["full"])) == pytest.approx(1.44, abs=0.01)
    for specs in (sp.dit_specs(sp.PROFILES["tiny"]), sp.t5_specs(), sp.clip_specs(), sp.vae_specs()):
        names = [s.name for s in specs]
        assert len(names) == len(set(names))


def test_num_layers_must_be_a_multiple_of_five() -> None:
    with pytest.raises(ValueError):
        sp.DitConfig(dim=512, ffn_dim=1024, num_heads=8, num_layers=4, num_shards=1)


# --------------------------------------------------------------------------
# The written tiny checkpoint (light parts only)
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def light_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch", reason="writing tensors needs torch", exc_type=ImportError)
    pytest.importorskip("tokenizers", reason="writing the tokenizers needs tokenizers", exc_type=ImportError)
    out = tmp_path_factory.mktemp("ckpt")
    checkpoint.make_checkpoint(out, "tiny", pose2d_layout="file", seed=0, skip_heavy=True)
    return out


def _safetensors_header(path: Path) -> dict:
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(length))


def test_dit_shards_index_and_config_are_consistent(light_ckpt: Path) -> None:
    cfg = sp.PROFILES["tiny"]
    config = json.loads((light_ckpt / "config.json").read_text())
    assert config["_class_name"] == "WanAnimateModel"
    assert (config["dim"], config["num_layers"], config["num_heads"]) == (cfg.dim, cfg.num_layers, cfg.num_heads)
    index = json.loads((light_ckpt / layout.DIT_INDEX).read_text())
    specs = {s.name: s for s in sp.dit_specs(cfg)}
    assert set(index["weight_map"]) == set(specs)
    shard_names = sorted(set(index["weight_map"].values()))
    assert shard_names == [f"diffusion_pytorch_model-{k:05d}-of-00002.safetensors" for k in (1, 2)]
    total = 0
    for name in shard_names:
        path = light_ckpt / name
        header = _safetensors_header(path)
        assert header.pop("__metadata__") == {"format": "pt"}
        assert {k for k, v in index["weight_map"].items() if v == name} == set(header)
        end = 0
        for key, info in header.items():
            assert info["dtype"] == "BF16" and tuple(info["shape"]) == specs[key].shape
            end = max(end, info["data_offsets"][1])
            total += info["data_offsets"][1] - info["data_offsets"][0]
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
        assert path.stat().st_size == 8 + length + end
    assert index["metadata"]["total_size"] == total


def test_safetensors_library_reads_the_shards(light_ckpt: Path) -> None:
    safetensors = pytest.importorskip("safetensors", reason="cross-check with safetensors", exc_type=ImportError)
    torch = pytest.importorskip("torch", exc_type=ImportError)
    index = json.loads((light_ckpt / layout.DIT_INDEX).read_text())
    name, shard = next(iter(index["weight_map"].items()))
    with safetensors.safe_open(str(light_ckpt / shard), framework="pt") as f:
        keys = list(f.keys())  # a safe_open handle, not a dict
        assert name in keys
        kernel = next(k for k in keys if k.endswith(".kernel"))
        assert torch.equal(
            f.get_tensor(kernel).float(), torch.tensor([1.0, 3, 3, 1])[:, None] * torch.tensor([1.0, 3, 3, 1]) / 64
        )
        tensor = f.get_tensor(name)
        assert tensor.dtype == torch.bfloat16 and torch.isfinite(tensor.float()).all()


def test_tokenizers_load_offline(light_ckpt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    transformers = pytest.importorskip(
        "transformers", reason="upstream loads tokenizers with AutoTokenizer", exc_type=ImportError
    )
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    umt5 = transformers.AutoTokenizer.from_pretrained(str(light_ckpt / layout.T5_TOKENIZER_DIR))
    # The call HuggingfaceTokenizer makes for T5EncoderModel (seq_len=text_len=512).
    enc = umt5(
        ["视频中的人在做动作", "a person dancing"],
        return_tensors="pt",
        padding="max_length",
        truncation=True,
        max_length=512,
        add_special_tokens=True,
    )
    assert tuple(enc.input_ids.shape) == (2, 512)
    lengths = enc.attention_mask.sum(1).tolist()
    assert all(2 < n < 40 for n in lengths)
    assert enc.input_ids[0, lengths[0] - 1] == umt5.eos_token_id == 1
    assert umt5.pad_token_id == 0 and int(enc.input_ids.max()) < 256384
    assert umt5.unk_token_id not in enc.input_ids[0, : lengths[0]].tolist()
    xlmr = transformers.AutoTokenizer.from_pretrained(str(light_ckpt / layout.CLIP_TOKENIZER_DIR))
    ids = xlmr(["a person"], padding="max_length", truncation=True, max_length=512).input_ids[0]
    assert ids[0] == 0 and xlmr.pad_token_id == 1 and ids[-1] == 1 and max(ids) < 250002


def test_onnx_models_are_valid(light_ckpt: Path) -> None:
    onnx = pytest.importorskip("onnx", reason="onnx.checker cross-check", exc_type=ImportError)
    for rel in (layout.DET_FILE, layout.POSE_FILE):
        model = onnx.load(str(light_ckpt / rel))
        onnx.checker.check_model(model, full_check=True)


def test_onnx_models_run_under_onnxruntime(light_ckpt: Path) -> None:
    ort = pytest.importorskip("onnxruntime", reason="upstream runs the pose models with it", exc_type=ImportError)
    np = pytest.importorskip("numpy", exc_type=ImportError)
    det = ort.InferenceSession(str(light_ckpt / layout.DET_FILE), providers=["CPUExecutionProvider"])
    assert [i.name for i in det.get_inputs()] == ["images"] and det.get_inputs()[0].shape == [1, 3, 640, 640]
    boxes = det.run(None, {"images": np.random.rand(1, 3, 640, 640).astype(np.float32)})[0]
    assert boxes.shape == (1, 300, 6)
    x1, y1, x2, y2, score, cls = boxes[0, 0]
    assert 0 < x1 < x2 < 640 and 0 < y1 < y2 < 640 and score > 0.5 and cls == 0
    assert (boxes[0, 1:, 4] < 0.05).all()
    pose = ort.InferenceSession(str(light_ckpt / layout.POSE_FILE), providers=["CPUExecutionProvider"])
    assert pose.get_inputs()[0].shape == [1, 3, 256, 192]
    heat = pose.run(None, {"input": np.zeros((1, 3, 256, 192), np.float32)})[0]
    assert heat.shape == (1, 133, 64, 48)
    assert (heat.reshape(133, -1).max(1) > 0.8).all()


def test_pose2d_folder_layout(tmp_path: Path) -> None:
    pytest.importorskip("numpy", exc_type=ImportError)
    onnx_models.write_onnx_models(tmp_path, "folder")
    assert (tmp_path / layout.POSE_FILE).is_dir()
    assert (tmp_path / layout.POSE_FILE / "end2end.onnx").is_file()
    assert (tmp_path / layout.DET_FILE).is_file()


# --------------------------------------------------------------------------
# Cross-checks against the upstream code (Wan2.2/ checkout)
# --------------------------------------------------------------------------


@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch):
    """Import single upstream modules without running wan/__init__.py.

    ``import wan`` pulls in every pipeline (librosa, decord, CUDA at import);
    empty package stubs let e.g. wan.modules.t5 load on its own.
    """
    if not (WAN_ROOT / "wan" / "animate.py").is_file():
        pytest.skip("upstream Wan2.2/ checkout not present")
    torch = pytest.importorskip("torch", exc_type=ImportError)
    for dep in ("diffusers", "einops", "peft", "ftfy", "regex", "transformers"):
        pytest.importorskip(dep, reason=f"the upstream modules import {dep}", exc_type=ImportError)
    before = set(sys.modules)
    for pkg in ("wan", "wan.modules", "wan.modules.animate", "wan.distributed"):
        stub = types.ModuleType(pkg)
        stub.__path__ = [str(WAN_ROOT / pkg.replace(".", os.sep))]
        monkeypatch.setitem(sys.modules, pkg, stub)
    # t5.py evaluates torch.cuda.current_device() as a default argument at import.
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    import importlib

    # clip.py imports torchvision.transforms but the meta-device build never uses
    # it; stub it when absent. transformers probes torchvision once, at import,
    # and a spec-less stub breaks that probe, so import transformers first.
    importlib.import_module("transformers.utils.import_utils")
    try:
        import torchvision.transforms  # noqa: F401
    except ImportError:
        monkeypatch.setitem(sys.modules, "torchvision", types.ModuleType("torchvision"))
        monkeypatch.setitem(sys.modules, "torchvision.transforms", types.ModuleType("torchvision.transforms"))

    yield importlib.import_module
    for name in set(sys.modules) - before:
        if name.startswith("wan"):
            del sys.modules[name]


def _shapes(module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _spec_shapes(specs: list[sp.TensorSpec]) -> dict[str, tuple[int, ...]]:
    return {s.name: s.shape for s in specs}


@pytest.mark.parametrize("profile", ["tiny", "full"])
def test_dit_specs_match_upstream_model(upstream, profile: str) -> None:
    import torch

    model_animate = upstream("wan.modules.animate.model_animate")
    config = {k: v for k, v in tensors.dit_config_json(sp.PROFILES[profile]).items() if not k.startswith("_")}
    with torch.device("meta"):
        model = model_animate.WanAnimateModel(**config)
    assert _spec_shapes(sp.dit_specs(sp.PROFILES[profile])) == _shapes(model)


def test_encoder_specs_match_upstream_models(upstream) -> None:
    import torch

    t5 = upstream("wan.modules.t5")
    clip = upstream("wan.modules.animate.clip")
    vae = upstream("wan.modules.vae2_1")
    with torch.device("meta"):
        t5_model = t5.umt5_xxl(encoder_only=True, return_tokenizer=False, device="meta")
        clip_model = clip.clip_xlm_roberta_vit_h_14(device="meta")
        vae_model = vae.WanVAE_(
            dim=96,
            z_dim=16,
            dim_mult=[1, 2, 4, 4],
            num_res_blocks=2,
            attn_scales=[],
            temperal_downsample=[False, True, True],
            dropout=0.0,
        )
    assert _spec_shapes(sp.t5_specs()) == _shapes(t5_model)
    assert _spec_shapes(sp.clip_specs()) == _shapes(clip_model)
    assert _spec_shapes(sp.vae_specs()) == _shapes(vae_model)


def test_written_dit_and_lora_load_like_wan_animate(upstream, light_ckpt: Path) -> None:
    """The loading calls of wan/animate.py, on CPU: from_pretrained, then the LoRA."""
    import torch
    from peft import set_peft_model_state_dict

    model_animate = upstream("wan.modules.animate.model_animate")
    animate_utils = upstream("wan.modules.animate.animate_utils")
    model = model_animate.WanAnimateModel.from_pretrained(str(light_ckpt), torch_dtype=torch.bfloat16)
    model.eval().requires_grad_(False)
    assert model.dim == sp.PROFILES["tiny"].dim
    kernel = dict(model.named_buffers())["motion_encoder.enc.net_app.convs.1.conv2.0.kernel"]
    assert kernel.sum().item() == pytest.approx(1.0)
    model.add_adapter(animate_utils.get_loraconfig(transformer=model, rank=128, alpha=128))
    lora = torch.load(light_ckpt / layout.LORA_FILE)["state_dict"]
    result = set_peft_model_state_dict(model, lora)
    assert not result.unexpected_keys
    loaded = dict(model.named_parameters())
    for key, value in lora.items():
        model_key = key.replace(".lora_A.", ".lora_A.default.").replace(".lora_B.", ".lora_B.default.")
        assert torch.equal(loaded[model_key].to(value.dtype), value), key
    assert {m for m, _, _ in sp.lora_targets(sp.PROFILES["tiny"])} == {
        k.rsplit(".lora_", 1)[0] for k in loaded if ".lora_A." in k
    }


@pytest.mark.parametrize("frame_hw", [(720, 1280), (1280, 720)])
def test_upstream_pose2d_finds_a_person_in_the_box(
    light_ckpt: Path, frame_hw: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """pose2d.Pose2d + the replace-mode SAM2 prompt points and face crop of process_pipepline.py."""
    if not (PREPROCESS_DIR / "pose2d.py").is_file():
        pytest.skip("upstream Wan2.2/ checkout not present")
    for dep in ("torch", "onnxruntime", "cv2", "PIL"):
        pytest.importorskip(dep, reason=f"upstream pose2d.py imports {dep}", exc_type=ImportError)
    np = pytest.importorskip("numpy", exc_type=ImportError)
    monkeypatch.syspath_prepend(str(PREPROCESS_DIR))  # the preprocess modules use bare imports
    from pose2d import Pose2d
    from utils import get_face_bboxes

    h, w = frame_hw
    frame = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    pose = Pose2d(
        checkpoint=str(light_ckpt / layout.POSE_FILE),
        detector_checkpoint=str(light_ckpt / layout.DET_FILE),
        device="cpu",
    )
    meta = pose([frame])[0]
    x1, y1, x2, y2 = onnx_models.PERSON_BOX
    body = meta["keypoints_body"]
    points = body[[0, 1, 2, 5, 8, 11, 10, 13], :2]  # get_mask's SAM2 prompt joints
    assert ((points[:, 0] > x1) & (points[:, 0] < x2) & (points[:, 1] > y1) & (points[:, 1] < y2)).all()
    assert (body[:, 2] > 0.5).all()  # drawn by draw_aapose_by_meta_new (threshold 0.5)
    ys = points[:, 1]
    assert ys[0] < ys[1] < ys[4] < ys[6]  # nose above neck above hip above ankle
    fx1, fx2, fy1, fy2 = get_face_bboxes(meta["keypoints_face"][:, :2], scale=1.3, image_shape=(h, w))
    assert 0 <= fx1 < fx2 <= w and 0 <= fy1 < fy2 <= h and fx2 - fx1 >= 16 and fy2 - fy1 >= 16
    assert x1 * w <= fx1 and fx2 <= x2 * w


# --------------------------------------------------------------------------
# Carrying the ONNX graphs, the distill LoRA, the structured attention
# --------------------------------------------------------------------------


def test_onnx_graphs_carried_to_a_machine_without_onnx(tmp_path: Path) -> None:
    """--write_onnx here, --onnx_from there: the copy needs no onnx package and gives the same files."""
    pytest.importorskip("onnx", reason="writing the graphs needs onnx", exc_type=ImportError)
    carry = tmp_path / "carry"
    assert (
        subprocess.run([sys.executable, str(SCRIPT), "--write_onnx", "--out", str(carry)], check=False).returncode == 0
    )
    built, copied = tmp_path / "built", tmp_path / "copied"
    onnx_models.write_onnx_models(built, "folder")
    code = (
        "import sys; sys.modules['onnx'] = None; sys.path.insert(0, sys.argv[1]); from pathlib import Path\n"
        "from synthetic.onnx_models import write_onnx_models\n"
        "write_onnx_models(Path(sys.argv[2]), 'folder', Path(sys.argv[3]))\n"
        "try:\n    write_onnx_models(Path(sys.argv[2]), 'folder')\nexcept SystemExit as e:\n    print(e)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, str(SCRIPT.parent), str(copied), str(carry)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert "--write_onnx DIR" in res.stdout and "--onnx_from DIR" in res.stdout  # the fix, named
    for rel in (layout.DET_FILE, f"{layout.POSE_FILE}/end2end.onnx"):
        assert (copied / rel).read_bytes() == (built / rel).read_bytes()
    assert sum(f.stat().st_size for f in carry.iterdir()) < 2 * 2**20


def test_distill_lora_maps_onto_every_targeted_linear() -> None:
    from replace_actor_video.upstream.wan.runtime import lora

    cfg = sp.PROFILES["tiny"]
    keys = [s.name for s in sp.distill_lora_specs(cfg)]
    targets = [m for m, _, _ in sp.lora_targets(cfg)]
    plan = lora.plan_merge(keys, targets)
    assert not plan.unmatched and not plan.ignored and not plan.diffs
    assert sorted(p.module for p in plan.pairs) == sorted(targets)
    assert all(p.alpha and p.alpha.endswith(".alpha") for p in plan.pairs)


def test_attention_norms_carry_the_qk_gain() -> None:
    by_name = {s.name: s for s in sp.dit_specs(sp.PROFILES["tiny"])}
    gains = {
        n: s
        for n, s in by_name.items()
        if n.endswith(("norm_q.weight", "norm_k.weight", "norm_k_img.weight", "q_norm.weight", "k_norm.weight"))
    }
    assert gains and all(s.init == "const" and s.std == sp.QK_GAIN for s in gains.values())
    torch = pytest.importorskip("torch", exc_type=ImportError)
    assert torch.equal(
        tensors.make_tensor(next(iter(gains.values()))),
        torch.full(next(iter(gains.values())).shape, sp.QK_GAIN, dtype=torch.bfloat16),
    )
    assert by_name["blocks.0.norm3.weight"].init == "ones"  # other norms untouched
