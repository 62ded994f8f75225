"""ffmpeg argv builders for the finishing steps every stage shares: retime, trim, audio mux, encode."""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

from ..core.errors import UserError
from ..core.paths import check_output_file

# H.264 yuv420p plays everywhere; CRF 14 keeps re-encoding loss far below what the generator leaves.
H264_ARGS = ["-c:v", "libx264", "-crf", "14", "-preset", "medium", "-pix_fmt", "yuv420p", "-movflags", "+faststart"]
AAC_ARGS = ["-c:a", "aac", "-b:a", "192k"]
# Containers that take H.264 + AAC as written above (ffmpeg refuses them in .webm, and guesses no format for .txt).
OUTPUT_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv")


def check_output_video(path: Path, **checks) -> None:
    """core/paths.check_output_file for a video we encode, and a name ffmpeg can write it under: found now, not
    when the last step muxes after the GPU work."""
    check_output_file(path, **checks)
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise UserError(
            f"{path}: a video is written as {', '.join(OUTPUT_SUFFIXES)}, not {path.suffix or 'a name without one'}; "
            f"e.g. {path.with_suffix('.mp4')}"
        )


def ffmpeg_bin() -> str:
    exe = shutil.which("ffmpeg")
    if not exe:
        raise UserError("ffmpeg not found on PATH; install ffmpeg (apt-get install ffmpeg)")
    return exe


def rate_text(fps: Fraction) -> str:
    return str(fps.numerator) if fps.denominator == 1 else f"{fps.numerator}/{fps.denominator}"


def retime_trim_mux_argv(
    video: Path, out: Path, *, fps: Fraction, frames: int, audio_from: Path | None = None
) -> list[str]:
    """Re-stamp every frame of `video` at `fps` (no frame dropped or repeated), keep the first `frames`,
    and take the audio of `audio_from` from its start, cut to the new video's duration.

    Upstream generate.py always writes 30 fps; the frames themselves were sampled at the preprocessing
    fps, so relabelling the timestamps (not resampling) restores the original speed and sync."""
    rate = rate_text(fps)
    argv = [ffmpeg_bin(), "-hide_banner", "-nostdin", "-y", "-i", str(video)]
    if audio_from is not None:
        argv += ["-i", str(audio_from)]
    argv += ["-map", "0:v:0"]
    if audio_from is not None:
        argv += ["-map", "1:a:0"]
    argv += ["-vf", f"setpts=N/(({rate})*TB)", "-r", rate, "-frames:v", str(frames), *H264_ARGS]
    if audio_from is not None:
        argv += [*AAC_ARGS, "-t", f"{float(frames / fps):.6f}"]
    argv.append(str(out))
    return argv


def mux_audio_argv(video: Path, audio_from: Path, out: Path, *, duration: float) -> list[str]:
    """Copy the video stream and add the first audio stream of `audio_from` from its start, cut to
    `duration` (the video's); a shorter audio track just ends early, the video is never cut."""
    return [
        ffmpeg_bin(),
        "-hide_banner",
        "-nostdin",
        "-y",
        "-i",
        str(video),
        "-i",
        str(audio_from),
        "-map",
        "0:v:0",
        "-map",
        "1:a:0",
        "-c:v",
        "copy",
        *AAC_ARGS,
        "-t",
        f"{duration:.6f}",
        str(out),
    ]
