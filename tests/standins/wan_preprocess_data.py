"""Contract stand-in for Wan2.2 preprocess_data.py: accepts exactly the upstream argument list (the mirror
parser), applies its asserts, and writes the files upstream writes for the mode, with the same frame
sampling and resize rules. Used only by tests, placed at wan/modules/animate/preprocess/ of a fake clone."""

import math
import os
import shutil
import sys

sys.path.insert(0, os.environ["RAV_REPO"])
sys.path.insert(0, os.path.join(os.environ["RAV_REPO"], "tests"))

from replace_actor_video.upstream.wan.mirror_preprocess_data import build_parser  # noqa: E402
from standins._media import probe_frames_fps, testsrc_video  # noqa: E402


def area_size(width, height, area_w, area_h):
    """resize_by_area fallback branch (the one that always runs upstream)."""
    aspect = width / height
    new_h = int(math.sqrt(area_w * area_h / aspect)) // 16 * 16
    new_w = int(area_w * area_h / new_h) // 16 * 16 if new_h else 0
    return new_w, new_h


def main():
    args = build_parser().parse_args()
    assert len(args.resolution_area) == 2
    assert not args.use_flux or args.retarget_flag, "Image editing with FLUX can only be used when pose retargeting is enabled."
    for model in ("det/yolov10m.onnx",):
        assert os.path.exists(os.path.join(args.ckpt_path, model)), model
    if args.replace_flag:
        assert os.path.exists(os.path.join(args.ckpt_path, "sam2/sam2_hiera_large.pt"))
    frames, video_fps, width, height = probe_frames_fps(args.video_path)
    fps = video_fps if args.fps == -1 else args.fps
    target = int(frames / video_fps * fps)
    if os.environ.get("STANDIN_PREPROCESS_FAIL"):
        sys.exit("RuntimeError: stand-in failure requested")
    os.makedirs(args.save_path, exist_ok=True)
    out_w, out_h = area_size(width, height, *args.resolution_area)
    shutil.copy(args.refer_path, os.path.join(args.save_path, "src_ref.png"))
    testsrc_video(os.path.join(args.save_path, "src_pose.mp4"), width=out_w, height=out_h, frames=target, fps=fps)
    testsrc_video(os.path.join(args.save_path, "src_face.mp4"), width=512, height=512, frames=target, fps=fps)
    if args.replace_flag:
        testsrc_video(os.path.join(args.save_path, "src_bg.mp4"), width=out_w, height=out_h, frames=target, fps=fps)
        testsrc_video(os.path.join(args.save_path, "src_mask.mp4"), width=out_w, height=out_h, frames=target, fps=fps,
                      pattern="color=c=white")
    print(f"stand-in preprocess: {target} frames at {fps} fps, {out_w}x{out_h}")


if __name__ == "__main__":
    main()
