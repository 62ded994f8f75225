"""Facts about media files from ffprobe's JSON output and Pillow (never parsed from text)."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ..core.errors import UserError

# The files we take as a video or an image: the UI's uploads, the dataset builder's inputs, the Runs view.
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")

MIN_SIDE, MAX_SIDE = 16, 8192  # px per side of a driving video or a reference image (README "Limits")


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int
    height: int
    fps: Fraction
    frames: int
    duration: float
    has_audio: bool
    codec: str
    pix_fmt: str

    @property
    def fps_text(self) -> str:
        """ffmpeg-ready rate: '30', '24000/1001'."""
        return str(self.fps.numerator) if self.fps.denominator == 1 else f"{self.fps.numerator}/{self.fps.denominator}"


def ffprobe_bin() -> str:
    exe = shutil.which("ffprobe")
    if not exe:
        raise UserError("ffprobe not found on PATH; install ffmpeg (apt-get install ffmpeg)")
    return exe


def _ffprobe(path: Path, extra: list[str]) -> dict:
    # An absolute path: a relative one starting with '-' would reach ffprobe as an option.
    argv = [ffprobe_bin(), "-v", "error", "-print_format", "json", *extra, str(path.absolute())]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["unreadable"])[-1]
        reason = reason.removeprefix(f"{path.absolute()}: ")  # ffprobe starts with the path we name already
        raise UserError(f"{path}: not a readable media file ({reason}); pass a video that plays (mp4, mov, mkv, webm)")
    return json.loads(proc.stdout or "{}")


def require_file(path: Path) -> None:
    if path.is_dir():
        raise UserError(f"{path}: this is a folder; pass a file in it")
    if not path.is_file():
        raise UserError(f"{path}: file not found")


def probe_video(path: str | Path, *, count_frames: bool = False) -> VideoInfo:
    """Probe a video; raise UserError naming the file when it is missing, unreadable or has no frames.

    `count_frames` reads every packet to count frames exactly (no decoding); otherwise the container's
    frame count is used and, when absent, estimated from duration × fps."""
    path = Path(path)
    require_file(path)
    extra = ["-show_streams", "-show_format"] + (["-count_packets"] if count_frames else [])
    data = _ffprobe(path, extra)
    container = data.get("format", {}).get("format_name", "")
    if container == "image2" or container.endswith("_pipe"):
        raise UserError(f"{path}: this is a still image, not a video; pass a video file (mp4, mov, mkv, webm)")
    streams = data.get("streams", [])
    video = next(
        (s for s in streams if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")),
        None,
    )
    if video is None:
        raise UserError(f"{path}: no video stream; pass a video file (mp4, mov, mkv, webm)")
    fps = _rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate"))
    duration = float(video.get("duration") or data.get("format", {}).get("duration") or 0.0)
    frames = int(video.get("nb_read_packets") or video.get("nb_frames") or 0)
    if not frames and fps and duration:
        frames = round(duration * fps)
    if frames <= 0 or not fps:
        raise UserError(f"{path}: the video stream has no decodable frames; re-export the video")
    if min(int(video.get("width") or 0), int(video.get("height") or 0)) < 1:
        raise UserError(
            f"{path}: the video stream has no picture size ({video.get('width')}x{video.get('height')}); "
            "re-export the video"
        )
    return VideoInfo(
        path=path,
        width=int(video["width"]),
        height=int(video["height"]),
        fps=fps,
        frames=frames,
        duration=duration or frames / fps,
        has_audio=any(s.get("codec_type") == "audio" for s in streams),
        codec=video.get("codec_name", ""),
        pix_fmt=video.get("pix_fmt", ""),
    )


def probe_input(path: str | Path, *, dry_run: bool, planned: VideoInfo | None) -> VideoInfo:
    """Facts about a stage's input video. In a dry-run pipeline the input of a later stage does not exist
    yet: `planned` describes what the earlier stage will write, so the command can still be printed."""
    if dry_run and planned is not None and not Path(path).exists():
        return dataclasses.replace(planned, path=Path(path))
    return probe_video(path, count_frames=True)


def _rate(text: str | None) -> Fraction | None:
    if not text or text in ("0/0", "0"):
        return None
    rate = Fraction(text)
    return rate if rate > 0 else None


def check_size(path: str | Path, width: int, height: int, what: str) -> None:
    """UserError unless each side of `what` (a video's frames, an image) is within MIN_SIDE..MAX_SIDE px."""
    if min(width, height) < MIN_SIDE or max(width, height) > MAX_SIDE:
        raise UserError(f"{path}: the {what} is {width}x{height}; use {MIN_SIDE} to {MAX_SIDE} px per side")


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from the image's header, nothing decoded: a 20000x20000 PNG of a few kilobytes is
    refused here with one line instead of being decompressed (Pillow's DecompressionBombError)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    require_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit below is lower
            with Image.open(path) as im:
                return im.size
    except Image.DecompressionBombError as exc:
        pixels = re.search(r"\((\d+) pixels\)", str(exc))
        count = f"{int(pixels[1]):,} pixels" if pixels else "too many pixels"
        raise UserError(f"{path}: the image has {count}; use {MIN_SIDE} to {MAX_SIDE} px per side") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise UserError(f"{path}: not a readable image ({exc.__class__.__name__}); pass a PNG or JPEG") from None


def check_image(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image within the size limits that Pillow can fully decode; UserError naming the
    file otherwise. The size is checked from the header before anything is decoded."""
    from PIL import Image

    width, height = image_size(path)
    check_size(path, width, height, "image")
    try:
        with Image.open(path) as im:
            im.load()
            return im.size
    except OSError as exc:
        raise UserError(f"{path}: not a readable image ({exc.__class__.__name__}); pass a PNG or JPEG") from None
