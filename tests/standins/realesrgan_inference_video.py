"""Contract stand-in for Real-ESRGAN inference_realesrgan_video.py (commit a4abfb2), placed as
<clone>/inference_realesrgan_video.py of a fake clone. It imports what upstream imports in the order that
matters (basicsr's `torchvision.transforms.functional_tensor`, the clone's `realesrgan` package with its
setup.py-written version.py, `ffmpeg`), parses exactly the upstream argument list (the mirror), looks for
weights in cwd-relative weights/ and otherwise "downloads" into <clone>/weights (offline: fails), and
writes what upstream writes: <output>/<input name>_<suffix>.mp4, every frame scaled by --outscale, H.264
yuv420p through --ffmpeg_bin, the input's audio stream-copied. STANDIN_REALESRGAN_SKIP_FRAME=1 skips one
frame the way upstream does on a CUDA out-of-memory RuntimeError (printed, exit code 0)."""

import importlib.util
import mimetypes
import os
import subprocess
import sys
from os import path as osp

sys.path.insert(1, os.environ["RAV_REPO"])
sys.path.insert(1, os.path.join(os.environ["RAV_REPO"], "tests"))

if importlib.util.find_spec("torchvision") is not None:
    # basicsr/data/degradations.py line 8, reached by `import realesrgan` (basicsr 1.4.2)
    from torchvision.transforms.functional_tensor import rgb_to_grayscale  # noqa: E402,F401

import realesrgan  # noqa: E402,F401  (the clone's package: needs realesrgan/version.py)

from replace_actor_video.upstream.realesrgan.mirror_inference_video import MODELS, RELEASES, build_parser  # noqa: E402
from standins._media import probe_frames_fps  # noqa: E402


def main():
    args = build_parser().parse_args()
    args.input = args.input.rstrip('/').rstrip('\\')
    os.makedirs(args.output, exist_ok=True)
    is_video = (mimetypes.guess_type(args.input)[0] or "").startswith("video")
    assert is_video, "the stand-in covers video input only"
    print(f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')}", flush=True)
    args.model_name = args.model_name.split('.pth')[0]
    _netscale, files = MODELS[args.model_name]  # upstream: NameError on `model` for any other name
    if not osp.isfile(osp.join('weights', args.model_name + '.pth')):
        root = osp.dirname(osp.abspath(__file__))
        for name in files:
            if not osp.isfile(osp.join(root, 'weights', osp.basename(name))):
                print(f'Downloading: "{RELEASES}{name}" to {osp.join(root, "weights")}', flush=True)
                sys.exit("urllib.error.URLError: <urlopen error [Errno -3] Temporary failure in name resolution>")
    video_name = osp.splitext(os.path.basename(args.input))[0]
    video_save_path = osp.join(args.output, f'{video_name}_{args.suffix}.mp4')
    frames, fps, width, height = probe_frames_fps(args.input)
    has_audio = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a", "-show_entries", "stream=index",
                                "-of", "csv=p=0", args.input], capture_output=True, text=True).stdout.strip() != ""
    keep = frames - 1 if os.environ.get("STANDIN_REALESRGAN_SKIP_FRAME") else frames
    if keep != frames:
        print("Error CUDA out of memory. Tried to allocate 2.00 GiB")
        print("If you encounter CUDA out of memory, try to set --tile with a smaller number.")
    out_w, out_h = int(width * args.outscale), int(height * args.outscale)
    cmd = [args.ffmpeg_bin, "-v", "error", "-y", "-i", args.input, "-map", "0:v:0"]
    cmd += ["-map", "0:a:0", "-c:a", "copy"] if has_audio else []
    cmd += ["-vf", f"scale={out_w}:{out_h}", "-frames:v", str(keep), "-r", str(args.fps or fps), "-c:v", "libx264",
            "-pix_fmt", "yuv420p", video_save_path]
    subprocess.run(cmd, check=True)
    print(f"inference: 100%|##########| {frames}/{frames} [00:01<00:00, 30.00frame/s]", flush=True)


if __name__ == '__main__':
    main()
