"""Mirror of SeedVR projects/inference_seedvr2_3b.py and projects/inference_seedvr2_7b.py argument parser
at commit 673b563 (the two scripts have the same parser; copied verbatim), with the files each loads
relative to its working directory."""

import argparse

from . import pin

UPSTREAM_COMMIT = pin.COMMIT
UPSTREAM_FILES = ("projects/inference_seedvr2_3b.py", "projects/inference_seedvr2_7b.py")

# Read relative to the cwd (the repo root) by configure_runner(), the config and generation_loop().
RELATIVE_FILES = {
    "3b": ("configs_3b/main.yaml", "ckpts/seedvr2_ema_3b.pth", "ckpts/ema_vae.pth", "pos_emb.pt", "neg_emb.pt"),
    "7b": ("configs_7b/main.yaml", "ckpts/seedvr2_ema_7b.pth", "ckpts/ema_vae.pth", "pos_emb.pt", "neg_emb.pt"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--video_path", type=str, default="./test_videos")
    parser.add_argument("--output_dir", type=str, default="./results")
    parser.add_argument("--seed", type=int, default=666)
    parser.add_argument("--res_h", type=int, default=720)
    parser.add_argument("--res_w", type=int, default=1280)
    parser.add_argument("--sp_size", type=int, default=1)
    parser.add_argument("--out_fps", type=float, default=None)
    return parser
