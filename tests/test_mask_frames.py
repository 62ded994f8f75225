"""Frame I/O over ffmpeg pipes: exact 0/255 mask round trip, atomic writes, index reads."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from replace_actor_video.core.errors import StageFailed
from replace_actor_video.media.frames import VideoWriter, iter_frames, read_frames, write_mask_video, write_video


def partials(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if "partial" in p.name]


@pytest.mark.parametrize("size", [(48, 64), (45, 67)])  # an odd size too
def test_mask_video_decodes_to_exact_0_255(tmp_path: Path, size: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    masks = rng.random((6, *size)) > 0.5
    masks[2] = False
    masks[3] = True
    path = tmp_path / "src_mask.mp4"
    assert write_mask_video(path, masks, 30) == 6
    decoded = read_frames(path)
    assert decoded.shape == (6, *size, 3)
    assert set(np.unique(decoded)) <= {0, 255}
    assert (decoded[..., 0] == decoded[..., 1]).all() and (decoded[..., 1] == decoded[..., 2]).all()
    assert ((decoded[..., 0] == 255) == masks).all()
    # A limited-range decode to grey also lands on exactly black/white after expansion back.
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        capture_output=True,
        check=True,
    ).stdout
    grey = np.frombuffer(out, np.uint8).reshape(6, *size)
    assert set(np.unique(grey)) <= {0, 255}
    assert not partials(tmp_path)


def test_mask_video_reads_as_upstream_generate_does(tmp_path: Path) -> None:
    decord = pytest.importorskip("decord", reason="decord (what Wan2.2 reads videos with) is not installed")
    masks = np.zeros((4, 48, 64), bool)  # decord itself fails on frames 48 px wide: keep >= 64
    masks[:, 8:20, 10:30] = True
    path = tmp_path / "src_mask.mp4"
    write_mask_video(path, masks, 30)
    vr = decord.VideoReader(str(path))
    frames = vr.get_batch(list(range(len(vr)))).asnumpy()
    assert frames.shape == (4, 48, 64, 3)
    keep = 1 - frames[..., 0] / 255  # animate.py: mask = 1 - src_mask / 255
    assert set(np.unique(keep)) == {0.0, 1.0}
    assert ((keep == 0) == masks).all()


def test_rgb_video_round_trip_and_indices(tmp_path: Path) -> None:
    frames = np.zeros((5, 32, 48, 3), np.uint8)
    for i in range(5):
        frames[i] = i * 50
    path = tmp_path / "v.mp4"
    assert write_video(path, frames, 24) == 5
    all_frames = read_frames(path)
    assert all_frames.shape == (5, 32, 48, 3)
    assert np.abs(all_frames.astype(int) - frames).max() <= 3
    picked = read_frames(path, [4, 0, 0, 2])
    assert [round(f.mean() / 50) for f in picked] == [4, 0, 0, 2]
    assert len(list(iter_frames(path))) == 5


def test_writer_failure_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    with pytest.raises(ValueError, match="frame"), VideoWriter(path, 48, 32, 30) as w:
        w.write(np.zeros((32, 48, 3), np.uint8))
        w.write(np.zeros((10, 10, 3), np.uint8))  # wrong size
    assert not path.exists() and not partials(tmp_path)
    with pytest.raises(RuntimeError, match="boom"), VideoWriter(path, 48, 32, 30, mask=True) as w:
        w.write(np.zeros((32, 48), bool))
        raise RuntimeError("boom")
    assert not path.exists() and not partials(tmp_path)


def test_writer_keeps_existing_file_until_done(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    path.write_bytes(b"old")
    with pytest.raises(ValueError), VideoWriter(path, 48, 32, 30) as w:
        w.write(np.zeros((5, 5, 3), np.uint8))
    assert path.read_bytes() == b"old"


def test_ffmpeg_error_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(Exception, match="bad.mp4"):
        read_frames(bad)
    with pytest.raises(StageFailed, match="ffmpeg could not write"):
        with VideoWriter(tmp_path / "x.unknownext", 48, 32, 30) as w:
            w.write(np.zeros((32, 48, 3), np.uint8))
    assert not partials(tmp_path)
