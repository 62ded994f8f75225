"""A tiny random Wan2.2-Animate-14B in DiffSynth-Studio's format, to smoke-test training (FSDP, DeepSpeed,
LoRA, checkpoint saving) without the 60 GB checkpoint or a network.

Why DiffSynth cannot simply load a small model: it recognises each file by the md5 of its tensor names and
shapes and then builds the class with the fixed 14B arguments listed for that hash
(diffsynth/configs/model_configs.py:255-268); any other file is refused with "Cannot detect the model type"
(diffsynth/models/model_loader.py:97-98). WanAnimateAdapter hard-codes 5120 channels, 40 heads and 8 face
blocks (wan_video_animate_adapter.py:618-621) and WanImageEncoder the ViT-H/14 (wan_video_image_encoder.py:
854-862), so neither can shrink through arguments at all.

What this module does instead, without editing the clone:
- `make` writes a folder with the file names of Wan-AI/Wan2.2-Animate-14B (so run_training.py --ckpt_dir
  takes it): the DiT and the animate adapter in one safetensors file as upstream ships them, a small umT5,
  the real-size Wan2.1 VAE (random; its hash is the real one), a small CLIP vision tower with the real
  1280-wide features, a word-level tokenizer, and rav_tiny_models.json: the MODEL_CONFIGS entries for the
  new hashes, pointing at the small subclasses below.
- tiny_train.py, given to run_training.py as --train_script, adds those entries to
  diffsynth.configs.MODEL_CONFIGS in every training process and runs the real train.py as __main__.

    python -m replace_actor_video.training.tiny_model --out checkpoints/tiny-animate

Needs the training environment (torch, DiffSynth-Studio importable, safetensors, transformers).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch
from diffsynth.core.loader import hash_model_file
from diffsynth.models.wan_video_animate_adapter import FaceAdapter, FaceEncoder, Generator, WanAnimateAdapter
from diffsynth.models.wan_video_dit import WanModel
from diffsynth.models.wan_video_image_encoder import WanImageEncoder, clip_xlm_roberta_vit_h_14
from diffsynth.models.wan_video_text_encoder import WanTextEncoder
from diffsynth.models.wan_video_vae import WanVideoVAE
from safetensors.torch import save_file

from ..upstream.diffsynth import train as ds

CONFIG_FILE = "rav_tiny_models.json"
DIT = {
    "has_image_input": True,
    "patch_size": [1, 2, 2],
    "in_dim": 36,
    "dim": 64,
    "ffn_dim": 128,
    "freq_dim": 256,
    "text_dim": 64,
    "out_dim": 16,
    "num_heads": 2,
    "num_layers": 2,
    "eps": 1e-06,
}
T5 = {"dim": 64, "dim_attn": 64, "dim_ffn": 128, "num_heads": 2, "num_layers": 2, "num_buckets": 32}
WORDS = (
    "a person dancer man woman walking dancing in red blue the of and is video motion spinning jumping waving standing"
).split()


class TinyAnimateAdapter(WanAnimateAdapter):
    """WanAnimateAdapter with the DiT's width and one face block per five DiT blocks, as upstream's 40 // 5."""

    def __init__(self, dim: int = DIT["dim"], num_heads: int = DIT["num_heads"], num_layers: int = DIT["num_layers"]):
        torch.nn.Module.__init__(self)
        self.pose_patch_embedding = torch.nn.Conv3d(16, dim, kernel_size=(1, 2, 2), stride=(1, 2, 2))
        self.motion_encoder = Generator(size=512, style_dim=512, motion_dim=20)
        self.face_adapter = FaceAdapter(
            heads_num=num_heads, hidden_dim=dim, num_adapter_layers=math.ceil(num_layers / 5)
        )
        self.face_encoder = FaceEncoder(in_dim=512, hidden_dim=dim, num_heads=4)


