"""Contract stand-in for SeedVR projects/inference_seedvr2_{3b,7b}.py (commit 673b563), placed as both
scripts of a fake clone. Like upstream it needs torchrun's environment (RANK, LOCAL_RANK, WORLD_SIZE),
the repo root on PYTHONPATH (`data`, `common` packages), and its config, checkpoints and text embeddings
relative to the cwd; it parses exactly the upstream argument list (the mirror), processes every entry of
--video_path, and rank 0 writes <output_dir>/<same name>: every frame, resized by area to res_h*res_w
(aspect kept) and centre-cropped to multiples of 16, at the input fps, H.264, without audio."""

import math
import os
import subprocess
import sys

print(os.getcwd())
import common  # noqa: E402,F401  (upstream: from common.distributed import ... → needs PYTHONPATH = the root)
import data  # noqa: E402,F401  (upstream: from data.image.transforms.divisible_crop import ...)

sys.path.insert(1, os.environ["RAV_REPO"])
sys.path.insert(1, os.path.join(os.environ["RAV_REPO"], "tests"))

from replace_actor_video.upstream.seedvr.mirror_inference import RELATIVE_FILES, build_parser  # noqa: E402
from standins._media import probe_frames_fps  # noqa: E402

MODEL = "7b" if os.path.basename(__file__).endswith("7b.py") else "3b"


def main():
    args = build_parser().parse_args()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])  # init_process_group("nccl")
    int(os.environ["LOCAL_RANK"])
    assert world % args.sp_size == 0
    for name in RELATIVE_FILES[MODEL]:
        if not os.path.isfile(name):
            raise FileNotFoundError(f"[Errno 2] No such file or directory: './{name}'")
    os.makedirs(args.output_dir, exist_ok=True)
    if rank != 0:
        return
    for name in os.listdir(args.video_path):
        src = os.path.join(args.video_path, name)
        frames, fps, width, height = probe_frames_fps(src)
        scale = math.sqrt(args.res_h * args.res_w / (width * height))
        out_w, out_h = round(width * scale) // 16 * 16, round(height * scale) // 16 * 16
        print(f"Read video size: torch.Size([{frames}, 3, {height}, {width}])", flush=True)
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", src, "-map", "0:v:0", "-vf",
                        f"scale={round(width * scale)}:{round(height * scale)},crop={out_w}:{out_h}", "-frames:v", str(frames),
                        "-r", str(args.out_fps or fps), "-c:v", "libx264", "-pix_fmt", "yuv420p",
                        os.path.join(args.output_dir, os.path.basename(name))], check=True)


if __name__ == "__main__":
    main()
