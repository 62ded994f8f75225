"""Mirror of Real-ESRGAN inference_realesrgan_video.py `main()` argument parser at commit a4abfb2 (copied
verbatim, help strings included), with the models `inference_video()` knows."""

import argparse

from . import pin

UPSTREAM_COMMIT = pin.COMMIT
UPSTREAM_FILE = "inference_realesrgan_video.py"

RELEASES = "https://github.com/xinntao/Real-ESRGAN/releases/download/"
# -n → (network scale, weight files downloaded into <clone>/weights/), as in inference_video().
MODELS = {
    "RealESRGAN_x4plus": (4, ("v0.1.0/RealESRGAN_x4plus.pth",)),
    "RealESRNet_x4plus": (4, ("v0.1.1/RealESRNet_x4plus.pth",)),
    "RealESRGAN_x4plus_anime_6B": (4, ("v0.2.2.4/RealESRGAN_x4plus_anime_6B.pth",)),
    "RealESRGAN_x2plus": (2, ("v0.2.1/RealESRGAN_x2plus.pth",)),
    "realesr-animevideov3": (4, ("v0.2.5.0/realesr-animevideov3.pth",)),
    "realesr-general-x4v3": (4, ("v0.2.5.0/realesr-general-wdn-x4v3.pth", "v0.2.5.0/realesr-general-x4v3.pth")),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument('-i', '--input', type=str, default='inputs', help='Input video, image or folder')
    parser.add_argument(
        '-n',
        '--model_name',
        type=str,
        default='realesr-animevideov3',
        help=('Model names: realesr-animevideov3 | RealESRGAN_x4plus_anime_6B | RealESRGAN_x4plus | RealESRNet_x4plus |'
              ' RealESRGAN_x2plus | realesr-general-x4v3'
              'Default:realesr-animevideov3'))
    parser.add_argument('-o', '--output', type=str, default='results', help='Output folder')
    parser.add_argument(
        '-dn',
        '--denoise_strength',
        type=float,
        default=0.5,
        help=('Denoise strength. 0 for weak denoise (keep noise), 1 for strong denoise ability. '
              'Only used for the realesr-general-x4v3 model'))
    parser.add_argument('-s', '--outscale', type=float, default=4, help='The final upsampling scale of the image')
    parser.add_argument('--suffix', type=str, default='out', help='Suffix of the restored video')
    parser.add_argument('-t', '--tile', type=int, default=0, help='Tile size, 0 for no tile during testing')
    parser.add_argument('--tile_pad', type=int, default=10, help='Tile padding')
    parser.add_argument('--pre_pad', type=int, default=0, help='Pre padding size at each border')
    parser.add_argument('--face_enhance', action='store_true', help='Use GFPGAN to enhance face')
    parser.add_argument(
        '--fp32', action='store_true', help='Use fp32 precision during inference. Default: fp16 (half precision).')
    parser.add_argument('--fps', type=float, default=None, help='FPS of the output video')
    parser.add_argument('--ffmpeg_bin', type=str, default='ffmpeg', help='The path to ffmpeg')
    parser.add_argument('--extract_frame_first', action='store_true')
    parser.add_argument('--num_process_per_gpu', type=int, default=1)

    parser.add_argument(
        '--alpha_upsampler',
        type=str,
        default='realesrgan',
        help='The upsampler for the alpha channels. Options: realesrgan | bicubic')
    parser.add_argument(
        '--ext',
        type=str,
        default='auto',
        help='Image extension. Options: auto | jpg | png, auto means using the same extension as inputs')
    return parser
