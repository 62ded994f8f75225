"""mask_preview.mp4: the source frames with the mask tinted and the SAM2 clicks drawn, for checking
the mask by eye before spending GPU hours on generation."""

from __future__ import annotations

import cv2
import numpy as np

from .points import FramePoints

TINT_RGB = (255, 0, 255)  # magenta: rare in real footage, distinct from the green/red clicks
TINT_ALPHA = 0.4
POSITIVE_RGB = (0, 255, 0)
NEGATIVE_RGB = (255, 0, 0)


def render_preview(
    frame: np.ndarray, mask: np.ndarray, clicks: FramePoints | None = None, *, alpha: float = TINT_ALPHA
) -> np.ndarray:
    """An RGB frame with `mask` blended toward the tint colour and the clicks drawn as dots
    (positive green, negative red, with a white ring so they show on any background)."""
    out = frame.copy()
    on = np.asarray(mask) > 0
    tint = np.array(TINT_RGB, dtype=np.float32)
    out[on] = (out[on].astype(np.float32) * (1.0 - alpha) + tint * alpha + 0.5).astype(np.uint8)
    if clicks is not None:
        radius = max(3, min(frame.shape[:2]) // 120)
        for pts, colour in ((clicks.positive, POSITIVE_RGB), (clicks.negative, NEGATIVE_RGB)):
            for x, y in pts:
                centre = (round(x), round(y))
                cv2.circle(out, centre, radius + 2, (255, 255, 255), -1, cv2.LINE_AA)
                cv2.circle(out, centre, radius, colour, -1, cv2.LINE_AA)
    return out
