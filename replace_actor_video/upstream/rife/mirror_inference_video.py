"""Mirror of Practical-RIFE inference_video.py (argument parser and the rules applied right after parsing)
at commit 17d8c7a. The parser lines are copied verbatim, help strings included."""

import argparse

from . import pin

UPSTREAM_COMMIT = pin.PRACTICAL_RIFE_COMMIT
UPSTREAM_FILE = "inference_video.py"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Interpolation for a pair of images')
    parser.add_argument('--video', dest='video', type=str, default=None)
    parser.add_argument('--output', dest='output', type=str, default=None)
    parser.add_argument('--img', dest='img', type=str, default=None)
    parser.add_argument('--montage', dest='montage', action='store_true', help='montage origin video')
    parser.add_argument('--model', dest='modelDir', type=str, default='train_log', help='directory with trained model files')
    parser.add_argument('--fp16', dest='fp16', action='store_true', help='fp16 mode for faster and more lightweight inference on cards with Tensor Cores')
    parser.add_argument('--UHD', dest='UHD', action='store_true', help='support 4k video')
    parser.add_argument('--scale', dest='scale', type=float, default=1.0, help='Try scale=0.5 for 4k video')
    parser.add_argument('--skip', dest='skip', action='store_true', help='whether to remove static frames before processing')
    parser.add_argument('--fps', dest='fps', type=int, default=None)
    parser.add_argument('--png', dest='png', action='store_true', help='whether to vid_out png format vid_outs')
    parser.add_argument('--ext', dest='ext', type=str, default='mp4', help='vid_out video extension')
    parser.add_argument('--exp', dest='exp', type=int, default=1)
    parser.add_argument('--multi', dest='multi', type=int, default=2)
    return parser


def apply_upstream_rules(args: argparse.Namespace) -> argparse.Namespace:
    """What upstream does to the parsed arguments before loading the model (asserts included)."""
    if args.exp != 1:
        args.multi = (2 ** args.exp)
    assert (args.video is not None or args.img is not None)
    if args.UHD and args.scale == 1.0:
        args.scale = 0.5
    assert args.scale in [0.25, 0.5, 1.0, 2.0, 4.0]
    if args.img is not None:
        args.png = True
    return args
