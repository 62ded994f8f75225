"""Mirror of Wan2.2 wan/modules/animate/preprocess/preprocess_data.py `_parse_args` at the pinned commit (pin.py)."""

import argparse

from . import pin

UPSTREAM_COMMIT = pin.COMMIT
UPSTREAM_FILE = "wan/modules/animate/preprocess/preprocess_data.py"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="The preprocessing pipeline for Wan-animate.")
    parser.add_argument("--ckpt_path", type=str, default=None)
    parser.add_argument("--video_path", type=str, default=None)
    parser.add_argument("--refer_path", type=str, default=None)
    parser.add_argument("--save_path", type=str, default=None)
    parser.add_argument("--resolution_area", type=int, nargs=2, default=[1280, 720])
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--replace_flag", action="store_true", default=False)
    parser.add_argument("--retarget_flag", action="store_true", default=False)
    parser.add_argument("--use_flux", action="store_true", default=False)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--k", type=int, default=7)
    parser.add_argument("--w_len", type=int, default=1)
    parser.add_argument("--h_len", type=int, default=1)
    return parser
