"""The mask tool's model: the driving video's frames as preprocessing will see them (sampled at the chosen fps,
resized to the chosen area exactly as upstream does: mask/contour.py), clicks on any of those frames saved
as the mask package's points JSON (docs/MASK.md), and a preview of the mask those clicks give over a range
of frames: SAM2 → grow → blockify, the same chain as the mask stage, played over the video. No gradio."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ..core.errors import UserError
from ..mask.blockify import blockify_frame
from ..mask.contour import sampled_frames
from ..mask.grow import grow_masks
from ..mask.points import FramePoints, PointsSpec, load_points, resolve_points, save_points
from ..mask.preview import render_preview
from ..media.frames import VideoWriter
from ..media.probe import probe_video
from ..upstream.wan.preprocess import frame_indices, upstream_resize, upstream_size
from .previews import cache_name, grab_frame

POSITIVE_COLOUR = (40, 200, 60)
NEGATIVE_COLOUR = (230, 40, 40)
_SEGMENTERS: dict[tuple[str, str, str | None, int | None], Any] = {}  # the loaded SAM2 model, kept between previews


@dataclass(frozen=True)
class Click:
    frame: int
    x: float
    y: float
    positive: bool

    def describe(self) -> str:
        return f"frame {self.frame}: {'positive' if self.positive else 'negative'} ({self.x:.0f}, {self.y:.0f})"


@dataclass(frozen=True)
class Editor:
    """A driving video as the mask stage will see it, the frame on show, and the clicks on any frames
    (the UI keeps one per browser session)."""

    video: str = ""
    indices: tuple[int, ...] = ()  # source frame number of each preprocessed frame
    fps: float = 0.0  # the preprocessed frames' rate
    area: tuple[int, int] = (1280, 720)
    width: int = 0  # the preprocessed frame size
    height: int = 0
    frame: int = 0  # the preprocessed frame on show
    image: str = ""  # that frame as a PNG
    clicks: tuple[Click, ...] = field(default_factory=tuple)

    @property
    def loaded(self) -> bool:
        return bool(self.image)

    @property
    def frames(self) -> int:
        return len(self.indices)

    def click(self, x: float, y: float, positive: bool) -> Editor:
        if not self.loaded:
            raise UserError("load a video first (choose one and press 'Load video')")
        x, y = min(max(float(x), 0.0), self.width - 1.0), min(max(float(y), 0.0), self.height - 1.0)
        return replace(self, clicks=self.clicks + (Click(self.frame, x, y, positive),))

    def remove(self, numbers: list[int]) -> Editor:
        """Without the clicks numbered `numbers` (1-based, as listed)."""
        drop = {n - 1 for n in numbers}
        return replace(self, clicks=tuple(c for i, c in enumerate(self.clicks) if i not in drop))

    def undo(self) -> Editor:
        return replace(self, clicks=self.clicks[:-1])

    def clear_frame(self) -> Editor:
        return replace(self, clicks=tuple(c for c in self.clicks if c.frame != self.frame))

    def listing(self) -> list[tuple[str, int]]:
        """(text, number) of every click, by frame: what the UI lists for removal."""
        order = sorted(range(len(self.clicks)), key=lambda i: (self.clicks[i].frame, i))
        return [(f"{n + 1}. {self.clicks[n].describe()}", n + 1) for n in order]

    def clicked_frames(self) -> list[int]:
        return sorted({c.frame for c in self.clicks})

    def spec(self, *, normalized: bool = False) -> PointsSpec:
        """The clicks as a points JSON document (every clicked frame needs a positive click)."""
        if not any(c.positive for c in self.clicks):
            raise UserError("no positive point yet: click on the person (Positive mode) at least once")
        frames = []
        for number in self.clicked_frames():
            here = [c for c in self.clicks if c.frame == number]
            if not any(c.positive for c in here):
                raise UserError(f"frame {number} has only negative clicks; add a positive one or remove them")
            if normalized:
                pts = [((round(c.x / self.width, 5), round(c.y / self.height, 5)), c.positive) for c in here]
            else:
                pts = [((round(c.x, 1), round(c.y, 1)), c.positive) for c in here]
            frames.append(FramePoints(number, tuple(p for p, pos in pts if pos), tuple(p for p, pos in pts if not pos)))
        if normalized:
            return PointsSpec(tuple(frames), "normalized")
        return PointsSpec(tuple(frames), "pixels", self.width, self.height)

    def to_json(self, *, normalized: bool = False) -> str:
        return json.dumps(self.spec(normalized=normalized).to_dict(), indent=2)

    def with_points(self, path: Path) -> Editor:
        """The clicks of a points JSON (pixels of these frames, or normalized) in place of the current ones."""
        spec = resolve_points(load_points(path), self.width, self.height, self.frames)
        clicks = [Click(f.frame, x, y, True) for f in spec.frames for x, y in f.positive]
        clicks += [Click(f.frame, x, y, False) for f in spec.frames for x, y in f.negative]
        return replace(self, clicks=tuple(sorted(clicks, key=lambda c: c.frame)))


def load_video(video: str | Path, *, fps: int, area: tuple[int, int], cache: Path) -> Editor:
    """An editor on `video` as preprocessing with --fps/--resolution would sample it, showing frame 0."""
    video = Path(video)
    info = probe_video(video, count_frames=True)
    indices = frame_indices(info.frames, float(info.fps), float(fps), info.duration)
    if not indices:
        raise UserError(f"{video}: too short to give a frame at {fps} fps; choose a longer video")
    width, height = upstream_size(info.width, info.height, area[0] * area[1])
    rate = float(info.fps) if fps == -1 else float(fps)
    editor = Editor(str(video), tuple(indices), rate, tuple(area), width, height)
    return show(editor, 0, cache)


def show(editor: Editor, frame: int, cache: Path) -> Editor:
    """The editor showing preprocessed frame `frame` (the clicks stay: they belong to their frames)."""
    if not editor.indices:
        raise UserError("load a video first (choose one and press 'Load video')")
    frame = min(max(int(frame), 0), editor.frames - 1)
    video = Path(editor.video)
    stat = video.stat()
    key = (video.resolve(), stat.st_mtime_ns, editor.indices[frame], editor.area)
    png = cache / cache_name("frame", *key)
    if not png.is_file():
        raw = grab_frame(video, editor.indices[frame], cache / cache_name("raw", *key))
        with Image.open(raw) as im:
            rgb = np.asarray(im.convert("RGB"))
        Image.fromarray(upstream_resize(rgb, editor.area[0] * editor.area[1])).save(png)
    return replace(editor, frame=frame, image=str(png))


def draw(editor: Editor) -> Image.Image | None:
    """The frame on show with its clicks marked: green discs for positive, red crossed discs for negative,
    each numbered as listed."""
    if not editor.loaded:
        return None
    with Image.open(editor.image) as im:
        canvas = im.convert("RGB")
    pen = ImageDraw.Draw(canvas)
    r = max(5, round(min(editor.width, editor.height) / 60))
    for n, c in enumerate(editor.clicks, 1):
        if c.frame != editor.frame:
            continue
        box = (c.x - r, c.y - r, c.x + r, c.y + r)
        pen.ellipse(box, fill=POSITIVE_COLOUR if c.positive else NEGATIVE_COLOUR, outline=(255, 255, 255), width=2)
        if not c.positive:
            pen.line((c.x - r / 2, c.y - r / 2, c.x + r / 2, c.y + r / 2), fill=(255, 255, 255), width=2)
            pen.line((c.x - r / 2, c.y + r / 2, c.x + r / 2, c.y - r / 2), fill=(255, 255, 255), width=2)
        pen.text((c.x + r + 2, c.y - r), str(n), fill=(255, 255, 255))
    return canvas


def save(editor: Editor, path: Path, *, normalized: bool = False) -> Path:
    save_points(editor.spec(normalized=normalized), path)
    return path


@dataclass(frozen=True)
class MaskSettings:
    """The mask stage's options the preview uses (values of MaskOptions, same meaning)."""

    checkpoint: Path
    config: str | None = None
    device: str = "auto"
    image_size: int | None = None
    grow: int = 10
    grow_shape: str = "diamond"
    block: int = 32
    snap16: bool = False


