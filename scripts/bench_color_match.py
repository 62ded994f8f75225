#!/usr/bin/env python3
"""Colour-match benchmark on the CPU: how well each --color_match method removes a per-clip colour drift, how much
it changes a video that has no drift, and how long it takes on a 720p frame, side by side in one run (ours, and
the PyPI `color-matcher` package that ComfyUI-KJNodes' ColorMatch uses, when it is importable).

    python3 scripts/bench_color_match.py --out docs/bench/2026-12-01

Scenarios (synthetic 3-clip videos, 33-frame clips overlapping by 1, a moving colourful pattern whose colour
statistics do not change, as a Wan-Animate clip of one subject on one background):
  gain+offset   clip k: per-channel gain (1+0.08k, 1-0.05k, 1-0.1k) and offset (0.03k, 0.01k, -0.02k)
  saturation    clip k: saturation × (1 + 0.15k) and brightness + 0.02k (what users describe for the VAE round trip)
  no drift      no shift at all, but the content's mean colour slowly changes (a legitimate change): what a method
                wrongly "corrects" shows as ΔE added at the joins
Reported: mean ΔE (CIELAB, CIE76) at the clip joins and the largest clip-vs-first-clip ΔE, before and after, and
seconds per 1280×720 frame (statistics + transform). Writes OUT/color_match.json and OUT/color_match.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location(
    "color_match", REPO / "replace_actor_video/upstream/wan/runtime/color_match.py"
)
cm = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cm)

CLIP_LEN, REFERT, CLIPS, H, W = 33, 1, 3, 90, 160


def pattern(t: int, drift_mean: float = 0.0) -> np.ndarray:
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    px, py = 2 * np.pi * x / W, 2 * np.pi * y / H
    rgb = np.stack(
        [
            0.5 + 0.3 * np.sin(2 * px + 0.15 * t),
            0.5 + 0.3 * np.sin(py - 0.1 * t + 1),
            0.45 + 0.25 * np.cos(px + 2 * py + 0.07 * t),
        ],
        axis=-1,
    )
    return np.clip(rgb + drift_mean * t * np.array([1.0, -0.5, -0.8]), 0, 1)


def gain_offset(rgb, k):
    return np.clip(rgb * np.array([1 + 0.08 * k, 1 - 0.05 * k, 1 - 0.1 * k]) + np.array([0.03, 0.01, -0.02]) * k, 0, 1)


def saturation(rgb, k):
    grey = rgb.mean(axis=-1, keepdims=True)
    return np.clip(grey + (rgb - grey) * (1 + 0.15 * k) + 0.02 * k, 0, 1)


SCENARIOS = {
    "gain+offset": (gain_offset, 0.0),
    "saturation": (saturation, 0.0),
    "no drift": (lambda rgb, k: rgb, 0.0015),
}


def video(shift, drift_mean):
    frames = CLIP_LEN + (CLIPS - 1) * (CLIP_LEN - REFERT)  # the post hoc path: overlaps already dropped
    starts = cm.clip_starts(frames, CLIP_LEN, REFERT)
    clip_of = np.searchsorted(starts, np.arange(frames), side="right") - 1
    return [
        np.round(shift(pattern(i, drift_mean), int(clip_of[i])) * 255).astype(np.uint8) for i in range(frames)
    ], starts


def drift(frames, starts):
    return cm.drift_report(np.array([cm.frame_lab_mean(f) for f in frames]), starts)


def color_matcher_available() -> bool:
    return importlib.util.find_spec("color_matcher") is not None


def time_ours(method: str, frame: np.ndarray, repeats: int) -> float:
    floats = frame.astype(np.float32) / 255
    anchor = cm.ColorStats().add(floats.reshape(-1, 3))
    started = time.perf_counter()
    for _ in range(repeats):
        stats = cm.ColorStats().add(floats.reshape(-1, 3))
        cm.apply(floats, cm.transform(method, stats, anchor), 1.0)
    return (time.perf_counter() - started) / repeats


def time_color_matcher(method: str, frame: np.ndarray, repeats: int) -> float | str:
    from color_matcher import ColorMatcher

    floats = frame.astype(np.float32) / 255
    if method == "mvgd":  # its analytical solver inverts an N×3 pixel matrix (N = 921,600 here)
        return "not timed: solves a 921,600 × 3 pseudo-inverse per frame (needs equal image sizes)"
    started = time.perf_counter()
    for _ in range(repeats):
        ColorMatcher().transfer(src=floats.copy(), ref=floats, method=method)
    return (time.perf_counter() - started) / repeats


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per method on the 720p frame")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    methods = [m for m in cm.METHODS if m != "off"]
    report = {
        "env": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "machine": platform.machine(),
            "color_matcher": color_matcher_available(),
        },
        "quality": {},
        "seconds_per_720p_frame": {},
    }
    for name, (shift, drift_mean) in SCENARIOS.items():
        frames, starts = video(shift, drift_mean)
        row = {"off": drift(frames, starts)}
        for method in methods:
            for anchor in cm.ANCHORS:
                row[f"{method}/{anchor}"] = drift(list(cm.match_video(frames, starts, method, 1.0, anchor)), starts)
        report["quality"][name] = {
            m: {
                "join": r["join_delta_e_mean"],
                "vs_first_max": r["vs_first_clip_delta_e_max"],
                "within_median": r["within_clip_delta_e_median"],
            }
            for m, r in row.items()
        }
        print(name, json.dumps(report["quality"][name]), flush=True)
    frame = np.round(np.tile(pattern(0), (8, 8, 1))[:720, :1280] * 255).astype(np.uint8)
    for method in methods:
        report["seconds_per_720p_frame"][method] = {"ours": round(time_ours(method, frame, args.repeats), 4)}
        if color_matcher_available():
            timed = time_color_matcher(method, frame, args.repeats)
            report["seconds_per_720p_frame"][method]["color_matcher"] = (
                round(timed, 4) if isinstance(timed, float) else timed
            )
        print(method, report["seconds_per_720p_frame"][method], flush=True)
    (out / "color_match.json").write_text(json.dumps(report, indent=1) + "\n")
    columns = [f"{m}/{a}" for m in methods for a in cm.ANCHORS]
    (out / "color_match.md").write_text(markdown(report, columns))
    print(markdown(report, columns))
    return 0


def markdown(report: dict, columns: list[str]) -> str:
    lines = [
        f"# Colour match benchmark (CPU; Python {report['env']['python']}, numpy {report['env']['numpy']})",
        "",
        (
            f"Synthetic 3-clip videos ({CLIP_LEN}-frame clips, overlap {REFERT}, {W}×{H}); ΔE = CIE76 in CIELAB of "
            "each frame's mean colour. join: mean ΔE at the 2 clip joins; vs first: largest ΔE of a clip's mean "
            "colour to the first clip's. Columns: method/anchor (join: each clip matched to the frame before its "
            "join; first: to the whole first clip)."
        ),
        "",
        "| scenario | " + " | ".join(["off", *columns]) + " |",
        "|---|" + "---|" * (len(columns) + 1),
    ]
    for name, row in report["quality"].items():
        lines.append(
            f"| {name}: join / vs first | "
            + " | ".join(f"{row[m]['join']} / {row[m]['vs_first_max']}" for m in ["off", *columns])
            + " |"
        )
    lines += ["", "| seconds per 1280×720 frame | ours (numpy) | color-matcher 0.6.0 |", "|---|---|---|"]
    for method, row in report["seconds_per_720p_frame"].items():
        lines.append(f"| {method} | {row['ours']} | {row.get('color_matcher', 'not installed')} |")
    lines += [
        "",
        (
            "Ours: the statistics of the frame + the transform to an anchor; one transform per clip in "
            "use, so a 77-frame clip costs about 77 × this (derived). color-matcher: "
            "`ColorMatcher().transfer(src, ref, method)` on the same frame (statistics of both images + "
            "transform, per image as KJNodes calls it)."
        ),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
