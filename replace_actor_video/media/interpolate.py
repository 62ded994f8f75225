"""Frame-rate arithmetic and the ffmpeg steps around an interpolator or an upscaler: frames out to a
folder, an exact resample to the target rate, the final H.264 encode with the source audio, and the
check that the result has the frames, rate, audio and duration it must have."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

from ..core.errors import StageFailed, UserError
from .ffmpeg import AAC_ARGS, H264_ARGS, ffmpeg_bin, rate_text
from .probe import VideoInfo, probe_video

# 1-based, zero-padded: rife-ncnn-vulkan sorts input names as strings and numbers its outputs from 1.
FRAME_PATTERN = "%08d.png"


def fps_fraction(value: float) -> Fraction:
    """30 → 30, 29.97 → 2997/100: the rate as typed, without binary floating-point noise."""
    rate = Fraction(str(value))
    if rate <= 0:
        raise UserError(f"--target_fps {value}: must be greater than 0")
    return rate


def target_frames(frames: int, source_fps: Fraction, target_fps: Fraction) -> int:
    """Frames at `target_fps` that span the source's duration (`frames / source_fps`), rounded to the
    nearest frame, so the result lasts as long as the source within half a frame."""
    return max(1, math.floor(frames * target_fps / source_fps + Fraction(1, 2)))


def pad_frames(source_fps: Fraction, target_fps: Fraction) -> int:
    """How many frames an interpolator may leave short of the full duration: its last source interval
    (minterpolate and Practical-RIFE stop at the final source frame), plus rounding."""
    return math.ceil(target_fps / source_fps) + 2


def exact_length_filter(fps: Fraction, frames: int, pad: int) -> str:
    """Repeat the last frame up to `pad` times, renumber every frame at exactly `fps` (tpad stamps its
    copies from the input's end time, which would leave a gap that a constant-rate encode fills with
    duplicates), and keep the first `frames`. Trimming in the filter graph, not with -frames:v/-t, keeps
    ffmpeg from ending the audio early."""
    return f"tpad=stop_mode=clone:stop={pad},setpts=N/(({rate_text(fps)})*TB),trim=end_frame={frames}"


def _encode_args(*, fps: Fraction, frames: int, audio: bool) -> list[str]:
    args = ["-r", rate_text(fps), *H264_ARGS]
    if audio:
        args += [*AAC_ARGS, "-af", f"atrim=end={float(frames / fps):.6f}"]
    return args


def _inputs(video: Path, audio_from: Path | None, *, own_audio: bool = False) -> list[str]:
    argv = ["-i", str(video)]
    if audio_from is not None:
        argv += ["-i", str(audio_from), "-map", "0:v:0", "-map", "1:a:0"]
    else:
        argv += ["-map", "0:v:0"] + (["-map", "0:a:0"] if own_audio else [])
    return argv


def extract_frames_argv(video: Path, out_dir: Path) -> list[str]:
    """Every frame of `video` as out_dir/00000001.png, 00000002.png, … (the image2 muxer neither drops
    nor duplicates frames)."""
    return [
        ffmpeg_bin(),
        "-hide_banner",
        "-nostdin",
        "-y",
        "-i",
        str(video),
        "-map",
        "0:v:0",
        "-start_number",
        "1",
        str(out_dir / FRAME_PATTERN),
    ]


def frames_to_video_argv(
    frames_dir: Path, out: Path, *, fps: Fraction, frames: int, audio_from: Path | None
) -> list[str]:
    """Encode frames_dir/00000001.png… (exactly `frames` of them) at `fps`, adding the first audio stream
    of `audio_from` cut to the video's duration."""
    return [
        ffmpeg_bin(),
        "-hide_banner",
        "-nostdin",
        "-y",
        "-framerate",
        rate_text(fps),
        "-start_number",
        "1",
        *_inputs(frames_dir / FRAME_PATTERN, audio_from),
        *_encode_args(fps=fps, frames=frames, audio=audio_from is not None),
        str(out),
    ]


