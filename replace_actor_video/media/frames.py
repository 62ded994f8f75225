"""Video frames as numpy arrays, through the ffmpeg binary over pipes (argv lists, never a shell).

Reading yields RGB uint8 frames in presentation order with no frame dropped or repeated
(`-fps_mode passthrough`), so frame i here is frame i for decord (what upstream Wan2.2 reads with).

Writing goes to a gitignored temp name beside the target and is renamed only after ffmpeg exited 0,
so a crash or Ctrl-C never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np

from ..core.atomic import atomic_file
from ..core.errors import StageFailed, UserError
from .ffmpeg import ffmpeg_bin, rate_text
from .probe import probe_video

if TYPE_CHECKING:  # typing.Self is Python 3.11+; only annotations use it (postponed by __future__)
    from typing import Self

# Lossless H.264 of a full-range grey picture: Y holds exactly 0/255 and chroma is the neutral 128,
# so every decoder returns 0/255 whatever range or matrix it assumes (a limited-range reading of
# 0/255 clips back to 0/255). yuv444p keeps odd sizes legal; decord/libavcodec decode it.
MASK_CODEC_ARGS = ["-c:v", "libx264", "-qp", "0", "-preset", "medium", "-pix_fmt", "yuv444p", "-color_range", "pc"]


def _rgb_codec_args(crf: int) -> list[str]:
    # The pad keeps yuv420p legal for odd sizes (preprocessing sizes are multiples of 16: a no-op there).
    return [
        "-vf",
        "pad=ceil(iw/2)*2:ceil(ih/2)*2",
        "-c:v",
        "libx264",
        "-crf",
        str(crf),
        "-preset",
        "medium",
        "-pix_fmt",
        "yuv420p",
        "-movflags",
        "+faststart",
    ]


def _last_line(log: IO[bytes]) -> str:
    log.seek(0)
    lines = log.read().decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else "no message"


def iter_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Yield every frame of the first video stream as an (H, W, 3) uint8 RGB array."""
    info = probe_video(path)
    frame_bytes = info.width * info.height * 3
    # -noautorotate: decord (upstream's reader) ignores rotation metadata, and the frame size must be
    # the probed (coded) size for the byte count below to hold.
    argv = [
        ffmpeg_bin(),
        "-hide_banner",
        "-nostdin",
        "-v",
        "error",
        "-noautorotate",
        "-i",
        str(path),
        "-map",
        "0:v:0",
        "-fps_mode",
        "passthrough",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-",
    ]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
        assert proc.stdout is not None
        try:
            while True:
                buf = proc.stdout.read(frame_bytes)
                if len(buf) < frame_bytes:
                    break
                yield np.frombuffer(buf, np.uint8).reshape(info.height, info.width, 3)
            if proc.wait() != 0:
                raise StageFailed(f"ffmpeg could not decode {path}: {_last_line(log)}")
        finally:
            # The consumer may stop early (GeneratorExit): end our decoder instead of leaving it blocked.
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()


def read_frames(path: str | Path, indices: Sequence[int] | None = None) -> np.ndarray:
    """All frames, or the frames at `indices` (repeats allowed, any order), as (T, H, W, 3) uint8 RGB."""
    if indices is None:
        frames = list(iter_frames(path))
        if not frames:
            raise UserError(f"{path}: no decodable frames; re-export the video")
        return np.stack(frames)
    wanted: dict[int, list[int]] = {}
    for pos, idx in enumerate(indices):
        wanted.setdefault(int(idx), []).append(pos)
    out: list[np.ndarray | None] = [None] * len(indices)
    last = max(wanted) if wanted else -1
    for i, frame in enumerate(iter_frames(path)):
        for pos in wanted.get(i, ()):
            out[pos] = frame
        if i >= last:
            break
    missing = sorted(i for i, ps in wanted.items() if out[ps[0]] is None)
    if missing:
        raise UserError(f"{path}: frames {missing[:5]} are past the end of the video; re-export the video")
    return np.stack(out) if out else np.zeros((0, 0, 0, 3), np.uint8)


