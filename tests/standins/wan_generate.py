"""Contract stand-in for Wan2.2 generate.py (animate-14B branch): the mirror parser, upstream's checks,
`wan.WanAnimate(...).generate(...)` called WITHOUT the prompt exactly as upstream does, and a 30 fps
video with as many frames as src_pose.mp4. With STANDIN_SAVE_FAILS=1 it logs a save error and exits 0,
as upstream's save_video does."""

import os
import sys

sys.path.insert(0, os.environ["RAV_REPO"])
sys.path.insert(0, os.path.join(os.environ["RAV_REPO"], "tests"))

import wan  # noqa: E402  (the fake package beside this file)
from replace_actor_video.upstream.wan.mirror_generate import build_parser  # noqa: E402
from standins._media import probe_frames_fps, testsrc_video  # noqa: E402


def main():
    args = build_parser().parse_args()
    assert args.task == "animate-14B"
    assert args.ckpt_dir is not None
    if args.prompt is None:
        args.prompt = "视频中的人在做动作"
    world_size = int(os.getenv("WORLD_SIZE", 1))
    if world_size == 1:
        assert not (args.t5_fsdp or args.dit_fsdp)
        assert not args.ulysses_size > 1
    print(f"Generation job args: {args}", flush=True)
    model = wan.WanAnimate(config=None, checkpoint_dir=args.ckpt_dir, use_relighting_lora=args.use_relighting_lora)
    model.generate(src_root_path=args.src_root_path, replace_flag=args.replace_flag, refert_num=args.refert_num,
                   clip_len=args.frame_num, shift=args.sample_shift, sample_solver=args.sample_solver,
                   sampling_steps=args.sample_steps, guide_scale=args.sample_guide_scale, seed=args.base_seed,
                   offload_model=args.offload_model)
    frames, _fps, width, height = probe_frames_fps(os.path.join(args.src_root_path, "src_pose.mp4"))
    if os.environ.get("STANDIN_SAVE_FAILS"):
        print("save_video failed, error: stand-in", flush=True)
        return
    testsrc_video(args.save_file, width=width, height=height, frames=frames, fps=30)


if __name__ == "__main__":
    main()
