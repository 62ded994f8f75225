"""Worker: `python -m replace_actor_video.mask --src_root_path D --video_path V [run_mask.py's options]`.

The stages run the contour step through this entry point (mask/step.py builds its argv from the same option
specs it parses here), as a child process of the common runner, so it is logged, cancellable and frees its GPU
memory when it ends, like every upstream tool."""

from __future__ import annotations

import argparse
import logging
import sys

from ..core.cli import report_errors
from ..core.errors import UserError
from ..core.options import add_to_parser, build
from .contour import build_contour_mask
from .options import MaskOptions, MaskStageOptions


def _device(requested: str) -> str:
    if requested != "auto":
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m replace_actor_video.mask")
    seen: set[str] = set()
    for cls in (MaskStageOptions, MaskOptions):
        add_to_parser(parser, cls, seen=seen)
    values = vars(parser.parse_args(argv))
    logging.basicConfig(level=logging.INFO, format="[mask] %(message)s", stream=sys.stdout)

    def body() -> None:
        where, mask = build(MaskStageOptions, values), build(MaskOptions, values)
        if where.video_path is None or where.resolution is None:
            raise UserError("the mask worker needs --video_path and --resolution (run_mask.py resolves them)")
        device = _device(mask.mask_device)
        result = build_contour_mask(
            where.src_root_path, where.video_path, mask, resolution=where.resolution, fps=where.fps, device=device
        )
        filled = f", {len(result.filled_frames)} empty frames filled" if result.filled_frames else ""
        print(
            f"[mask] contour mask: {result.frames} frames {result.width}x{result.height} in {result.seconds:.1f}s "
            f"({result.frames / max(result.seconds, 1e-6):.2f} fps) on {device}{filled}",
            flush=True,
        )

    return report_errors(body)


if __name__ == "__main__":
    sys.exit(main())