def resample_argv(
    video: Path, out: Path, *, rate_in: Fraction, fps: Fraction, frames: int, pad: int, audio_from: Path | None
) -> list[str]:
    """Re-stamp `video` at `rate_in` (what its frames really are: an upstream writer may have rounded the
    container rate), resample to exactly `fps` by taking the nearest frame, and keep exactly `frames`
    (the last one repeated when up to `pad` are missing at the end)."""
    vf = f"setpts=N/(({rate_text(rate_in)})*TB),fps={rate_text(fps)},{exact_length_filter(fps, frames, pad)}"
    return [
        ffmpeg_bin(),
        "-hide_banner",
        "-nostdin",
        "-y",
        *_inputs(video, audio_from),
        "-vf",
        vf,
        *_encode_args(fps=fps, frames=frames, audio=audio_from is not None),
        str(out),
    ]


def filtered_argv(video: Path, out: Path, *, vf: str, fps: Fraction, frames: int, pad: int, audio: bool) -> list[str]:
    """Run the filter chain `vf` (which outputs `fps`) over `video`, keeping exactly `frames` and the
    video's own audio."""
    return [
        ffmpeg_bin(),
        "-hide_banner",
        "-nostdin",
        "-y",
        *_inputs(video, None, own_audio=audio),
        "-vf",
        f"{vf},{exact_length_filter(fps, frames, pad)}",
        *_encode_args(fps=fps, frames=frames, audio=audio),
        str(out),
    ]


def video_only_argv(video: Path, out: Path) -> list[str]:
    """Copy the first video stream into an MP4 (no re-encode): upstreams get a file whose name says
    'video', whose container records nb_frames, and no audio for them to mishandle."""
    return [
        ffmpeg_bin(),
        "-hide_banner",
        "-nostdin",
        "-y",
        "-i",
        str(video),
        "-map",
        "0:v:0",
        "-c:v",
        "copy",
        "-an",
        str(out),
    ]


def finish_upscaled_argv(video: Path, out: Path, *, copy: bool, audio_from: Path | None, duration: float) -> list[str]:
    """The upscaled video as H.264 yuv420p (`copy` when it already is, else encoded) with the source audio
    cut to `duration`."""
    argv = [ffmpeg_bin(), "-hide_banner", "-nostdin", "-y", *_inputs(video, audio_from)]
    if copy:
        argv += ["-c:v", "copy", "-movflags", "+faststart"]
    else:
        argv += H264_ARGS
    if audio_from is not None:
        argv += [*AAC_ARGS, "-af", f"atrim=end={duration:.6f}"]
    return [*argv, str(out)]


def check_result(path: Path, *, frames: int, fps: Fraction, audio: bool, duration: float, what: str) -> VideoInfo:
    """StageFailed unless `path` is H.264 yuv420p with exactly `frames` at `fps`, audio when the source
    had it, and lasts `duration` within one frame."""
    info = probe_video(path, count_frames=True)
    problems = []
    if info.frames != frames:
        problems.append(f"{info.frames} frames instead of {frames}")
    if abs(float(info.fps) - float(fps)) > 1e-3:
        problems.append(f"{info.fps} fps instead of {fps}")
    if (info.codec, info.pix_fmt) != ("h264", "yuv420p"):
        problems.append(f"{info.codec}/{info.pix_fmt} instead of h264/yuv420p")
    if audio and not info.has_audio:
        problems.append("no audio stream")
    if abs(info.frames / float(fps) - duration) > 1 / float(fps) + 1e-6:
        problems.append(f"lasts {info.frames / float(fps):.3f}s instead of {duration:.3f}s")
    if problems:
        raise StageFailed(f"{what}: {', '.join(problems)}")
    return info


def count_files(folder: Path, suffix: str = ".png") -> int:
    return sum(1 for p in folder.iterdir() if p.suffix == suffix) if folder.is_dir() else 0
