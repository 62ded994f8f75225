#!/usr/bin/env python3
"""Write a random-weight stand-in for the Wan2.2-Animate-14B checkpoint folder.

The folder has the layout, file names, tensor names, shapes and dtypes that the
official Wan2.2 code (commit 42bf4cf) loads without modification:

- ``generate.py --task animate-14B --ckpt_dir DIR`` (wan/animate.py): the DiT
  (diffusers ``config.json`` + sharded safetensors + index), the umT5-XXL
  encoder, the CLIP ViT-H/14, the Wan2.1 VAE, the relighting LoRA and the two
  tokenizer folders;
- ``preprocess_data.py --ckpt_path DIR/process_checkpoint``: the YOLO person
  detector and the ViTPose whole-body model (ONNX) and the SAM2 checkpoint.

Profiles: ``tiny`` shrinks the DiT through ``config.json`` so that a denoising
step takes seconds; ``full`` keeps the 14B dims (for GPU benchmarks). T5, CLIP
and VAE always keep their real shapes because upstream hard-codes them. The
DiT's attention is structured (q/k norm gains, scripts/synthetic/specs.py) so
that comparisons of attention paths can see rope and mask errors.

The code lives in scripts/synthetic/, one module per concern; this file is the
command line and needs only the standard library for ``--help``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic.specs import PROFILES


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder to create")
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        help="tiny: small DiT for fast end-to-end runs; full: the 14B DiT dims (required unless --write_onnx)",
    )
    parser.add_argument(
        "--pose2d_layout",
        choices=["file", "folder"],
        default="file",
        help="vitpose_h_wholebody.onnx as a file, or as a folder holding end2end.onnx (the Hugging Face layout)",
    )
    parser.add_argument("--seed", type=int, default=0, help="torch RNG seed for the random weights")
    parser.add_argument(
        "--skip_heavy", action="store_true", help="leave out umT5, CLIP, VAE and SAM2 (about 15 GB; for tests)"
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="where to draw the random numbers (cuda: seconds instead of minutes for the full DiT)",
    )
    parser.add_argument(
        "--distill_lora",
        action="store_true",
        help="also write a LightX2V-layout step-distill LoRA for --preset fast runs",
    )
    parser.add_argument(
        "--onnx_from",
        type=Path,
        help="copy the two ONNX graphs from this --write_onnx folder (where the onnx package is "
        "missing, e.g. the lent GPU machine)",
    )
    parser.add_argument(
        "--write_onnx",
        action="store_true",
        help="only write the two ONNX graphs, flat, into --out (to carry them), and stop",
    )
    args = parser.parse_args(argv)
    if not args.write_onnx and not args.profile:
        parser.error("--profile is required (unless --write_onnx)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.write_onnx:
        from synthetic.onnx_models import write_onnx_files

        write_onnx_files(args.out)
        return 0
    from synthetic.checkpoint import make_checkpoint

    make_checkpoint(
        args.out,
        args.profile,
        args.pose2d_layout,
        args.seed,
        args.skip_heavy,
        device=args.device,
        onnx_from=args.onnx_from,
        distill_lora=args.distill_lora,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
