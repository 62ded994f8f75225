"""The colour-drift metric of a finished Wan-Animate video (runtime/color_match.py's ΔE report over the clips upstream
makes), read with ffmpeg: the generation stage records it, the postprocess stage before and after its colour match."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...media.frames import iter_frames
from .runtime import color_match

STRIDE = 4  # every 4th pixel each way: a frame's mean colour needs no full resolution


def video_drift(path: str | Path, *, clip_len: int, refert_num: int, mask_path: str | Path | None = None) -> dict:
    """ΔE at every clip join and against the first clip, over whole frames and, with `mask_path` (replace
    mode's src_mask.mp4, white = the generated person), over the person region too."""
    frame_labs, person_labs = [], []
    masks = iter_frames(mask_path) if mask_path is not None else None
    for frame in iter_frames(path):
        frame_labs.append(color_match.frame_lab_mean(frame, stride=STRIDE))
        mask = next(masks, None) if masks is not None else None
        if mask is not None and mask.shape[:2] == frame.shape[:2]:
            person_labs.append(color_match.frame_lab_mean(frame, mask[..., 0] / 255, stride=STRIDE))
    if masks is not None:
        masks.close()
    starts = color_match.clip_starts(len(frame_labs), clip_len, refert_num)
    report = {
        "clip_len": clip_len,
        "refert_num": refert_num,
        "whole_frame": color_match.drift_report(np.array(frame_labs).reshape(-1, 3), starts),
    }
    if person_labs and len(person_labs) == len(frame_labs):
        report["person_region"] = color_match.drift_report(np.array(person_labs), starts)
    return report


def summary(report: dict) -> str:
    line = color_match.summary(report["whole_frame"])
    if "person_region" in report and report["person_region"]["clips"] > 1:
        person = report["person_region"]
        line += (
            f"; person region: ΔE at joins mean {person['join_delta_e_mean']}, vs the first clip max "
            f"{person['vs_first_clip_delta_e_max']}"
        )
    return line
