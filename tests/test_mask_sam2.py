"""SAM2 through the real `sam2` package on the CPU, with a small random-weight model built from the
package's hiera-tiny config (no download: weights are random, so only shapes and plumbing are checked)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from replace_actor_video.core.errors import UserError
from replace_actor_video.mask.points import FramePoints, PointsSpec
from replace_actor_video.mask.sam2_video import (
    Sam2Settings,
    Sam2VideoSegmenter,
    check_sam2_config,
    infer_sam2_config,
    segment_video,
)

TEST_IMAGE_SIZE = 128  # sam2's internal size; 1024 takes ~10 s a frame on a 2-core CPU


@pytest.mark.parametrize(
    "name, config",
    [
        ("sam2_hiera_large.pt", "configs/sam2/sam2_hiera_l.yaml"),
        ("sam2_hiera_base_plus.pt", "configs/sam2/sam2_hiera_b+.yaml"),
        ("sam2_hiera_small.pt", "configs/sam2/sam2_hiera_s.yaml"),
        ("sam2_hiera_tiny.pt", "configs/sam2/sam2_hiera_t.yaml"),
        ("sam2.1_hiera_large.pt", "configs/sam2.1/sam2.1_hiera_l.yaml"),
        ("sam2.1_hiera_base_plus.pt", "configs/sam2.1/sam2.1_hiera_b+.yaml"),
        ("/ckpt/process_checkpoint/sam2/sam2.1_hiera_tiny.pt", "configs/sam2.1/sam2.1_hiera_t.yaml"),
        ("sam2.1-hiera-small.pt", "configs/sam2.1/sam2.1_hiera_s.yaml"),
    ],
)
def test_infer_config(name: str, config: str) -> None:
    assert infer_sam2_config(name) == config


def test_infer_config_unknown_name() -> None:
    with pytest.raises(UserError, match="pass --sam2_config"):
        infer_sam2_config("model.pt")


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch", reason="torch is not installed (requirements-mask-cpu.txt)")
    pytest.importorskip("sam2", reason="sam2 is not installed (requirements-mask-cpu.txt)")
    from sam2.build_sam import build_sam2_video_predictor

    torch.manual_seed(0)
    model = build_sam2_video_predictor("configs/sam2.1/sam2.1_hiera_t.yaml", None, device="cpu")
    path = tmp_path_factory.mktemp("sam2") / "sam2.1_hiera_tiny.pt"
    torch.save({"model": model.state_dict()}, path)  # the layout of Meta's released checkpoints
    return path


def test_config_names_resolve_in_the_package(tiny_checkpoint: Path) -> None:
    assert check_sam2_config("sam2_hiera_l.yaml") == "sam2_hiera_l.yaml"  # the name Wan2.2 uses
    assert check_sam2_config("configs/sam2.1/sam2.1_hiera_l.yaml") == "configs/sam2.1/sam2.1_hiera_l.yaml"
    with pytest.raises(UserError, match="not in the sam2 package"):
        check_sam2_config("configs/sam3/huge.yaml")


def test_loader_errors(tiny_checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="checkpoint not found"):
        Sam2VideoSegmenter(Sam2Settings(tmp_path / "sam2_hiera_large.pt", device="cpu"))
    with pytest.raises(UserError, match="does not match SAM2 config"):
        Sam2VideoSegmenter(Sam2Settings(tiny_checkpoint, "configs/sam2.1/sam2.1_hiera_s.yaml", device="cpu"))
    with pytest.raises(UserError, match="multiple of 64"):
        Sam2VideoSegmenter(Sam2Settings(tiny_checkpoint, device="cpu", image_size=100))


def test_segment_video_in_chunks_on_cpu(tiny_checkpoint: Path) -> None:
    started = time.monotonic()
    segmenter = Sam2VideoSegmenter(Sam2Settings(tiny_checkpoint, device="cpu", image_size=TEST_IMAGE_SIZE))
    assert segmenter.config == "configs/sam2.1/sam2.1_hiera_t.yaml"  # inferred from the file name
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (5, 48, 64, 3), dtype=np.uint8)
    points = PointsSpec(
        (FramePoints(1, ((30.0, 20.0),), ((5.0, 5.0),)), FramePoints(4, ((40.0, 30.0),))), "pixels", 64, 48
    )
    masks = list(segment_video(segmenter, iter(frames), points, chunk_frames=3))
    # 5 frames in chunks [0..2] and [2..4] (frame 2 shared): one mask per frame, in order.
    assert len(masks) == 5
    assert all(m.shape == (48, 64) and m.dtype == bool for m in masks)
    single = list(segment_video(segmenter, frames, points, chunk_frames=400))
    assert len(single) == 5
    # Frame 0 precedes the first click: it is tracked backwards, so it gets SAM2's output too.
    assert (single[1] == masks[1]).all()
    print(f"SAM2 CPU test: {time.monotonic() - started:.1f} s")


def test_chunk_without_prompts_is_empty(tiny_checkpoint: Path) -> None:
    segmenter = Sam2VideoSegmenter(Sam2Settings(tiny_checkpoint, device="cpu", image_size=TEST_IMAGE_SIZE))
    frames = np.zeros((3, 48, 64, 3), np.uint8)
    out = segmenter.segment_chunk(frames, {}, None)
    assert out.shape == (3, 48, 64) and not out.any()
    with pytest.raises(UserError, match="at least 2"):
        list(segment_video(segmenter, frames, PointsSpec((FramePoints(0, ((1.0, 1.0),)),)), chunk_frames=1))
