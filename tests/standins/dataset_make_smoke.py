#!/usr/bin/env python3
"""Build a tiny DiffSynth Animate dataset for a training smoke run, here on the CPU: run_dataset.py on a
one-second test clip, with the contract stand-in of preprocess_data.py (tests/standins) in a throw-away fake
Wan2.2 clone, at 64x64-area preprocessing and 9-frame clips. The GPU machine has no ffmpeg to do this.

    python3 tests/standins/dataset_make_smoke.py OUT [--replace]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CKPT_FILES = ("process_checkpoint/det/yolov10m.onnx", "process_checkpoint/pose2d/vitpose_h_wholebody.onnx",
              "process_checkpoint/sam2/sam2_hiera_large.pt")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--replace", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        script = tmp / "Wan2.2" / "wan" / "modules" / "animate" / "preprocess" / "preprocess_data.py"
        script.parent.mkdir(parents=True)
        shutil.copy(REPO / "tests" / "standins" / "wan_preprocess_data.py", script)
        for name in CKPT_FILES:
            (tmp / "ckpt" / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / "ckpt" / name).write_bytes(b"stand-in")
        (tmp / "videos").mkdir()
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-t", "1",
                        "-c:v", "libx264", "-pix_fmt", "yuv420p", str(tmp / "videos" / "dance.mp4")], check=True)
        (tmp / "videos" / "dance.txt").write_text("a person dancing in red")
        return subprocess.run(
            [sys.executable, str(REPO / "run_dataset.py"), "--input", str(tmp / "videos"), "--output", str(args.out),
             "--wan22_dir", str(tmp / "Wan2.2"), "--ckpt_dir", str(tmp / "ckpt"), "--runs_dir", str(tmp / "runs"),
             "--resolution", "64x64", "--clip_frames", "9", "--max_clips", "2", "--gpus_per_video", "0",
             *(["--replace", "--mask_mode", "official"] if args.replace else [])],
            env={**os.environ, "RAV_REPO": str(REPO)}).returncode


if __name__ == "__main__":
    sys.exit(main())
