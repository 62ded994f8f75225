"""What a browser may hand the server: media only. A video (ffprobe finds a video stream), an image (Pillow
decodes it) or a points JSON (the mask package parses it), judged by content, never by the file name, and
stored inside the job folder under a name we choose (so an upload can never become an executable, a Python
module, an import path or a working directory). No gradio."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from ..core.atomic import atomic_file
from ..core.errors import UserError
from ..mask.points import load_points
from ..media.probe import IMAGE_SUFFIXES, VIDEO_SUFFIXES, check_image, probe_video

MEDIA_WIDGETS = ("video", "image", "points")  # the option widgets whose values are media files
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def check_media(path: str | Path, kind: str) -> str:
    """Refuse `path` unless its content is a `kind` (video, image, points); returns the file suffix it is
    stored with."""
    path = Path(path)
    suffix = path.suffix.lower()
    if kind == "video":
        probe_video(path)
        return suffix if suffix in VIDEO_SUFFIXES else ".mp4"
    if kind == "image":
        try:
            check_image(path)
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001  (Pillow's DecompressionBombError and kin are not OSErrors)
            raise UserError(f"{path}: not a usable image ({exc.__class__.__name__}); pass a PNG or JPEG") from None
        return suffix if suffix in IMAGE_SUFFIXES else ".png"
    if kind == "points":
        load_points(path)
        return ".json"
    raise UserError(f"{path}: only a video, an image or a points JSON can be used here")


def safe_stem(name: str, fallback: str) -> str:
    """A file name stem of letters, digits, '.', '_' and '-' only, never hidden, never an option."""
    stem = _UNSAFE.sub("_", Path(name).stem).strip("._-")[:60]
    return stem or fallback


def store_upload(source: str | Path, kind: str, folder: Path, option: str) -> Path:
    """Check `source` (an upload) and copy it to `folder/<option>-<name><suffix>`; the copy appears whole
    or not at all."""
    source = Path(source)
    suffix = check_media(source, kind)
    target = folder / f"{option}-{safe_stem(source.name, kind)}{suffix}"
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_file(target) as tmp:
        shutil.copyfile(source, tmp)
    return target
