"""Points JSON validation, pose-keypoint clicks and clicks from Wan2.2's rendered skeleton."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from replace_actor_video.core.errors import UserError
from replace_actor_video.mask.points import (
    FramePoints,
    PointsError,
    PointsSpec,
    load_points,
    parse_points,
    points_from_pose,
    points_from_skeleton,
    resolve_points,
    save_points,
)

WAN_VIS = Path(__file__).resolve().parents[1] / "Wan2.2/wan/modules/animate/preprocess/human_visualization.py"


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "points.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_valid_file_both_point_forms(tmp_path: Path) -> None:
    spec = load_points(
        write(
            tmp_path,
            {
                "version": 1,
                "coords": "pixels",
                "width": 64,
                "height": 48,
                "frames": [
                    {"frame": 5, "positive": [{"x": 10, "y": 20}]},
                    {"frame": 0, "positive": [[1, 2], [3.5, 4]], "negative": [[60, 40]]},
                ],
            },
        )
    )
    assert [f.frame for f in spec.frames] == [0, 5]  # sorted
    assert spec.frames[0].positive == ((1.0, 2.0), (3.5, 4.0)) and spec.frames[0].negative == ((60.0, 40.0),)
    assert spec.frames[1].positive == ((10.0, 20.0),) and spec.frames[1].negative == ()
    assert spec.for_frame(5) is spec.frames[1] and spec.for_frame(1) is None
    resolved = resolve_points(spec, 64, 48, 10)
    assert resolved.frames == spec.frames


def test_errors_are_user_errors_and_value_errors(tmp_path: Path) -> None:
    with pytest.raises(PointsError) as info:
        load_points(write(tmp_path, "{not json"))
    assert isinstance(info.value, UserError) and isinstance(info.value, ValueError)
    assert "not valid JSON" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "data, message",
    [
        ([1, 2], "top level is not a JSON object"),
        ({"frames": []}, "no frames list"),
        ({"coords": "inches", "frames": [{"frame": 0, "positive": [[1, 1]]}]}, "coords is 'inches'"),
        ({"version": 2, "frames": [{"frame": 0, "positive": [[1, 1]]}]}, "version 2"),
        ({"frames": [{"frame": -1, "positive": [[1, 1]]}]}, "frame index -1"),
        ({"frames": [{"frame": "0", "positive": [[1, 1]]}]}, "frame index '0'"),
        ({"frames": [{"frame": 1.5, "positive": [[1, 1]]}]}, "frame index 1.5"),
        ({"frames": [{"frame": 0, "negative": [[1, 1]]}]}, "frame 0 has no positive point"),
        ({"frames": [{"frame": 0, "positive": []}]}, "frame 0 has no positive point"),
        ({"frames": [{"frame": 0, "positive": [[1]]}]}, "frame 0 positive[0] is [1]"),
        ({"frames": [{"frame": 0, "positive": [["a", 2]]}]}, "positive[0]"),
        ({"frames": [{"frame": 0, "positive": [[1, 1]]}, {"frame": 0, "positive": [[2, 2]]}]}, "listed twice"),
        ({"width": 10, "frames": [{"frame": 0, "positive": [[1, 1]]}]}, "only one of width/height"),
        ({"frames": [{"frame": 0, "positive": [[1, 1]], "negative": {"x": 1}}]}, "negative is not a list"),
    ],
)
def test_structural_errors(data: object, message: str) -> None:
    with pytest.raises(PointsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_points(data, "p.json")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PointsError, match="file not found"):
        load_points(tmp_path / "nope.json")


@pytest.mark.parametrize(
    "point, message",
    [
        ([64, 10], "outside the 64x48 frame"),
        ([-1, 10], "outside the 64x48 frame"),
        ([10, 48], "outside the 64x48 frame"),
    ],
)
def test_out_of_frame_pixels(point: list[int], message: str) -> None:
    spec = parse_points({"frames": [{"frame": 0, "positive": [[1, 1]], "negative": [point]}]})
    with pytest.raises(PointsError, match=message):
        resolve_points(spec, 64, 48, 5)


def test_frame_past_the_end() -> None:
    spec = parse_points({"frames": [{"frame": 5, "positive": [[1, 1]]}]})
    with pytest.raises(PointsError, match=r"frame 5 is past the last frame \(4\)"):
        resolve_points(spec, 64, 48, 5)


def test_normalized_points_convert_and_check() -> None:
    spec = parse_points({"coords": "normalized", "frames": [{"frame": 0, "positive": [[0.5, 0.25], [1.0, 1.0]]}]})
    res = resolve_points(spec, 64, 48, 1)
    assert res.coords == "pixels" and (res.width, res.height) == (64, 48)
    assert res.frames[0].positive == ((32.0, 12.0), (63.0, 47.0))
    bad = parse_points({"coords": "normalized", "frames": [{"frame": 0, "positive": [[1.2, 0.5]]}]})
    with pytest.raises(PointsError, match="outside 0..1"):
        resolve_points(bad, 64, 48, 1)


def test_pixel_points_from_another_frame_size() -> None:
    spec = parse_points({"width": 1920, "height": 1080, "frames": [{"frame": 0, "positive": [[1, 1]]}]})
    with pytest.raises(PointsError, match="clicked on 1920x1080 frames but the mask frames are 1280x720"):
        resolve_points(spec, 1280, 720, 1)


def test_save_load_round_trip(tmp_path: Path) -> None:
    spec = PointsSpec((FramePoints(0, ((1.0, 2.0),), ((3.0, 4.0),)), FramePoints(9, ((5.0, 6.0),))), "pixels", 64, 48)
    path = tmp_path / "sub" / "p.json"
    save_points(spec, path)
    assert load_points(path) == spec
    assert not [p for p in path.parent.iterdir() if "partial" in p.name]
    with pytest.raises(PointsError, match="no positive point"):
        save_points(PointsSpec((FramePoints(0, ()),)), tmp_path / "bad.json")
    assert not (tmp_path / "bad.json").exists()


def test_points_from_pose_filters_and_samples() -> None:
    kp = np.zeros((7, 20, 3))
    kp[:, :, :2] = [30.0, 20.0]
    kp[:, :, 2] = 0.9
    kp[:, 1, 2] = 0.1  # the neck is unconfident: dropped
    kp[:, 5, :2] = [100.0, 20.0]  # the left shoulder is off the 64-px-wide frame: dropped
    spec = points_from_pose(kp, 64, 48, every=3)
    assert [f.frame for f in spec.frames] == [0, 3, 6]
    assert len(spec.frames[0].positive) == 6  # 8 upstream joints - neck - left shoulder
    assert spec.frames[0].negative == ()
    only_first = points_from_pose(kp, 64, 48)
    assert [f.frame for f in only_first.frames] == [0]
    norm = kp.copy()
    norm[:, :, :2] = [0.5, 0.5]
    assert points_from_pose(norm, 64, 48, normalized=True).frames[0].positive[0] == (32.0, 24.0)
    kp[:, :, 2] = 0.0
    with pytest.raises(PointsError, match="no joint reached confidence"):
        points_from_pose(kp, 64, 48)
    with pytest.raises(PointsError, match="frames x joints"):
        points_from_pose(np.zeros((4, 3)), 64, 48)
    with pytest.raises(PointsError, match="joints \\[25\\] do not exist"):
        points_from_pose(np.ones((1, 20, 3)), 64, 48, joints=[25])


def stand_in_skeleton(h: int, w: int, kp: np.ndarray) -> np.ndarray:
    """Wan2.2 draw_aapose_new's body drawing (limbs: ellipses at 0.6 colour; joints: circles)."""
    limbs = [
        [2, 3],
        [2, 6],
        [3, 4],
        [4, 5],
        [6, 7],
        [7, 8],
        [2, 9],
        [9, 10],
        [10, 11],
        [2, 12],
        [12, 13],
        [13, 14],
        [2, 1],
        [1, 15],
        [15, 17],
        [1, 16],
        [16, 18],
        [14, 19],
        [11, 20],
    ]
    colours = [
        [255, 0, 0],
        [255, 85, 0],
        [255, 170, 0],
        [255, 255, 0],
        [170, 255, 0],
        [85, 255, 0],
        [0, 255, 0],
        [0, 255, 85],
        [0, 255, 170],
        [0, 255, 255],
        [0, 170, 255],
        [0, 85, 255],
        [0, 0, 255],
        [85, 0, 255],
        [170, 0, 255],
        [255, 0, 255],
        [255, 0, 170],
        [255, 0, 85],
        [200, 200, 0],
        [100, 100, 0],
    ]
    img = np.zeros((h, w, 3), np.uint8)
    stick = max(int(min(h, w) / 200) - 1, 1)
    for (a, b), colour in zip(limbs, colours):
        p1, p2 = kp[a - 1], kp[b - 1]
        mx, my = (p1[0] + p2[0]) / 2, (p1[1] + p2[1]) / 2
        length = math.hypot(p1[0] - p2[0], p1[1] - p2[1])
        angle = math.degrees(math.atan2(p1[1] - p2[1], p1[0] - p2[0]))
        poly = cv2.ellipse2Poly((int(mx), int(my)), (int(length / 2), stick), int(angle), 0, 360, 1)
        cv2.fillConvexPoly(img, poly, [int(c * 0.6) for c in colour])
    for (x, y), colour in zip(kp, colours):
        cv2.circle(img, (int(x), int(y)), stick, colour, thickness=-1)
    return img


