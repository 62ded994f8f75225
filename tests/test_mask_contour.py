"""The contour-mask step on a stand-in replace-mode preprocessing folder, plus the reproduced upstream
resize and frame sampling it depends on."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from replace_actor_video.core.errors import UserError
from replace_actor_video.mask.blockify import blockify_frame
from replace_actor_video.mask.contour import ContourResult, _ranges, build_contour_mask, fill_empty
from replace_actor_video.mask.options import MaskOptions
from replace_actor_video.mask.points import load_points
from replace_actor_video.media.frames import read_frames, write_mask_video, write_video
from replace_actor_video.media.probe import probe_video
from replace_actor_video.upstream.wan.preprocess import upstream_resize, upstream_size

WAN_UTILS = Path(__file__).resolve().parents[1] / "Wan2.2/wan/modules/animate/preprocess/utils.py"
AREA = (64, 48)  # --resolution_area of the stand-in preprocessing
SRC_FPS, FPS, SRC_FRAMES = 24, 30, 10
FRAMES = 12  # int(10 / 24 * 30): upstream's sample count for the stand-in clip


# --- the reproduced upstream resize -------------------------------------------------------------


@pytest.mark.parametrize(
    "src, area, out",
    [
        ((1920, 1080), (1280, 720), (1280, 720)),
        ((1080, 1920), (1280, 720), (720, 1280)),
        ((640, 480), (1280, 720), (1104, 816)),
        ((1279, 720), (1280, 720), (1264, 720)),
        ((128, 96), AREA, (64, 48)),
    ],
)
def test_upstream_size(src: tuple[int, int], area: tuple[int, int], out: tuple[int, int]) -> None:
    assert upstream_size(*src, area[0] * area[1]) == out


def test_upstream_resize_letterboxes() -> None:
    frame = np.full((720, 1279, 3), 200, np.uint8)
    out = upstream_resize(frame, 1280 * 720)
    assert out.shape == (720, 1264, 3)
    # 1279x720 into 1264x720: fit the width, 711 rows, (720 - 711) // 2 = 4 black rows on top.
    assert (out[:4] == 0).all() and (out[4:715] == 200).all() and (out[715:] == 0).all()


@pytest.mark.parametrize("shape", [(480, 640), (720, 1279), (1080, 1920), (1920, 1080), (97, 130)])
def test_upstream_resize_matches_wan22_code(shape: tuple[int, int]) -> None:
    if not WAN_UTILS.is_file():
        pytest.skip("the Wan2.2 checkout (gitignored) is not here")
    spec = importlib.util.spec_from_file_location("wan_preprocess_utils", WAN_UTILS)
    assert spec is not None and spec.loader is not None
    utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils)
    frame = np.random.default_rng(0).integers(0, 255, (*shape, 3), dtype=np.uint8)
    for area in (1280 * 720, 832 * 480):
        theirs = utils.resize_by_area(frame, area, divisor=16)
        ours = upstream_resize(frame, area)
        assert ours.shape == theirs.shape and (ours == theirs).all()


# --- empty frames -------------------------------------------------------------------------------


def test_fill_empty_takes_the_nearest_earlier_on_ties() -> None:
    a, b = np.array([1], np.uint8), np.array([2], np.uint8)
    packed = [None, a, None, None, b, None]
    assert fill_empty(packed) == [0, 2, 3, 5]
    assert [int(p[0]) for p in packed] == [1, 1, 1, 2, 2, 2]  # 2 -> a (dist 1); 3 -> b (dist 1 vs 2)
    tie = [a, None, b]
    fill_empty(tie)
    assert tie[1] is a
    with pytest.raises(UserError, match="found the person in no frame"):
        fill_empty([None, None])
    assert _ranges([0, 2, 3, 5, 6, 7]) == "0, 2-3, 5-7"


# --- the whole step -----------------------------------------------------------------------------


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch", reason="torch is not installed (requirements-mask-cpu.txt)")
    pytest.importorskip("sam2", reason="sam2 is not installed (requirements-mask-cpu.txt)")
    from sam2.build_sam import build_sam2_video_predictor

    torch.manual_seed(0)  # this seed gives non-empty, non-full masks on the stand-in clip
    model = build_sam2_video_predictor("configs/sam2.1/sam2.1_hiera_t.yaml", None, device="cpu")
    path = tmp_path_factory.mktemp("sam2") / "sam2.1_hiera_tiny.pt"
    torch.save({"model": model.state_dict()}, path)
    return path


@pytest.fixture()
def folder(tmp_path: Path) -> tuple[Path, Path]:
    """A driving clip (128x96, 24 fps, 10 frames) and what replace-mode preprocessing leaves for it at
    --resolution_area 64 48 --fps 30: 12 frames of 64x48 with a rectangle mask, a skeleton pose video."""
    video = tmp_path / "dance.mp4"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"testsrc=size=128x96:rate={SRC_FPS}",
        "-frames:v",
        str(SRC_FRAMES),
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        str(video),
    )
    out = tmp_path / "process_results"
    out.mkdir()
    rect = np.zeros((FRAMES, 48, 64), bool)
    rect[:, 8:40, 16:48] = True
    write_mask_video(out / "src_mask.mp4", rect, FPS)
    write_video(out / "src_bg.mp4", np.zeros((FRAMES, 48, 64, 3), np.uint8), FPS)
    pose = np.zeros((FRAMES, 48, 64, 3), np.uint8)
    for t in range(FRAMES):
        cv2.line(pose[t], (30, 6), (34, 42), (255, 85, 0), 5)  # one thick limb, as a skeleton stand-in
    write_video(out / "src_pose.mp4", pose, FPS)
    write_video(out / "src_face.mp4", np.zeros((FRAMES, 64, 64, 3), np.uint8), FPS)
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x64", "-frames:v", "1", str(out / "src_ref.png"))
    return video, out


def contour(
    folder: Path,
    video: Path,
    ckpt: Path | None,
    *,
    resolution: tuple[int, int] = AREA,
    fps: int | None = None,
    **kw: object,
) -> ContourResult:
    """The contour step as the worker runs it: the mask options as parsed, the preprocessing's --resolution
    and --fps, SAM2 on the CPU at a small input size."""
    mask = MaskOptions(
        **{
            "sam2_checkpoint": str(ckpt) if ckpt else None,
            "sam2_image_size": 128,
            "mask_chunk_frames": 5,
            "mask_grow": 2,
            "mask_block": 8,
            **kw,
        }
    )  # type: ignore[arg-type]
    return build_contour_mask(folder, video, mask, resolution=resolution, fps=fps, device="cpu")


def decoded_masks(path: Path) -> np.ndarray:
    frames = read_frames(path)
    assert set(np.unique(frames)) <= {0, 255}, "mask video is not strictly 0/255"
    return frames[..., 0] == 255


def test_contour_step_with_points_file(tiny_checkpoint: Path, folder: tuple[Path, Path]) -> None:
    video, out = folder
    official_mask = (out / "src_mask.mp4").read_bytes()
    official_bg = (out / "src_bg.mp4").read_bytes()
    points = out.parent / "clicks.json"
    points.write_text(
        json.dumps(
            {
                "coords": "normalized",
                "frames": [
                    {"frame": 0, "positive": [[0.5, 0.5]], "negative": [[0.05, 0.05]]},
                    {"frame": 7, "positive": [[0.5, 0.4]]},
                ],
            }
        )
    )
    result = contour(out, video, tiny_checkpoint, points=str(points))

    assert (result.frames, result.width, result.height) == (FRAMES, 64, 48)
    masks = decoded_masks(out / "src_mask.mp4")
    assert masks.shape == (FRAMES, 48, 64) and masks.any()
    for m in masks:  # blockified: re-blockifying changes nothing
        assert (blockify_frame(m, 8) == m).all()
    bg = read_frames(out / "src_bg.mp4")
    assert bg.shape == (FRAMES, 48, 64, 3)
    inside = np.stack([cv2.erode(m.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0 for m in masks])
    assert bg[inside].mean() < 8  # the mask area is black (lossy H.264: near 0)
    for name in ("src_mask.mp4", "src_bg.mp4", "mask_preview.mp4"):
        info = probe_video(out / name, count_frames=True)
        assert (info.frames, info.width, info.height, info.fps) == (FRAMES, 64, 48, FPS)
    assert (out / "official_mask/src_mask.mp4").read_bytes() == official_mask
    assert (out / "official_mask/src_bg.mp4").read_bytes() == official_bg
    used = load_points(result.points_path)
    assert [f.frame for f in used.frames] == [0, 7] and used.frames[0].positive == ((32.0, 24.0),)
    assert not [p for p in out.rglob("*") if "partial" in p.name]

    # A re-run replaces ours and keeps the official pair as it was.
    contour(out, video, tiny_checkpoint, points=str(points), mask_block=16)
    assert (out / "official_mask/src_mask.mp4").read_bytes() == official_mask
    assert (out / "official_mask/src_bg.mp4").read_bytes() == official_bg
    again = decoded_masks(out / "src_mask.mp4")
    assert again.shape == masks.shape
    assert not [p for p in out.rglob("*") if "partial" in p.name]


def test_contour_step_auto_points_snap16(tiny_checkpoint: Path, folder: tuple[Path, Path]) -> None:
    video, out = folder
    result = contour(out, video, tiny_checkpoint, points="auto", points_every=5, mask_snap16=True, mask_block=16)
    used = load_points(result.points_path)
    assert [f.frame for f in used.frames] == [0, 5, 10]
    for f in used.frames:  # the clicks sit on the drawn limb
        for x, y in f.positive:
            assert 26 <= x <= 38 and 4 <= y <= 44
    masks = decoded_masks(result.mask_path)
    assert masks.any()
    for m in masks:  # every block edge on the 16-px latent grid
        rows = np.flatnonzero(np.diff(m.any(axis=1).astype(int))) + 1
        cols = np.flatnonzero(np.diff(m.any(axis=0).astype(int))) + 1
        assert all(r % 16 == 0 for r in rows) and all(c % 16 == 0 for c in cols)


def test_contour_step_refuses_mismatched_preprocessing(tiny_checkpoint: Path, folder: tuple[Path, Path]) -> None:
    video, out = folder
    with pytest.raises(UserError, match="gives 80x64 but src_bg.mp4 is 64x48"):
        contour(out, video, tiny_checkpoint, resolution=(96, 64))
    with pytest.raises(UserError, match="gives 10 frames but src_bg.mp4 has 12"):
        contour(out, video, tiny_checkpoint, fps=24)
    with pytest.raises(UserError, match="sampled at 24 fps gives 10 frames"):
        contour(out, video, tiny_checkpoint, fps=-1)  # -1: the clip's own 24 fps
    with pytest.raises(UserError, match="past the last frame"):
        clicks = out.parent / "late.json"
        clicks.write_text(json.dumps({"frames": [{"frame": 12, "positive": [[1, 1]]}]}))
        contour(out, video, tiny_checkpoint, points=str(clicks))
    with pytest.raises(UserError, match="needs a SAM2 checkpoint"):
        contour(out, video, None)
    (out / "src_bg.mp4").unlink()
    with pytest.raises(UserError, match="src_bg.mp4 is missing"):
        contour(out, video, tiny_checkpoint)
    assert not (out / "official_mask").exists()
