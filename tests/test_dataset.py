"""run_dataset.py against the contract stand-in of preprocess_data.py, with real ffmpeg: the DiffSynth
metadata.csv columns and relative paths, clips whose streams agree frame for frame, resume, a failing
video logged and skipped, and a target video holding exactly the frames upstream preprocessing samples."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ffmpeg, locations, pattern_clip, run_cli

from replace_actor_video.media.probe import probe_video
from replace_actor_video.training.clips import clip_ranges
from replace_actor_video.training.resample import resample

ANIMATE_COLUMNS = ["video", "prompt", "animate_pose_video", "animate_face_video"]
REPLACE_COLUMNS = ANIMATE_COLUMNS + ["animate_inpaint_video", "animate_mask_video"]


def video(path: Path, *, seconds: float, rate: int, size: str = "320x240") -> Path:
    return pattern_clip(path, size=size, rate=rate, seconds=seconds, audio=False)


def read_metadata(dataset: Path) -> tuple[list[str], list[dict]]:
    with open(dataset / "metadata.csv", newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return reader.fieldnames, list(reader)


def build(src, out: Path, fake_wan22: Path, fake_ckpt: Path, tmp_path: Path, *extra: str):
    return run_cli(
        "run_dataset.py",
        "--input",
        src,
        "--output",
        out,
        *locations(fake_wan22, fake_ckpt, tmp_path),
        "--resolution",
        "320x240",
        "--clip_frames",
        "33",
        "--gpus_per_video",
        "0",
        *extra,
        cwd=tmp_path,
    )


def check_clips(dataset: Path, rows: list[dict], keys: list[str], frames: int) -> None:
    for row in rows:
        for key in keys:
            rel = row[key]
            assert not Path(rel).is_absolute() and ".." not in Path(rel).parts, rel
            assert probe_video(dataset / rel, count_frames=True).frames == frames, (key, rel)


@pytest.fixture
def videos(tmp_path, media) -> Path:
    folder = tmp_path / "videos"
    folder.mkdir()
    video(folder / "long.mp4", seconds=4, rate=24)  # 4 s at 30 fps = 120 frames = 3 clips of 33
    (folder / "long.txt").write_text('a dancer in red, "spinning"\n')
    video(folder / "short.mp4", seconds=1.2, rate=25, size="240x320")  # 36 frames: one clip, portrait
    shutil.copy(media["corrupt"], folder / "broken.mp4")
    return folder


def test_folder_to_animate_dataset_with_resume_and_one_bad_video(videos, fake_wan22, fake_ckpt, tmp_path):
    out = tmp_path / "dataset"
    first = build(videos, out, fake_wan22, fake_ckpt, tmp_path, "--num_cpus", "2")
    # One bad video is not fatal: the others are built, then the run says which failed (exit 1).
    assert first.returncode == 1, first.stderr
    assert "1 of 3 videos failed" in first.stderr and len(first.stderr.strip().splitlines()) == 1
    assert "broken.mp4: not a readable media file" in first.stdout

    columns, rows = read_metadata(out)
    assert columns == ANIMATE_COLUMNS
    assert len(rows) == 4
    assert [r["prompt"] for r in rows] == ['a dancer in red, "spinning"'] * 3 + ["视频中的人在做动作"]
    check_clips(out, rows, ANIMATE_COLUMNS[:1] + ANIMATE_COLUMNS[2:], 33)
    assert probe_video(out / rows[3]["video"]).width == 240  # the portrait video keeps its own size
    summary = json.loads((out / "dataset.json").read_text())
    assert summary["data_file_keys"] == ["video", "animate_pose_video", "animate_face_video"]
    assert summary["extra_inputs"] == ["input_image", "animate_pose_video", "animate_face_video"]
    failed = [v for v in summary["videos"].values() if v["status"] == "failed"]
    assert len(failed) == 1 and "broken.mp4" in failed[0]["error"]
    # Where no reference was given, the first frame was taken.
    long_item = next(v for v in summary["videos"].values() if v.get("video", "").endswith("long.mp4"))
    assert long_item["reference_taken_from_frame"] == 0 and Path(long_item["reference"]).is_file()

    stamps = {p: p.stat().st_mtime_ns for p in (out / "clips").rglob("*.mp4")}
    (videos / "broken.mp4").unlink()
    second = build(videos, out, fake_wan22, fake_ckpt, tmp_path)
    assert second.returncode == 0, second.stderr
    assert "2 already done, 0 to build" in second.stdout
    assert {p: p.stat().st_mtime_ns for p in (out / "clips").rglob("*.mp4")} == stamps
    assert read_metadata(out)[1] == rows
    assert not list(out.rglob("*.partial-*"))


def test_csv_to_replace_dataset(media, fake_wan22, fake_ckpt, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    video(src / "a.mp4", seconds=2.3, rate=30)  # 69 frames: 2 clips of 33, the tail dropped
    shutil.copy(media["ref"], src / "a_ref.png")
    (src / "list.csv").write_text('video,prompt,reference\na.mp4,"a man, walking",a_ref.png\n')
    out = tmp_path / "dataset"
    # The official mask: the contour mask needs SAM2 weights, which the stand-in run has not.
    result = build(src / "list.csv", out, fake_wan22, fake_ckpt, tmp_path, "--replace", "--mask_mode", "official")
    assert result.returncode == 0, result.stderr
    columns, rows = read_metadata(out)
    assert columns == REPLACE_COLUMNS
    assert [r["prompt"] for r in rows] == ["a man, walking"] * 2
    check_clips(out, rows, REPLACE_COLUMNS[:1] + REPLACE_COLUMNS[2:], 33)
    item = next(iter(json.loads((out / "dataset.json").read_text())["videos"].values()))
    assert item["reference"] == str(src / "a_ref.png") and item["reference_taken_from_frame"] is None


def test_a_csv_naming_a_missing_video_logs_and_skips_it(media, fake_wan22, fake_ckpt, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    video(src / "a.mp4", seconds=1.2, rate=30)
    (src / "list.csv").write_text("video,prompt\na.mp4,walking\ngone.mp4,missing\n")
    out = tmp_path / "dataset"
    result = build(src / "list.csv", out, fake_wan22, fake_ckpt, tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "1 of 2 videos failed" in result.stderr
    assert f"{src / 'gone.mp4'}: video not found" in result.stdout
    assert len(read_metadata(out)[1]) == 1  # the other video was built
    videos = json.loads((out / "dataset.json").read_text())["videos"]
    assert sorted(v["status"] for v in videos.values()) == ["done", "failed"]


def test_dry_run_writes_nothing(videos, fake_wan22, fake_ckpt, tmp_path):
    out = tmp_path / "dataset"
    result = build(videos, out, fake_wan22, fake_ckpt, tmp_path, "--dry-run", "--gpus_per_video", "1")
    assert result.returncode == 0, result.stderr
    assert "one Ray task each with 1 GPU(s)" in result.stdout and "--no-retarget" in result.stdout
    assert not out.exists() and not (tmp_path / "runs").exists()


def test_bad_options_exit_2(videos, fake_wan22, fake_ckpt, tmp_path):
    result = build(videos, tmp_path / "dataset", fake_wan22, fake_ckpt, tmp_path, "--clip_frames", "80")
    assert result.returncode == 2 and "4n+1" in result.stderr
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("path,prompt\nx.mp4,hi\n")
    result = build(bad_csv, tmp_path / "dataset", fake_wan22, fake_ckpt, tmp_path)
    assert result.returncode == 2 and "no 'video' column" in result.stderr
    assert not (tmp_path / "dataset").exists()


def test_clip_ranges():
    assert clip_ranges(120, 33) == [(0, 33), (33, 66), (66, 99)]
    assert clip_ranges(20, 33) == [(0, 20)]
    assert clip_ranges(4, 33) == []
    assert clip_ranges(200, 81, max_clips=1) == [(0, 81)]


# Upstream's own sampling (Wan2.2 utils.get_frame_indices with numpy): source frames for 30 fps.
UPSTREAM_24_TO_30 = [0, 1, 2, 2, 3, 4, 5, 6, 6, 7, 8, 9, 10, 10, 11, 12, 13, 14, 14, 15]
UPSTREAM_25_TO_30 = [0, 1, 2, 2, 3, 4, 5, 6, 7, 8, 8, 9, 10, 11, 12, 12, 13, 14, 15, 16]


@pytest.mark.parametrize("rate,expected", [(24, UPSTREAM_24_TO_30), (25, UPSTREAM_25_TO_30)])
def test_target_video_holds_the_frames_preprocessing_sampled(tmp_path, rate, expected):
    # Each source frame's brightness encodes its index, losslessly.
    src = tmp_path / "numbered.mp4"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"color=black:size=64x64:rate={rate}",
        "-frames:v",
        str(rate * 2),
        "-vf",
        "geq=lum='16+N*3':cb=128:cr=128",
        "-c:v",
        "libx264",
        "-qp",
        "0",
        "-pix_fmt",
        "yuv444p",
        str(src),
    )
    out = tmp_path / "sampled.mp4"
    assert resample(src, out, width=64, height=64, fps=30) == 60
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(out), "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        capture_output=True,
        check=True,
    ).stdout
    frames = [raw[i : i + 4096] for i in range(0, len(raw), 4096)]
    assert len(frames) == 60
    # ffmpeg's gray is full range: back to the limited-range luma step of 3 per index.
    got = [round(sum(f) / 4096 * 219 / 255 / 3) for f in frames[:20]]
    assert got == expected
