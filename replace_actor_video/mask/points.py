"""SAM2 click prompts: the points JSON file, and automatic points from pose data.

File format (docs/MASK.md has the full description; the UI's points editor writes the same):

    {
      "version": 1,
      "coords": "pixels",            # or "normalized" (0..1 of width/height)
      "width": 1280, "height": 720,  # pixels only, optional: the frame size the clicks were made on
      "frames": [
        {"frame": 0, "positive": [[640, 300], [650, 520]], "negative": [[100, 100]]},
        {"frame": 90, "positive": [{"x": 600, "y": 310}]}
      ]
    }

Frame numbers index the frames the mask is built for (the preprocessed frames, as in src_bg.mp4).
A point is [x, y] or {"x": x, "y": y} (what ComfyUI's PointsEditor emits); x runs left to right.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy import ndimage

from ..core.atomic import atomic_file
from ..core.errors import UserError

Coords = Literal["pixels", "normalized"]
Point = tuple[float, float]
FORMAT_VERSION = 1

# Upstream's SAM2 prompt joints (process_pipepline.get_mask), in the 20-joint OpenPose-style body
# order that Wan2.2 draws: nose, neck, R-shoulder, L-shoulder, R-hip, L-hip, R-ankle, L-ankle.
UPSTREAM_PROMPT_JOINTS: tuple[int, ...] = (0, 1, 2, 5, 8, 11, 10, 13)


class PointsError(UserError, ValueError):
    """A points file or points argument is unusable; the message names the problem and the fix."""


@dataclass(frozen=True)
class FramePoints:
    """Clicks on one frame: positive = on the person to replace, negative = background to exclude."""

    frame: int
    positive: tuple[Point, ...]
    negative: tuple[Point, ...] = ()


@dataclass(frozen=True)
class PointsSpec:
    frames: tuple[FramePoints, ...]
    coords: Coords = "pixels"
    width: int | None = None
    height: int | None = None
    source: str = field(default="points", compare=False)  # names the origin in error messages

    def for_frame(self, frame: int) -> FramePoints | None:
        return next((f for f in self.frames if f.frame == frame), None)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"version": FORMAT_VERSION, "coords": self.coords}
        if self.coords == "pixels" and self.width is not None and self.height is not None:
            data["width"], data["height"] = self.width, self.height
        data["frames"] = [
            {"frame": f.frame, "positive": [list(p) for p in f.positive], "negative": [list(p) for p in f.negative]}
            for f in self.frames
        ]
        return data


def _fail(source: str, problem: str, fix: str) -> PointsError:
    return PointsError(f"{source}: {problem}; {fix}")


def _point(raw: Any, where: str, source: str) -> Point:
    if isinstance(raw, dict) and set(raw) >= {"x", "y"}:
        raw = [raw["x"], raw["y"]]
    if (
        not isinstance(raw, (list, tuple))
        or len(raw) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw)
    ):
        raise _fail(source, f"{where} is {json.dumps(raw)}", 'write each point as [x, y] or {"x": x, "y": y}')
    x, y = float(raw[0]), float(raw[1])
    if not (math.isfinite(x) and math.isfinite(y)):
        raise _fail(source, f"{where} is not a finite number pair", "use real pixel or 0..1 coordinates")
    return x, y


def parse_points(data: Any, source: str = "points") -> PointsSpec:
    """Check the structure of a decoded points JSON document (not yet against a frame size)."""
    if not isinstance(data, dict):
        raise _fail(source, "the top level is not a JSON object", 'write {"coords": ..., "frames": [...]}')
    version = data.get("version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise _fail(source, f"version {version!r} is not supported", f"write version {FORMAT_VERSION}")
    coords = data.get("coords", "pixels")
    if coords not in ("pixels", "normalized"):
        raise _fail(source, f"coords is {coords!r}", 'use "pixels" or "normalized"')
    size = []
    for key in ("width", "height"):
        value = data.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            raise _fail(source, f"{key} is {value!r}", f"give {key} as a positive integer or leave it out")
        size.append(value)
    if (size[0] is None) != (size[1] is None):
        raise _fail(source, "only one of width/height is given", "give both or neither")
    frames_raw = data.get("frames")
    if not isinstance(frames_raw, list) or not frames_raw:
        raise _fail(source, "no frames list", 'add "frames": [{"frame": 0, "positive": [[x, y]]}]')
    frames: list[FramePoints] = []
    seen: set[int] = set()
    for n, entry in enumerate(frames_raw):
        if not isinstance(entry, dict):
            raise _fail(source, f"frames[{n}] is not an object", 'write {"frame": i, "positive": [[x, y]]}')
        idx = entry.get("frame")
        if not isinstance(idx, int) or isinstance(idx, bool) or idx < 0:
            raise _fail(source, f"frames[{n}] has frame index {idx!r}", "use a frame number 0, 1, 2, ...")
        if idx in seen:
            raise _fail(source, f"frame {idx} is listed twice", "merge its points into one entry")
        seen.add(idx)
        lists = {}
        for kind in ("positive", "negative"):
            raw = entry.get(kind, [])
            if not isinstance(raw, list):
                raise _fail(source, f"frame {idx}: {kind} is not a list", f'write "{kind}": [[x, y], ...]')
            lists[kind] = tuple(_point(p, f"frame {idx} {kind}[{i}]", source) for i, p in enumerate(raw))
        if not lists["positive"]:
            raise _fail(
                source, f"frame {idx} has no positive point", "click at least once on the person on every listed frame"
            )
        frames.append(FramePoints(idx, lists["positive"], lists["negative"]))
    frames.sort(key=lambda f: f.frame)
    return PointsSpec(tuple(frames), coords, size[0], size[1], source)


def load_points(path: str | Path) -> PointsSpec:
    """Read and structurally check a points JSON file."""
    path = Path(path)
    if not path.is_file():
        raise _fail(str(path), "file not found", "pass the path of a points JSON file, or 'auto'")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _fail(
            str(path), f"not valid JSON ({exc})", "fix the syntax or re-save it from the points editor"
        ) from None
    return parse_points(data, str(path))


def save_points(spec: PointsSpec, path: str | Path) -> None:
    """Write the points JSON atomically (validating it by a parse round trip first)."""
    data = spec.to_dict()
    parse_points(data, str(path))
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def resolve_points(spec: PointsSpec, width: int, height: int, frame_count: int) -> PointsSpec:
    """Check the points against the mask frames and return them in pixels of a width x height frame."""
    src = spec.source
    if spec.coords == "pixels" and spec.width is not None and (spec.width, spec.height) != (width, height):
        raise _fail(
            src,
            f"points were clicked on {spec.width}x{spec.height} frames but the mask frames are {width}x{height}",
            'click on the preprocessed frames, or save them with "coords": "normalized"',
        )
    out: list[FramePoints] = []
    for f in spec.frames:
        if f.frame >= frame_count:
            raise _fail(
                src,
                f"frame {f.frame} is past the last frame ({frame_count - 1})",
                f"use frame numbers 0..{frame_count - 1}",
            )
        converted: dict[str, tuple[Point, ...]] = {}
        for kind, pts in (("positive", f.positive), ("negative", f.negative)):
            res = []
            for x, y in pts:
                if spec.coords == "normalized":
                    if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                        raise _fail(
                            src,
                            f"frame {f.frame} {kind} point ({x:g}, {y:g}) is outside 0..1",
                            "normalized points must lie in 0..1",
                        )
                    # The last pixel centre is the farthest a normalized 1.0 can mean.
                    x, y = min(x * width, width - 1.0), min(y * height, height - 1.0)
                elif not (0.0 <= x < width and 0.0 <= y < height):
                    raise _fail(
                        src,
                        f"frame {f.frame} {kind} point ({x:g}, {y:g}) is outside the {width}x{height} frame",
                        f"use 0 <= x < {width} and 0 <= y < {height}",
                    )
                res.append((x, y))
            converted[kind] = tuple(res)
        out.append(FramePoints(f.frame, converted["positive"], converted["negative"]))
    return replace(spec, frames=tuple(out), coords="pixels", width=width, height=height)


def points_from_pose(
    keypoints: np.ndarray,
    width: int,
    height: int,
    *,
    every: int = 0,
    joints: Sequence[int] = UPSTREAM_PROMPT_JOINTS,
    min_conf: float = 0.5,
    normalized: bool = False,
) -> PointsSpec:
    """Positive clicks from pose keypoints (frames x joints x (x, y, conf)).

    Frames 0, every, 2*every, ... (only frame 0 when every <= 0) get one click per listed joint whose
    confidence is >= min_conf and that lies inside the frame; a frame with no such joint is skipped.
    `normalized` says the keypoints are in 0..1 of width/height (Wan2.2's Pose2d output is).
    Unlike upstream, unconfident or out-of-frame joints are dropped rather than clicked."""
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 3 or kp.shape[2] < 3:
        raise PointsError(f"pose keypoints have shape {kp.shape}; pass an array of frames x joints x (x, y, conf)")
    if kp.shape[0] == 0:
        raise PointsError("pose keypoints hold no frames; run pose detection on the video first")
    bad = [j for j in joints if not 0 <= j < kp.shape[1]]
    if bad:
        raise PointsError(
            f"joints {bad} do not exist in {kp.shape[1]}-joint keypoints; choose joints 0..{kp.shape[1] - 1}"
        )
    scale = np.array([width, height], dtype=np.float64) if normalized else np.ones(2)
    frames: list[FramePoints] = []
    for t in (t for t in range(kp.shape[0]) if _is_sampled(t, every)):
        pts = []
        for j in joints:
            x, y = kp[t, j, :2] * scale
            if kp[t, j, 2] >= min_conf and 0 <= x < width and 0 <= y < height:
                pts.append((float(x), float(y)))
        if pts:
            frames.append(FramePoints(t, tuple(pts)))
    if not frames:
        raise PointsError(
            f"no joint reached confidence {min_conf} inside the frame on any sampled frame; "
            "click points by hand (--points FILE) or lower the confidence threshold"
        )
    return PointsSpec(tuple(frames), "pixels", width, height, "pose keypoints")


def points_from_skeleton(
    pose_frames: Iterable[np.ndarray], *, every: int = 0, count: int = 8, threshold: int = 80
) -> PointsSpec:
    """Positive clicks from Wan2.2's rendered skeleton (src_pose.mp4 frames, same size as the mask frames).

    Every bright pixel of src_pose.mp4 lies on a drawn limb or joint, i.e. on the person. On frames
    0, every, 2*every, ... we take the pixels at least 2 px inside the drawn strokes (body limbs are
    ~5 px wide at 720p; 1-px hand lines and compression fringes drop out) and spread `count` clicks
    over them by farthest-point sampling, starting from the one nearest the skeleton's centroid.
    Joint identities are not decoded (see docs/MASK.md: colour matching proved unreliable)."""
    frames: list[FramePoints] = []
    size: tuple[int, int] | None = None
    for t, frame in enumerate(pose_frames):
        size = (frame.shape[1], frame.shape[0])
        if not _is_sampled(t, every):
            continue
        stroke = np.asarray(frame).max(axis=2) >= threshold
        core = ndimage.distance_transform_cdt(stroke, metric="chessboard") >= 2
        ys, xs = np.nonzero(core)
        if len(xs) == 0:
            continue
        frames.append(FramePoints(t, _farthest_points(np.stack([xs, ys], 1).astype(np.float64), count)))
    if size is None:
        raise PointsError("the pose video has no frames; re-run preprocessing")
    if not frames:
        raise PointsError(
            "no skeleton is drawn on the sampled frames of src_pose.mp4 (pose detection found "
            "nobody); click points by hand with --points FILE"
        )
    return PointsSpec(tuple(frames), "pixels", size[0], size[1], "src_pose.mp4 skeleton")


def _is_sampled(t: int, every: int) -> bool:
    """Frame 0, every, 2*every, ...; only frame 0 when every <= 0."""
    return t % every == 0 if every > 0 else t == 0


def _farthest_points(xy: np.ndarray, count: int) -> tuple[Point, ...]:
    start = int(np.argmin(((xy - xy.mean(0)) ** 2).sum(1)))
    chosen = [start]
    dist = ((xy - xy[start]) ** 2).sum(1)
    while len(chosen) < min(count, len(xy)):
        nxt = int(np.argmax(dist))
        if dist[nxt] == 0:
            break
        chosen.append(nxt)
        dist = np.minimum(dist, ((xy - xy[nxt]) ** 2).sum(1))
    return tuple((float(xy[i, 0]), float(xy[i, 1])) for i in chosen)
