"""Mirror of Wan2.2 generate.py `_parse_args` at the pinned commit (pin.py); choices that upstream computes from
its configs are written out."""

import argparse

from . import pin

UPSTREAM_COMMIT = pin.COMMIT
UPSTREAM_FILE = "generate.py"

TASKS = ["t2v-A14B", "i2v-A14B", "ti2v-5B", "animate-14B", "s2v-14B"]
SIZES = ["720*1280", "1280*720", "480*832", "832*480", "704*1280", "1280*704", "1024*704", "704*1024"]


def str2bool(v):
    """wan/utils/utils.py str2bool."""
    if isinstance(v, bool):
        return v
    v_lower = v.lower()
    if v_lower in ("yes", "true", "t", "y", "1"):
        return True
    if v_lower in ("no", "false", "f", "n", "0"):
        return False
    raise argparse.ArgumentTypeError("Boolean value expected (True/False)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Generate a image or video from a text prompt or image using Wan")
    parser.add_argument("--task", type=str, default="t2v-A14B", choices=TASKS)
    parser.add_argument("--size", type=str, default="1280*720", choices=SIZES)
    parser.add_argument("--frame_num", type=int, default=None)
    parser.add_argument("--ckpt_dir", type=str, default=None)
    parser.add_argument("--offload_model", type=str2bool, default=None)
    parser.add_argument("--ulysses_size", type=int, default=1)
    parser.add_argument("--t5_fsdp", action="store_true", default=False)
    parser.add_argument("--t5_cpu", action="store_true", default=False)
    parser.add_argument("--dit_fsdp", action="store_true", default=False)
    parser.add_argument("--save_file", type=str, default=None)
    parser.add_argument("--prompt", type=str, default=None)
    parser.add_argument("--use_prompt_extend", action="store_true", default=False)
    parser.add_argument("--prompt_extend_method", type=str, default="local_qwen", choices=["dashscope", "local_qwen"])
    parser.add_argument("--prompt_extend_model", type=str, default=None)
    parser.add_argument("--prompt_extend_target_lang", type=str, default="zh", choices=["zh", "en"])
    parser.add_argument("--base_seed", type=int, default=-1)
    parser.add_argument("--image", type=str, default=None)
    parser.add_argument("--sample_solver", type=str, default="unipc", choices=["unipc", "dpm++"])
    parser.add_argument("--sample_steps", type=int, default=None)
    parser.add_argument("--sample_shift", type=float, default=None)
    parser.add_argument("--sample_guide_scale", type=float, default=None)
    parser.add_argument("--convert_model_dtype", action="store_true", default=False)
    parser.add_argument("--src_root_path", type=str, default=None)
    parser.add_argument("--refert_num", type=int, default=77)
    parser.add_argument("--replace_flag", action="store_true", default=False)
    parser.add_argument("--use_relighting_lora", action="store_true", default=False)
    parser.add_argument("--num_clip", type=int, default=None)
    parser.add_argument("--audio", type=str, default=None)
    parser.add_argument("--enable_tts", action="store_true", default=False)
    parser.add_argument("--tts_prompt_audio", type=str, default=None)
    parser.add_argument("--tts_prompt_text", type=str, default=None)
    parser.add_argument("--tts_text", type=str, default=None)
    parser.add_argument("--pose_video", type=str, default=None)
    parser.add_argument("--start_from_ref", action="store_true", default=False)
    parser.add_argument("--infer_frames", type=int, default=80)
    return parser
