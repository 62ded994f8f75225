"""Adapter for ffmpeg's motion-compensated `minterpolate` filter: the fallback interpolator that needs
nothing but ffmpeg (docs/FINISHING.md).

Traps handled here:
- minterpolate does not fill the last source interval (48 frames at 16 fps give 87 frames at 30 fps, not
  90), so the last frame is repeated with tpad and exactly the target frame count is kept
  (media/interpolate.py exact_length_filter);
- it is single-threaded and slow (about 3 output frames per second at 1280x720): say so up front.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from ...media.ffmpeg import rate_text
from ...media.interpolate import filtered_argv

# The usual motion-compensated settings: adaptive OBMC, bidirectional motion estimation, variable-size
# block motion compensation; scene-change detection stays at its default (fdiff) so cuts are not smeared.
MINTERPOLATE = "minterpolate=fps={rate}:mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1"


def argv(video: Path, out: Path, *, fps: Fraction, frames: int, pad: int, audio: bool) -> list[str]:
    """One ffmpeg run: interpolate `video` to `fps`, keep exactly `frames`, keep its audio."""
    return filtered_argv(
        video, out, vf=MINTERPOLATE.format(rate=rate_text(fps)), fps=fps, frames=frames, pad=pad, audio=audio
    )
