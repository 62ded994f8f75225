"""Stills for the UI: one frame of a video, and a mask laid over its frame (drawn by the mask package)."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from ..core.errors import UserError
from ..mask.preview import render_preview
from ..media.ffmpeg import ffmpeg_bin


def grab_frame(video: str | Path, index: int, out: Path) -> Path:
    """Frame number `index` (counted from 0, in decode order) of `video` as a PNG at `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial.png")
    argv = [
        ffmpeg_bin(),
        "-hide_banner",
        "-nostdin",
        "-v",
        "error",
        "-y",
        "-i",
        str(video),
        "-vf",
        f"select=eq(n\\,{int(index)})",
        "-fps_mode",
        "passthrough",
        "-frames:v",
        "1",
        str(tmp),
    ]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        detail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "no such frame"
        raise UserError(f"{video}: cannot read frame {index} ({detail}); pick a frame inside the video")
    tmp.replace(out)
    return out


def cache_name(*parts: object, suffix: str = ".png") -> str:
    """A stable file name for a derived still (same inputs → same file, so it is made once)."""
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:20] + suffix


def mask_overlay(background: Path, mask_video: Path, index: int, cache: Path) -> Path:
    """Frame `index` of a preprocessing folder's src_bg.mp4 with src_mask.mp4 laid over it (cached)."""
    key = (
        background.resolve(),
        background.stat().st_mtime_ns,
        mask_video.resolve(),
        mask_video.stat().st_mtime_ns,
        index,
    )
    out = cache / cache_name("overlay", *key)
    if out.is_file():
        return out
    frame = grab_frame(background, index, cache / cache_name("bg", *key))
    mask = grab_frame(mask_video, index, cache / cache_name("mask", *key))
    with Image.open(frame) as f, Image.open(mask) as m:
        rgb = np.asarray(f.convert("RGB"))
        on = np.asarray(m.convert("L").resize(f.size)) >= 128
    Image.fromarray(render_preview(rgb, on)).save(out)
    return out
