"""The contour mask as users run it: inside run_preprocessing.py --replace (the default) and on its own with
run_mask.py on an existing folder. Real SAM2 (random tiny weights, CPU), stand-in upstream preprocessing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import locations, run_cli

from replace_actor_video.media.frames import read_frames
from replace_actor_video.media.probe import probe_video

FAST_SAM2 = ["--mask_device", "cpu", "--sam2_image_size", "128", "--mask_block", "8", "--mask_grow", "2"]


@pytest.fixture(scope="module")
def tiny_sam2(tmp_path_factory) -> Path:
    torch = pytest.importorskip("torch", reason="torch is not installed (requirements-mask-cpu.txt)")
    pytest.importorskip("sam2", reason="sam2 is not installed (requirements-mask-cpu.txt)")
    from sam2.build_sam import build_sam2_video_predictor

    torch.manual_seed(0)
    model = build_sam2_video_predictor("configs/sam2.1/sam2.1_hiera_t.yaml", None, device="cpu")
    path = tmp_path_factory.mktemp("sam2") / "sam2.1_hiera_tiny.pt"
    torch.save({"model": model.state_dict()}, path)
    return path


@pytest.fixture()
def clicks(tmp_path) -> Path:
    path = tmp_path / "clicks.json"
    path.write_text(
        json.dumps(
            {"coords": "normalized", "frames": [{"frame": 0, "positive": [[0.5, 0.5]], "negative": [[0.05, 0.05]]}]}
        )
    )
    return path


def preprocess(media, fake_wan22, fake_ckpt, tmp_path, *extra):
    return run_cli(
        "run_preprocessing.py",
        "--video_path",
        media["dance"],
        "--refer_path",
        media["ref"],
        "--replace",
        "--save_path",
        tmp_path / "pp",
        "--resolution",
        "64x48",
        "--fps",
        "4",
        *locations(fake_wan22, fake_ckpt, tmp_path),
        *extra,
        cwd=tmp_path,
    )


def assert_contour_outputs(folder: Path) -> None:
    masks = read_frames(folder / "src_mask.mp4")
    assert set(np.unique(masks)) <= {0, 255}, "the mask must decode to strictly 0/255"
    # Random SAM2 weights segment arbitrary regions: the shape of the contour is unit-tested on fixed arrays
    # (tests/test_mask_grow_blockify.py); here the step must run through and leave a non-empty mask.
    assert masks.any()
    for name in ("src_mask.mp4", "src_bg.mp4", "mask_preview.mp4", "src_pose.mp4"):
        info = probe_video(folder / name, count_frames=True)
        assert (info.frames, info.width, info.height) == (8, 64, 48), name
    assert (folder / "official_mask" / "src_mask.mp4").is_file()


def test_preprocessing_replace_mode_writes_the_contour_mask(media, fake_wan22, fake_ckpt, tiny_sam2, clicks, tmp_path):
    res = preprocess(
        media, fake_wan22, fake_ckpt, tmp_path, "--sam2_checkpoint", tiny_sam2, "--points", clicks, *FAST_SAM2
    )
    assert res.returncode == 0, res.stderr
    assert "contour mask" in res.stdout
    assert_contour_outputs(tmp_path / "pp")
    record = json.loads((tmp_path / "pp" / "rav_preprocess.json").read_text())
    assert record["mask_mode"] == "contour" and record["resolution"] == [64, 48]


def test_run_mask_remasks_an_existing_folder(media, fake_wan22, fake_ckpt, tiny_sam2, clicks, tmp_path):
    assert preprocess(media, fake_wan22, fake_ckpt, tmp_path, "--mask_mode", "official").returncode == 0
    official = (tmp_path / "pp" / "src_mask.mp4").read_bytes()
    res = run_cli(
        "run_mask.py",
        "--src_root_path",
        tmp_path / "pp",
        "--sam2_checkpoint",
        tiny_sam2,
        "--points",
        clicks,
        *FAST_SAM2,
        "--runs_dir",
        tmp_path / "runs",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert_contour_outputs(tmp_path / "pp")
    assert (tmp_path / "pp" / "official_mask" / "src_mask.mp4").read_bytes() == official


def test_contour_mode_without_a_sam2_checkpoint_is_refused(media, fake_wan22, fake_ckpt, tmp_path):
    res = preprocess(media, fake_wan22, fake_ckpt, tmp_path, "--sam2_checkpoint", tmp_path / "none.pt")
    assert res.returncode == 2 and "none.pt: SAM2 checkpoint not found" in res.stderr
    assert not (tmp_path / "pp").exists()


def test_points_file_must_exist(media, fake_wan22, fake_ckpt, tiny_sam2, tmp_path):
    res = preprocess(
        media, fake_wan22, fake_ckpt, tmp_path, "--sam2_checkpoint", tiny_sam2, "--points", tmp_path / "missing.json"
    )
    assert res.returncode == 2 and "missing.json: file not found" in res.stderr