class TinyImageEncoder(WanImageEncoder):
    """The CLIP of WanImageEncoder with two vision blocks and a token-sized text tower; the vision width
    stays 1280 because the DiT's img_emb takes 1280-wide features (wan_video_dit.py:410)."""

    def __init__(self):
        torch.nn.Module.__init__(self)
        self.model, self.transforms = clip_xlm_roberta_vit_h_14(
            pretrained=False,
            return_transforms=True,
            return_tokenizer=False,
            dtype=torch.float32,
            device="cpu",
            vision_layers=2,
            embed_dim=64,
            vocab_size=len(WORDS) + 8,
            max_text_len=16,
            text_dim=64,
            text_heads=2,
            text_layers=1,
        )


def _bf16(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to(torch.bfloat16).contiguous() for k, v in module.state_dict().items()}


def write_tokenizer(folder: Path) -> int:
    """A word-level tokenizer that AutoTokenizer loads offline; returns its vocabulary size."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=512
    )
    fast.save_pretrained(str(folder))
    return len(vocab)


def make(out: Path, seed: int = 0) -> dict:
    """Write the tiny checkpoint folder; returns the MODEL_CONFIGS entries it needs."""
    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    vocab = write_tokenizer(out / ds.TOKENIZER_DIR)

    # DiT + adapter in one file, as Wan-AI/Wan2.2-Animate-14B ships them; DiffSynth's two converters split it.
    dit_file = out / "diffusion_pytorch_model-00001-of-00001.safetensors"
    save_file({**_bf16(WanModel(**DIT)), **_bf16(TinyAnimateAdapter())}, str(dit_file))
    t5_file = out / ds.T5_FILE
    torch.save(_bf16(WanTextEncoder(vocab=vocab, **T5)), t5_file)
    # The VAE keeps its real shapes, saved like the official file (no "model." prefix): its hash is the real one.
    vae_file = out / ds.VAE_FILE
    torch.save({k[len("model.") :]: v for k, v in _bf16(WanVideoVAE()).items()}, vae_file)
    clip_file = out / ds.CLIP_FILE
    torch.save(_bf16(TinyImageEncoder()), clip_file)

    here = "replace_actor_video.training.tiny_model"  # the import path DiffSynth's ModelPool will use
    dit_hash = hash_model_file(str(dit_file))
    configs = [
        {
            "model_hash": dit_hash,
            "model_name": "wan_video_dit",
            "model_class": "diffsynth.models.wan_video_dit.WanModel",
            "extra_kwargs": DIT,
            "state_dict_converter": "diffsynth.utils.state_dict_converters.wan_video_dit.WanVideoDiTStateDictConverter",
        },
        {
            "model_hash": dit_hash,
            "model_name": "wan_video_animate_adapter",
            "model_class": f"{here}.TinyAnimateAdapter",
            "state_dict_converter": "diffsynth.utils.state_dict_converters.wan_video_animate_adapter."
            "WanAnimateAdapterStateDictConverter",
        },
        {
            "model_hash": hash_model_file(str(t5_file)),
            "model_name": "wan_video_text_encoder",
            "model_class": "diffsynth.models.wan_video_text_encoder.WanTextEncoder",
            "extra_kwargs": {"vocab": vocab, **T5},
        },
        {
            "model_hash": hash_model_file(str(clip_file)),
            "model_name": "wan_video_image_encoder",
            "model_class": f"{here}.TinyImageEncoder",
        },
    ]
    summary = {
        "configs": configs,
        "vae_hash": hash_model_file(str(vae_file)),
        "seed": seed,
        "bytes": {p.name: p.stat().st_size for p in (dit_file, t5_file, vae_file, clip_file)},
    }
    (out / CONFIG_FILE).write_text(json.dumps(summary, indent=2))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write a tiny random Wan2.2-Animate-14B checkpoint for DiffSynth-Studio."
    )
    parser.add_argument("--out", required=True, type=Path, help="folder to write (the layout of Wan2.2-Animate-14B)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    summary = make(args.out, args.seed)
    print(json.dumps({"folder": str(args.out), "files": summary["bytes"], "vae_hash": summary["vae_hash"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