def upstream_skeleton(h: int, w: int, kp: np.ndarray) -> np.ndarray:
    """The real upstream drawing code, when the Wan2.2 checkout (gitignored) is present."""
    import sys

    sys.path.insert(0, str(WAN_VIS.parent))
    try:
        spec = importlib.util.spec_from_file_location("wan_human_visualization", WAN_VIS)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(WAN_VIS.parent))
    rng = np.random.default_rng(0)
    hands = [np.concatenate([kp[j] + rng.normal(0, 12, (21, 2)), np.ones((21, 1))], 1) for j in (4, 7)]
    body = np.concatenate([kp, np.ones((20, 1))], 1)
    return module.draw_aapose_new(
        np.zeros((h, w, 3), np.uint8), body, threshold=0.5, kp2ds_lhand=hands[0], kp2ds_rhand=hands[1], draw_hand=True
    )


PERSON = np.array(
    [
        [640, 150],
        [640, 220],
        [580, 225],
        [560, 320],
        [550, 410],
        [700, 225],
        [720, 320],
        [730, 410],
        [600, 420],
        [600, 540],
        [600, 660],
        [680, 420],
        [680, 540],
        [680, 660],
        [625, 135],
        [655, 135],
        [610, 145],
        [670, 145],
        [690, 690],
        [590, 690],
    ],
    float,
)


