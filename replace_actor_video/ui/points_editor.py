"""The points editor's model: clicks on one frame, drawn on it, saved as the mask package's points JSON
(`replace_actor_video.mask.points`, format in docs/MASK.md), and a SAM2 preview of the mask they give.
No gradio: the app only forwards clicks here."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ..core.errors import UserError
from ..mask.points import FramePoints, PointsSpec, save_points
from ..mask.preview import render_preview
from .previews import cache_name, grab_frame

POSITIVE_COLOUR = (40, 200, 60)
NEGATIVE_COLOUR = (230, 40, 40)
_SEGMENTERS: dict[tuple[str, str], Any] = {}  # the loaded SAM2 model, kept between preview clicks


@dataclass(frozen=True)
class Click:
    x: float
    y: float
    positive: bool


@dataclass(frozen=True)
class Editor:
    """One frame of one video and the clicks on it (the UI keeps one per browser session)."""

    video: str = ""
    frame: int = 0
    image: str = ""  # the frame as a PNG
    width: int = 0
    height: int = 0
    clicks: tuple[Click, ...] = field(default_factory=tuple)

    @property
    def loaded(self) -> bool:
        return bool(self.image)

    def click(self, x: float, y: float, positive: bool) -> "Editor":
        if not self.loaded:
            raise UserError("load a frame first (choose a video and press 'Load frame')")
        x, y = min(max(float(x), 0.0), self.width - 1.0), min(max(float(y), 0.0), self.height - 1.0)
        return replace(self, clicks=self.clicks + (Click(x, y, positive),))

    def undo(self) -> "Editor":
        return replace(self, clicks=self.clicks[:-1])

    def clear(self) -> "Editor":
        return replace(self, clicks=())

    def spec(self, *, normalized: bool = False) -> PointsSpec:
        positive = tuple((c.x, c.y) for c in self.clicks if c.positive)
        negative = tuple((c.x, c.y) for c in self.clicks if not c.positive)
        if not positive:
            raise UserError("no positive point yet: click on the person (Positive mode) at least once")
        if normalized:
            scale = lambda p: (round(p[0] / self.width, 5), round(p[1] / self.height, 5))  # noqa: E731
            frame = FramePoints(self.frame, tuple(map(scale, positive)), tuple(map(scale, negative)))
            return PointsSpec((frame,), "normalized")
        frame = FramePoints(self.frame, tuple((round(x, 1), round(y, 1)) for x, y in positive),
                            tuple((round(x, 1), round(y, 1)) for x, y in negative))
        return PointsSpec((frame,), "pixels", self.width, self.height)

    def to_json(self, *, normalized: bool = False) -> str:
        return json.dumps(self.spec(normalized=normalized).to_dict(), indent=2)


def load_frame(video: str | Path, frame: int, cache: Path) -> Editor:
    """An editor on frame `frame` of `video` (the previous clicks do not carry over: they were for another
    picture)."""
    video = Path(video)
    if not video.is_file():
        raise UserError(f"{video}: no such video; upload one or give a path inside the workspace")
    stat = video.stat()
    png = grab_frame(video, frame, cache / cache_name("frame", video.resolve(), stat.st_mtime_ns, frame))
    with Image.open(png) as im:
        width, height = im.size
    return Editor(str(video), int(frame), str(png), width, height)


def draw(editor: Editor) -> Image.Image | None:
    """The frame with every click marked: green discs for positive, red crosses for negative."""
    if not editor.loaded:
        return None
    with Image.open(editor.image) as im:
        canvas = im.convert("RGB")
    pen = ImageDraw.Draw(canvas)
    r = max(5, round(min(editor.width, editor.height) / 60))
    for n, c in enumerate(editor.clicks, 1):
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


def preview_mask(editor: Editor, checkpoint: Path, cache: Path, *, device: str | None = None) -> Path:
    """Run SAM2 on the editor's frame with its clicks and save the frame with the mask laid over it."""
    from ..mask.sam2_video import Sam2Settings, Sam2VideoSegmenter  # needs torch + sam2: imported on demand

    spec = editor.spec()
    if device is None:
        try:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        except ImportError:
            device = "cpu"  # the segmenter reports the missing package itself
    key = (str(checkpoint), device)
    if key not in _SEGMENTERS:
        _SEGMENTERS.clear()  # one model at a time: it holds GPU memory
        _SEGMENTERS[key] = Sam2VideoSegmenter(Sam2Settings(checkpoint=Path(checkpoint), device=device))
    with Image.open(editor.image) as im:
        frame = np.asarray(im.convert("RGB"))
    clicks = replace(spec.frames[0], frame=0)
    masks = _SEGMENTERS[key].segment_chunk(frame[None], {0: clicks})
    out = cache / cache_name("sam2", editor.image, editor.clicks, checkpoint)
    Image.fromarray(render_preview(frame, masks[0], clicks)).save(out)
    return out
