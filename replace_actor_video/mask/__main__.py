"""Worker: `python -m replace_actor_video.mask --preprocess_dir D --video_path V --options JSON`.

The stages run the contour step through this entry point, as a child process of the common runner, so it
is logged, cancellable and frees its GPU memory when it ends, like every upstream tool."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ..core.cli import report_errors
from .contour import ContourOptions, build_contour_mask


def _device(requested: str) -> str:
    if requested != "auto":
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m replace_actor_video.mask")
    parser.add_argument("--preprocess_dir", required=True)
    parser.add_argument("--video_path", required=True)
    parser.add_argument("--options", required=True, help="ContourOptions as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[mask] %(message)s", stream=sys.stdout)

    def body() -> None:
        fields = json.loads(args.options)
        fields["device"] = _device(fields.get("device", "auto"))
        fields["resolution_area"] = tuple(fields["resolution_area"])
        if fields.get("sam2_checkpoint"):
            fields["sam2_checkpoint"] = Path(fields["sam2_checkpoint"])
        result = build_contour_mask(args.preprocess_dir, args.video_path, ContourOptions(**fields))
        filled = f", {len(result.filled_frames)} empty frames filled" if result.filled_frames else ""
        print(f"[mask] contour mask: {result.frames} frames {result.width}x{result.height} in {result.seconds:.1f}s "
              f"({result.frames / max(result.seconds, 1e-6):.2f} fps) on {fields['device']}{filled}", flush=True)

    return report_errors(body)


if __name__ == "__main__":
    sys.exit(main())