@pytest.mark.parametrize("renderer", ["stand_in", "upstream"])
def test_points_from_skeleton_land_on_the_drawn_skeleton(renderer: str, tmp_path: Path) -> None:
    if renderer == "upstream":
        if not WAN_VIS.is_file():
            pytest.skip("the Wan2.2 checkout (gitignored) is not here")
        pytest.importorskip("matplotlib")
    draw = upstream_skeleton if renderer == "upstream" else stand_in_skeleton
    frames = [draw(720, 1280, PERSON + [dx, 0]) for dx in (0, -200, 150)]
    # Through lossy H.264, as src_pose.mp4 is written.
    from replace_actor_video.media.frames import read_frames, write_video

    write_video(tmp_path / "pose.mp4", frames, 30, crf=23)
    decoded = read_frames(tmp_path / "pose.mp4")
    spec = points_from_skeleton(decoded, every=2, count=8)
    assert [f.frame for f in spec.frames] == [0, 2] and (spec.width, spec.height) == (1280, 720)
    for fp in spec.frames:
        drawn = frames[fp.frame].max(axis=2) > 0
        near = cv2.dilate(drawn.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0  # within 1 px
        assert len(fp.positive) == 8 and fp.negative == ()
        for x, y in fp.positive:
            assert near[int(y), int(x)], (fp.frame, x, y)
        xs = [p[0] for p in fp.positive]
        assert max(xs) - min(xs) > 100  # spread over the body, not bunched up


def test_points_from_skeleton_nobody() -> None:
    with pytest.raises(PointsError, match="no skeleton is drawn"):
        points_from_skeleton([np.zeros((48, 64, 3), np.uint8)] * 3, every=1)
    with pytest.raises(PointsError, match="no frames"):
        points_from_skeleton([])