def _device(requested: str) -> str:
    if requested != "auto":
        return requested
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"  # the segmenter reports the missing package itself


def _segmenter(settings: MaskSettings) -> Any:
    from ..mask.sam2_video import Sam2Settings, Sam2VideoSegmenter  # needs torch + sam2: imported on demand

    device = _device(settings.device)
    key = (str(settings.checkpoint), device, settings.config, settings.image_size)
    if key not in _SEGMENTERS:
        _SEGMENTERS.clear()  # one model at a time: it holds GPU memory
        _SEGMENTERS[key] = Sam2VideoSegmenter(
            Sam2Settings(settings.checkpoint, settings.config, device, settings.image_size)
        )
    return _SEGMENTERS[key]


def preview_mask(editor: Editor, first: int, last: int, settings: MaskSettings, cache: Path) -> Path:
    """SAM2 over preprocessed frames first..last with the clicks in that range, then grow and blockify as
    the mask stage does; written as a video of the frames with the mask laid over them (mask_preview.mp4's
    look). Returns the video."""
    from ..mask.sam2_video import segment_video

    first, last = max(0, int(first)), min(int(last), editor.frames - 1)
    if last < first:
        raise UserError(f"frames {first}..{last}: the range is empty; choose a first frame before the last one")
    spec = editor.spec()
    inside = tuple(replace(f, frame=f.frame - first) for f in spec.frames if first <= f.frame <= last)
    if not inside:
        raise UserError(
            f"no clicks on frames {first}..{last}; click on the person in that range (clicked: "
            f"{', '.join(map(str, editor.clicked_frames()))})"
        )
    clicks = replace(spec, frames=inside)
    key = (
        Path(editor.video).resolve(),
        Path(editor.video).stat().st_mtime_ns,
        editor.indices[first : last + 1],
        editor.area,
        clicks,
        settings,
    )
    out = cache / cache_name("maskpreview", *key, suffix=".mp4")
    if out.is_file():
        return out
    segmenter = _segmenter(settings)
    area = editor.area[0] * editor.area[1]
    indices = list(editor.indices[first : last + 1])
    by_frame = {f.frame: f for f in inside}

    def frames() -> Iterator[np.ndarray]:
        return sampled_frames(Path(editor.video), indices, area)

    with VideoWriter(out, editor.width, editor.height, Fraction(editor.fps).limit_denominator(1001), crf=20) as writer:
        masks = segment_video(segmenter, frames(), clicks, chunk_frames=max(2, len(indices)))
        for t, (frame, mask) in enumerate(zip(frames(), masks)):
            if mask.any():
                mask = blockify_frame(
                    grow_masks(mask, settings.grow, settings.grow_shape), settings.block, snap16=settings.snap16
                )
            writer.write(render_preview(frame, mask, by_frame.get(t)))
    return out
