"""Parsers for option values that users type in more than one way."""

from __future__ import annotations

import re

_RESOLUTION = re.compile(r"^\s*(\d+)\s*(?:[x×*,]|\s)\s*(\d+)\s*$", re.IGNORECASE)


def parse_resolution(text: str) -> tuple[int, int]:
    """'1280 720', '1280x720', '1280*720' → (1280, 720). It is a target *area*: the video keeps its aspect
    ratio and upstream floors each side to a multiple of 16."""
    m = _RESOLUTION.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a resolution; write it as '1280 720' or 1280x720")
    width, height = int(m[1]), int(m[2])
    if width < 16 or height < 16:
        raise ValueError(f"{width}x{height}: width and height must be at least 16")
    return width, height