class VideoWriter:
    """Feed frames one by one to an ffmpeg encoder; the file appears under its name on a clean close.

    Use as a context manager: leaving the block with an exception kills ffmpeg and removes the temp."""

    def __init__(
        self, path: str | Path, width: int, height: int, fps: Fraction | float, *, mask: bool = False, crf: int = 12
    ) -> None:
        self.path = Path(path)
        self.width, self.height, self.mask = int(width), int(height), mask
        self.fps = Fraction(fps).limit_denominator(1001 * 1000)
        self._stack = contextlib.ExitStack()
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.frames_written = 0
        self._codec = MASK_CODEC_ARGS if mask else _rgb_codec_args(crf)

    def __enter__(self) -> Self:
        tmp = self._stack.enter_context(atomic_file(self.path))
        self._log = self._stack.enter_context(tempfile.TemporaryFile())
        in_fmt = ["-pix_fmt", "yuv444p", "-color_range", "pc"] if self.mask else ["-pix_fmt", "rgb24"]
        argv = [
            ffmpeg_bin(),
            "-hide_banner",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-f",
            "rawvideo",
            *in_fmt,
            "-s",
            f"{self.width}x{self.height}",
            "-r",
            rate_text(self.fps),
            "-i",
            "-",
            *self._codec,
            str(tmp),
        ]
        self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log)
        return self

    def write(self, frame: np.ndarray) -> None:
        """An (H, W, 3) uint8 RGB frame, or for a mask writer an (H, W) bool/0-1/0-255 mask."""
        assert self._proc is not None and self._proc.stdin is not None, "use VideoWriter as a context manager"
        if self.mask:
            if frame.shape != (self.height, self.width):
                raise ValueError(f"mask frame {frame.shape} != {(self.height, self.width)}")
            y = np.where(frame > 0, np.uint8(255), np.uint8(0))
            data = y.tobytes() + bytes([128]) * (2 * y.size)
        else:
            if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
                raise ValueError(f"frame {frame.shape} {frame.dtype} != {(self.height, self.width, 3)} uint8")
            data = np.ascontiguousarray(frame).tobytes()
        try:
            self._proc.stdin.write(data)
        except BrokenPipeError:
            self._proc.wait()
            assert self._log is not None
            raise StageFailed(f"ffmpeg stopped while writing {self.path}: {_last_line(self._log)}") from None
        self.frames_written += 1

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        proc = self._proc
        assert proc is not None and proc.stdin is not None and self._log is not None
        failure: BaseException | None = None
        if exc_type is None:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass  # ffmpeg already died: its exit code and log say why
            if proc.wait() != 0:
                failure = StageFailed(f"ffmpeg could not write {self.path}: {_last_line(self._log)}")
            elif self.frames_written == 0:
                failure = ValueError(f"no frames were written to {self.path}")
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        error = failure or exc
        if error is None:
            self._stack.close()  # atomic_file renames the temp to the final name
            return
        # Passing the error into atomic_file removes the temp and leaves the final name untouched.
        self._stack.__exit__(type(error), error, error.__traceback__)
        if failure is not None:
            raise failure


def _write_all(
    path: str | Path, frames: Iterable[np.ndarray], fps: Fraction | float, what: str, **writer: object
) -> int:
    """Size the writer from the first frame, write them all; returns the number written."""
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise ValueError(f"no {what} to write to {path}")
    with VideoWriter(path, first.shape[1], first.shape[0], fps, **writer) as w:
        w.write(first)
        for frame in it:
            w.write(frame)
    return w.frames_written


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: Fraction | float, *, crf: int = 12) -> int:
    """Encode RGB frames to H.264 (yuv420p) atomically; returns the number of frames written."""
    return _write_all(path, frames, fps, "frames", crf=crf)


def write_mask_video(path: str | Path, masks: Iterable[np.ndarray], fps: Fraction | float) -> int:
    """Encode (H, W) masks as a lossless 3-channel-decodable mp4 whose frames decode to exactly 0/255."""
    return _write_all(path, masks, fps, "masks", mask=True)
