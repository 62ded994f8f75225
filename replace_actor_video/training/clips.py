"""ffmpeg argv for the training clips: the reference frame, and every stream of a video cut into clips of
the same frames (the target video is first rebuilt frame for frame by resample.py)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from ..media.ffmpeg import H264_ARGS, ffmpeg_bin, rate_text


def reference_frame_argv(video: Path, index: int, out: Path) -> list[str]:
    """Frame `index` (0-based, in source frames) of `video` as a PNG."""
    return [
        ffmpeg_bin(),
        "-hide_banner",
        "-nostdin",
        "-y",
        "-i",
        str(video),
        "-map",
        "0:v:0",
        "-vf",
        f"select=eq(n\\,{index})",
        "-frames:v",
        "1",
        "-update",
        "1",
        str(out),
    ]


def clip_ranges(frames: int, clip_frames: int, max_clips: int = 0) -> list[tuple[int, int]]:
    """[start, end) frame ranges of consecutive clips. A video shorter than one clip becomes one shorter
    clip (DiffSynth trims it to 4n+1 frames); a tail shorter than a clip is dropped."""
    if frames < 5:
        return []
    if frames < clip_frames:
        ranges = [(0, frames)]
    else:
        ranges = [(start, start + clip_frames) for start in range(0, frames - clip_frames + 1, clip_frames)]
    return ranges[:max_clips] if max_clips > 0 else ranges


def cut_argv(source: Path, outputs: list[Path], ranges: list[tuple[int, int]], *, fps: Fraction) -> list[str]:
    """One ffmpeg run that writes clip k of `source` (frames ranges[k]) to outputs[k], each re-stamped
    frame by frame at `fps` from 0."""
    rate = rate_text(fps)
    graph = f"[0:v]split={len(ranges)}" + "".join(f"[s{k}]" for k in range(len(ranges)))
    for k, (start, end) in enumerate(ranges):
        graph += f";[s{k}]trim=start_frame={start}:end_frame={end},setpts=N/({rate}*TB)[c{k}]"
    argv = [ffmpeg_bin(), "-hide_banner", "-nostdin", "-y", "-i", str(source), "-filter_complex", graph]
    for k, out in enumerate(outputs):
        argv += ["-map", f"[c{k}]", "-an", "-r", rate, *H264_ARGS, str(out)]
    return argv
