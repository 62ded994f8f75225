"""Contract stand-in for Wan2.2 generate.py (animate-14B branch), shaped like upstream: `_parse_args()` (the mirror
parser and upstream's checks), `generate(args)` with the animate branch's `wan.WanAnimate(...)` and
`wan_animate.generate(...)` calls WITHOUT the prompt exactly as upstream makes them, then `save_video(...)`, and the
`__main__` block. The warm worker calls `_parse_args` and `generate` of this file as it does upstream's
(tests/test_worker.py checks both files have the same shape). With STANDIN_SAVE_FAILS=1 save_video logs an error
and returns, as upstream's does."""

import logging
import os
import random
import sys

sys.path.insert(0, os.environ["RAV_REPO"])
sys.path.insert(0, os.path.join(os.environ["RAV_REPO"], "tests"))

import wan
from wan.configs import WAN_CONFIGS
from wan.utils.utils import save_video

from replace_actor_video.upstream.wan.mirror_generate import build_parser

logger = logging.getLogger(__name__)


def _validate_args(args):
    assert args.ckpt_dir is not None, "Please specify the checkpoint directory."
    assert args.task in WAN_CONFIGS, f"Unsupport task: {args.task}"
    if args.prompt is None:
        args.prompt = "视频中的人在做动作"
    cfg = WAN_CONFIGS[args.task]
    if args.sample_steps is None:
        args.sample_steps = cfg.sample_steps
    if args.sample_shift is None:
        args.sample_shift = cfg.sample_shift
    if args.sample_guide_scale is None:
        args.sample_guide_scale = cfg.sample_guide_scale
    if args.frame_num is None:
        args.frame_num = cfg.frame_num
    args.base_seed = args.base_seed if args.base_seed >= 0 else random.randint(0, sys.maxsize)


def _parse_args():
    args = build_parser().parse_args()
    _validate_args(args)
    return args


def _init_logging(rank):
    if rank == 0:
        logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(levelname)s: %(message)s",
                            handlers=[logging.StreamHandler(stream=sys.stdout)])


def generate(args):
    rank = int(os.getenv("RANK", "0"))
    world_size = int(os.getenv("WORLD_SIZE", "1"))
    local_rank = int(os.getenv("LOCAL_RANK", "0"))
    device = local_rank
    _init_logging(rank)
    if args.offload_model is None:
        args.offload_model = world_size == 1
    if world_size == 1:
        assert not (args.t5_fsdp or args.dit_fsdp)
        assert not args.ulysses_size > 1
    cfg = WAN_CONFIGS[args.task]
    logger.info(f"Generation job args: {args}")
    assert "animate" in args.task
    logger.info("Creating Wan-Animate pipeline.")
    wan_animate = wan.WanAnimate(
        config=cfg,
        checkpoint_dir=args.ckpt_dir,
        device_id=device,
        rank=rank,
        t5_fsdp=args.t5_fsdp,
        dit_fsdp=args.dit_fsdp,
        use_sp=(args.ulysses_size > 1),
        t5_cpu=args.t5_cpu,
        convert_model_dtype=args.convert_model_dtype,
        use_relighting_lora=args.use_relighting_lora
    )
    logger.info("Generating video ...")
    video = wan_animate.generate(
        src_root_path=args.src_root_path,
        replace_flag=args.replace_flag,
        refert_num=args.refert_num,
        clip_len=args.frame_num,
        shift=args.sample_shift,
        sample_solver=args.sample_solver,
        sampling_steps=args.sample_steps,
        guide_scale=args.sample_guide_scale,
        seed=args.base_seed,
        offload_model=args.offload_model)
    if rank == 0:
        logger.info(f"Saving generated video to {args.save_file}")
        save_video(
            tensor=video[None],
            save_file=args.save_file,
            fps=cfg.sample_fps,
            nrow=1,
            normalize=True,
            value_range=(-1, 1))
    del video
    logger.info("Finished.")


if __name__ == "__main__":
    args = _parse_args()
    generate(args)
