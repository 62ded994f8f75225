"""Rebuild the frames the official preprocessing drew its pose and face from, as a video.

DiffSynth reads frames by index, so the training target `video` must hold exactly the source frames that
preprocess_data.py sampled: frame round(i / fps * src_fps) (numpy's round half to even) for
i < int(frames / src_fps * fps) (upstream/wan/preprocess.py frame_indices).
ffmpeg's fps filter picks other frames (from 24 or 25 fps to 30 it differs every few frames), so we decode
every frame with ffmpeg, keep the sampled ones in Python (repeating a frame where the sampling does) and
encode them with a second ffmpeg. Frames are fitted into the pose size with centred black bars, as
upstream's padding_resize places the pose.

Run by the dataset builder as its own process (so it is logged and can be stopped like every step):
    python -m replace_actor_video.training.resample --video SRC --out OUT --width W --height H --fps 30
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

from ..media.ffmpeg import H264_ARGS, ffmpeg_bin, rate_text
from ..media.probe import probe_video
from ..upstream.wan.preprocess import frame_indices


def fit_filter(width: int, height: int) -> str:
    return (
        f"scale={width}:{height}:force_original_aspect_ratio=decrease,pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1"
    )


def resample(video: Path, out: Path, *, width: int, height: int, fps: int) -> int:
    """Write the sampled frames of `video` to `out`; returns the frame count."""
    info = probe_video(video, count_frames=True)
    video_fps = float(info.fps)
    indices = frame_indices(info.frames, video_fps, float(fps), info.duration)
    rate = info.fps if fps == -1 else Fraction(fps)
    frame_bytes = width * height * 3
    decode = [
        ffmpeg_bin(),
        "-hide_banner",
        "-nostdin",
        "-v",
        "error",
        "-i",
        str(video),
        "-map",
        "0:v:0",
        "-vf",
        fit_filter(width, height),
        "-fps_mode",
        "passthrough",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-",
    ]
    encode = [
        ffmpeg_bin(),
        "-hide_banner",
        "-nostdin",
        "-v",
        "error",
        "-y",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{width}x{height}",
        "-r",
        rate_text(rate),
        "-i",
        "-",
        *H264_ARGS,
        str(out),
    ]
    with (
        subprocess.Popen(decode, stdout=subprocess.PIPE) as dec,
        subprocess.Popen(encode, stdin=subprocess.PIPE) as enc,
    ):
        current, frame = -1, b""
        for wanted in indices:
            while current < wanted:
                chunk = dec.stdout.read(frame_bytes)
                if len(chunk) < frame_bytes:
                    break  # the source ran out: repeat its last frame, as decord's clipped index would
                frame, current = chunk, current + 1
            enc.stdin.write(frame)
        enc.stdin.close()
        dec.stdout.close()
        dec.kill()  # frames past the last sampled one are not needed
    if enc.returncode != 0:
        raise SystemExit(f"resample: the encoder failed with exit code {enc.returncode}")
    if current < 0:
        raise SystemExit(f"resample: no frame could be decoded from {video}")
    return len(indices)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--width", required=True, type=int)
    parser.add_argument("--height", required=True, type=int)
    parser.add_argument("--fps", required=True, type=int, help="the preprocessing --fps (-1 = the source rate)")
    args = parser.parse_args(argv)
    frames = resample(args.video, args.out, width=args.width, height=args.height, fps=args.fps)
    print(f"resample: {frames} frames at {args.fps} fps, {args.width}x{args.height} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
