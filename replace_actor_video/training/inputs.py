"""The videos a training dataset is built from: a folder (prompt and reference as optional side files) or a
CSV (columns video, and optionally prompt and reference)."""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import UserError
from ..media.probe import IMAGE_SUFFIXES, VIDEO_SUFFIXES

REFERENCE_COLUMNS = ("reference", "refer_path", "reference_image")


@dataclass(frozen=True)
class VideoItem:
    id: str  # stable folder name: the file stem plus a hash of the absolute path, so reruns find their work
    video: Path
    prompt: str | None
    reference: Path | None


def item_id(video: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", video.stem).strip("._") or "video"
    return f"{stem[:48]}-{hashlib.sha256(str(video).encode()).hexdigest()[:8]}"


def _side_file(video: Path, suffixes: tuple[str, ...]) -> Path | None:
    return next((video.with_suffix(s) for s in suffixes if video.with_suffix(s).is_file()), None)


def from_folder(folder: Path) -> list[VideoItem]:
    """Every video directly in `folder`, sorted; `<name>.txt` beside one is its prompt, `<name>.png` (or
    .jpg/.jpeg/.webp/.bmp) its reference image."""
    items = []
    for video in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES):
        video = video.resolve()
        prompt_file = video.with_suffix(".txt")
        prompt = prompt_file.read_text(encoding="utf-8").strip() if prompt_file.is_file() else None
        items.append(VideoItem(item_id(video), video, prompt or None, _side_file(video, IMAGE_SUFFIXES)))
    return items


def from_csv(path: Path) -> list[VideoItem]:
    """Rows of a CSV with a `video` column; `prompt` and `reference` are optional, relative paths are taken
    from the CSV's folder."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        columns = reader.fieldnames or []
        if "video" not in columns:
            raise UserError(
                f"{path}: no 'video' column (found {', '.join(columns) or 'none'}); "
                "write a header line: video,prompt,reference"
            )
        ref_column = next((c for c in REFERENCE_COLUMNS if c in columns), None)
        items, seen = [], set()
        for line, row in enumerate(reader, start=2):
            if not (row.get("video") or "").strip():
                raise UserError(f"{path}:{line}: empty 'video' cell; fill it or delete the row")
            video = (path.parent / row["video"].strip()).resolve()
            if video in seen:
                raise UserError(f"{path}:{line}: {video} is listed twice; keep one row per video")
            seen.add(video)
            reference = (row.get(ref_column) or "").strip() if ref_column else ""
            prompt = (row.get("prompt") or "").strip()
            items.append(
                VideoItem(
                    item_id(video), video, prompt or None, (path.parent / reference).resolve() if reference else None
                )
            )
    return items


def read_inputs(path: Path) -> list[VideoItem]:
    if path.is_dir():
        items = from_folder(path)
    elif path.is_file() and path.suffix.lower() == ".csv":
        items = from_csv(path)
    else:
        raise UserError(f"{path}: not a folder of videos or a .csv file; pass one of those to --input")
    if not items:
        raise UserError(f"{path}: no videos found ({', '.join(VIDEO_SUFFIXES)}); check --input")
    return items
