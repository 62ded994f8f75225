"""Wan2.2's official `preprocess_data.py`: the stage options that drive it, its CLI built from them, its
checkpoint files, its outputs, its traps, the rules it samples and resizes frames by (which our contour mask
and the dataset builder reproduce), and our record of a preprocessing folder.

Traps handled here (each read in the Wan2.2 source at the pinned commit; README "Troubleshooting"):
- it needs `--ckpt_path <ckpt>/process_checkpoint`, not the checkpoint root;
- pose2d is a file or, as published on Hugging Face, a folder holding end2end.onnx;
- SAM2 is loaded only in replace mode, FLUX Kontext only with --use_flux (from process_checkpoint/);
- --use_flux without --retarget_flag is an assertion error after the models load, so we refuse it first;
- --retarget_flag is silently ignored in replace mode, so we never pass it there.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...core import config
from ...core.atomic import atomic_dir
from ...core.errors import StageFailed, UserError
from ...core.options import option, upstream_args
from ...core.values import parse_resolution
from ...media.probe import check_image, probe_video

if TYPE_CHECKING:
    import numpy as np

SCRIPT = Path("wan/modules/animate/preprocess/preprocess_data.py")
ARGV = "preprocess_data.py"  # the upstream argv the options marked `upstream=ARGV` go to
ANIMATE_OUTPUTS = ("src_ref.png", "src_face.mp4", "src_pose.mp4")
REPLACE_OUTPUTS = ANIMATE_OUTPUTS + ("src_bg.mp4", "src_mask.mp4")
FLUX_OUTPUTS = ("refer_edit.png", "tpl_edit.png")
FLUX_DIR = "FLUX.1-Kontext-dev"
# Replace mode uses the reference image only to copy it, byte for byte, to src_ref.png (process_pipepline.py,
# replace branch: shutil.copy(refer_image_path, src_ref_path)); no other output depends on it.
REFERENCE_COPY = "src_ref.png"
RECORD = "rav_preprocess.json"  # ours: what later steps need (fps, frame count, source video for the audio)
DIVISOR = 16  # resize_by_area(..., divisor=16): each side floored to a multiple of 16
MAX_RESOLUTION_SIDE = 4096  # --resolution: at most this per side (Animate is trained at 1280x720; README "Limits")
MAX_FPS = 120


@dataclass(kw_only=True)
class PreprocessOptions:
    """Preprocessing (official preprocess_data.py)"""

    video_path: str = option(label="Driving video", help="driving video", widget="video", group="inputs", upstream=ARGV)
    refer_path: str = option(
        label="Character image", help="reference image of the character", widget="image", group="inputs", upstream=ARGV
    )
    save_path: str = option(
        "process_results",
        label="Preprocessing folder",
        help="folder for the preprocessing results",
        widget="dir",
        group="outputs",
        upstream=ARGV,
    )
    resolution: tuple[int, int] = option(
        (1280, 720),
        parse=parse_resolution,
        nargs="+",
        help="target area 'W H' or WxH; the video's aspect ratio is kept",
        upstream=ARGV,
        upstream_flag="--resolution_area",
    )
    fps: int = option(
        30,
        label="Frame rate",
        help="frames per second to sample the driving video at; -1 keeps the source fps",
        upstream=ARGV,
    )
    replace: bool = option(
        False,
        label="Mode",
        switch=("Animate", "Replace"),
        help="replace mode: put the character into the video's scene (adds src_bg.mp4 and src_mask.mp4)",
        group="mode",
        upstream=ARGV,
        upstream_flag="--replace_flag",
    )
    retarget: bool = option(
        True,
        label="Fit the pose to the character",
        help="animate mode: retarget the driving pose to the reference's body "
        "proportions (--no-retarget to keep the raw pose)",
        group="mode",
        upstream=ARGV,
        upstream_flag="--retarget_flag",
    )
    use_flux: bool = option(
        False,
        label="Normalise poses with FLUX",
        help="animate mode with --retarget: normalise poses with FLUX.1 Kontext "
        "(needs process_checkpoint/FLUX.1-Kontext-dev)",
        group="mode",
        upstream=ARGV,
    )
    iterations: int = option(
        3,
        label="Official mask: dilation passes",
        help="replace mode, official mask: dilation iterations",
        group="mask",
        upstream=ARGV,
    )
    k: int = option(
        7,
        label="Official mask: dilation kernel",
        help="replace mode, official mask: dilation kernel size",
        group="mask",
        upstream=ARGV,
    )
    w_len: int = option(
        1,
        label="Official mask: grid columns",
        help="replace mode, official mask: grid cells across the mask box (1 = rectangle)",
        group="mask",
        upstream=ARGV,
    )
    h_len: int = option(
        1,
        label="Official mask: grid rows",
        help="replace mode, official mask: grid cells down the mask box (1 = rectangle)",
        group="mask",
        upstream=ARGV,
    )
    wan22_dir: str = config.WAN22.option()
    ckpt_dir: str = config.CHECKPOINT.option(help="Wan2.2-Animate-14B checkpoint folder")


def validation(opts: PreprocessOptions) -> Iterator[tuple[str, str]]:
    """(option, one-line message) for every option value preprocessing cannot run with."""
    if opts.fps != -1 and not 1 <= opts.fps <= MAX_FPS:
        yield "fps", f"--fps {opts.fps}: use a value from 1 to {MAX_FPS}, or -1 for the source fps"
    if opts.use_flux and (opts.replace or not opts.retarget):
        yield "use_flux", "--use_flux only works in animate mode with --retarget; drop --use_flux or --replace"
    if max(opts.resolution) > MAX_RESOLUTION_SIDE:
        yield (
            "resolution",
            (
                f"--resolution {opts.resolution[0]}x{opts.resolution[1]}: at most {MAX_RESOLUTION_SIDE} "
                "px per side (Wan2.2-Animate is trained at 1280x720)"
            ),
        )
    for name in ("iterations", "k", "w_len", "h_len"):
        minimum = 0 if name == "iterations" else 1
        if getattr(opts, name) < minimum:
            yield name, f"--{name} {getattr(opts, name)}: must be at least {minimum}"


def validate(opts: PreprocessOptions) -> None:
    for _, message in validation(opts):
        raise UserError(message)


def frame_size(opts: PreprocessOptions, *, video: tuple[int, int], reference: tuple[int, int]) -> tuple[int, int]:
    """The frame size preprocessing writes: the --resolution area in the aspect of the video (replace mode) or of
    the reference image (animate mode), each side floored to 16; UserError when a side would be under 16 px."""
    source, (width, height) = ("video", video) if opts.replace else ("reference image", reference)
    size = upstream_size(width, height, opts.resolution[0] * opts.resolution[1])
    if min(size) < DIVISOR:
        raise UserError(
            f"--resolution {opts.resolution[0]}x{opts.resolution[1]}: the {source}'s {width}x{height} "
            f"aspect gives {size[0]}x{size[1]} frames; raise --resolution"
        )
    return size


def sampled_frames(frames: int, video_fps: Fraction, fps: int, duration: float) -> tuple[Fraction, int]:
    """(fps, frame count) of the preprocessing of a video with `frames` at `video_fps` sampled at --fps `fps`."""
    rate = video_fps if fps == -1 else Fraction(fps)
    return rate, len(frame_indices(frames, float(video_fps), float(fps), duration))


@dataclass(frozen=True)
class PreprocessCall:
    """preprocess_data.py for one set of resolved options (absolute paths; `save_path` = where it writes)."""

    opts: PreprocessOptions
    process_checkpoint: Path

    @classmethod
    def from_options(cls, opts: PreprocessOptions, *, process_checkpoint: Path) -> PreprocessCall:
        if opts.replace:  # upstream ignores the retargeting flags in replace mode: never pass them there
            opts = dataclasses.replace(opts, retarget=False, use_flux=False)
        elif not opts.retarget:
            opts = dataclasses.replace(opts, use_flux=False)
        return cls(opts, process_checkpoint)

    @property
    def save_path(self) -> Path:
        return Path(self.opts.save_path)

    def writing_to(self, folder: Path) -> PreprocessCall:
        """The same call writing into `folder` (the temporary name of an atomic output)."""
        return dataclasses.replace(self, opts=dataclasses.replace(self.opts, save_path=str(folder)))

    def argv(self, python: str = sys.executable) -> list[str]:
        return [
            python,
            str(Path(self.opts.wan22_dir) / SCRIPT),
            "--ckpt_path",
            str(self.process_checkpoint),
            *upstream_args(self.opts, ARGV),
        ]

    def expected_outputs(self) -> list[Path]:
        names = REPLACE_OUTPUTS if self.opts.replace else ANIMATE_OUTPUTS
        if self.opts.use_flux:
            names = names + FLUX_OUTPUTS
        return [self.save_path / n for n in names]


def check_wan22(wan22_dir: Path) -> None:
    if not (wan22_dir / SCRIPT).is_file():
        raise UserError(f"{wan22_dir / SCRIPT} not found; clone Wan2.2 with ./install.sh or pass --wan22_dir")


def pose2d_present(process_checkpoint: Path) -> bool:
    pose2d = process_checkpoint / "pose2d" / "vitpose_h_wholebody.onnx"
    return pose2d.is_file() or (pose2d / "end2end.onnx").is_file()


def check_process_checkpoint(ckpt_dir: Path, *, replace: bool, use_flux: bool) -> Path:
    """Return `<ckpt_dir>/process_checkpoint` after checking every model file the mode loads."""
    pc = ckpt_dir / "process_checkpoint"
    missing = []
    if not (pc / "det" / "yolov10m.onnx").is_file():
        missing.append("det/yolov10m.onnx")
    if not pose2d_present(pc):
        missing.append("pose2d/vitpose_h_wholebody.onnx (a file, or a folder with end2end.onnx)")
    if replace and not (pc / "sam2" / "sam2_hiera_large.pt").is_file():
        missing.append("sam2/sam2_hiera_large.pt")
    if use_flux and not (pc / FLUX_DIR / "model_index.json").is_file():
        missing.append(f"{FLUX_DIR}/ (download black-forest-labs/FLUX.1-Kontext-dev into it)")
    if missing:
        raise UserError(
            f"{pc}: missing {'; '.join(missing)}; download the checkpoint with ./install.sh or pass --ckpt_dir"
        )
    return pc


def check_outputs(folder: Path, *, replace: bool) -> int:
    """All videos of the mode must exist and agree in frame count; returns that count."""
    names = [n for n in (REPLACE_OUTPUTS if replace else ANIMATE_OUTPUTS) if n.endswith(".mp4")]
    counts = {}
    for name in names:
        try:
            counts[name] = probe_video(folder / name, count_frames=True).frames
        except UserError as exc:
            raise StageFailed(f"preprocessing wrote an unreadable {name}: {exc}") from None
    check_image(folder / "src_ref.png")
    if len(set(counts.values())) != 1:
        raise StageFailed(f"preprocessing outputs disagree in frame count: {counts}")
    return counts[names[0]]


# ---- our record of a preprocessing folder ------------------------------------------------------------------------


def write_record(
    folder: Path,
    *,
    video: Path,
    has_audio: bool,
    fps: Fraction,
    frames: int,
    opts: PreprocessOptions,
    mask_mode: str | None,
) -> None:
    """What later steps need: the fps and frame count (retiming), the source video (audio, re-masking) and
    the options that fixed the frame size and sampling (run_mask.py reproduces them)."""
    record = {
        "video_path": str(video),
        "has_audio": has_audio,
        "fps": str(fps),
        "frames": frames,
        "mode": "replace" if opts.replace else "animate",
        "mask_mode": mask_mode,
        "resolution": list(opts.resolution),
        "fps_option": opts.fps,
    }
    (folder / RECORD).write_text(json.dumps(record, indent=2))


def read_record(folder: Path) -> dict[str, Any] | None:
    path = folder / RECORD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable preprocessing record ({exc}); rerun run_preprocessing.py") from None
    if not isinstance(record, dict):
        raise UserError(f"{path}: not a preprocessing record; rerun run_preprocessing.py")
    return record


# ---- how upstream samples and resizes the driving video ----------------------------------------------------------


def frame_indices(frame_num: int, video_fps: float, fps: float, duration: float) -> list[int]:
    """The source frame indices preprocess_data.py samples (fps == -1 keeps the source rate): frame
    round(i / fps * src_fps) (numpy's round half to even) for i < int(frames / src_fps * fps)
    (process_pipepline.py + utils.get_frame_indices)."""
    expected = int(duration * video_fps + 0.5)
    if frame_num and abs((frame_num - expected) / frame_num) > 0.1:
        frame_num = expected  # upstream trusts the duration when the frame count looks wrong
    if fps == -1:
        fps = video_fps
    target = int(frame_num / video_fps * fps)
    return [min(max(round(i / fps * video_fps), 0), frame_num - 1) for i in range(target)]


def upstream_size(width: int, height: int, area: int, divisor: int = DIVISOR) -> tuple[int, int]:
    """The frame size Wan2.2's resize_by_area gives. Its exact search (calculate_new_size) always dies
    on a TypeError (check_valid takes 2 args, is called with 3) swallowed by a bare except, so the
    fallback is what runs: same-area size for the aspect, each side floored to the divisor."""
    aspect = width / height
    new_h = math.sqrt(area / aspect)
    new_w = area / new_h
    return int((new_w // divisor) * divisor), int((new_h // divisor) * divisor)


def upstream_resize(frame: np.ndarray, area: int, divisor: int = DIVISOR) -> np.ndarray:
    """Wan2.2 utils.resize_by_area(frame, area, divisor=16): resize into the upstream_size box keeping
    the aspect (INTER_AREA when shrinking, else INTER_LINEAR), centred on black (padding_resize)."""
    import cv2  # only the mask step resizes frames; the orchestrator imports this module without OpenCV
    import numpy as np

    h, w = frame.shape[:2]
    new_w, new_h = upstream_size(w, h, area, divisor)
    interp = cv2.INTER_AREA if new_w * new_h < w * h else cv2.INTER_LINEAR
    out = np.zeros((new_h, new_w, frame.shape[2]), dtype=np.uint8)
    if h / w > new_h / new_w:
        fit_w = int(new_h / h * w)
        pad = int((new_w - fit_w) / 2)
        out[:, pad : pad + fit_w] = cv2.resize(frame, (fit_w, new_h), interpolation=interp).reshape(new_h, fit_w, -1)
    else:
        fit_h = int(new_w / w * h)
        pad = int((new_h - fit_h) / 2)
        out[pad : pad + fit_h] = cv2.resize(frame, (new_w, fit_h), interpolation=interp).reshape(fit_h, new_w, -1)
    return out


def _link(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system
        shutil.copy2(source, target)


def with_reference(folder: Path, reference: Path, out: Path) -> Path:
    """A replace-mode preprocessing folder for another character, made without running anything: every file of
    `folder` but src_ref.png is the same for any reference (REFERENCE_COPY), so they are reused (hard links,
    copies across file systems; a contour mask and its points too) and `reference` becomes src_ref.png. `out`
    appears complete or not at all."""
    missing = [name for name in REPLACE_OUTPUTS if not (folder / name).is_file()]
    if missing:
        raise UserError(
            f"{folder}: not a replace-mode preprocessing folder ({', '.join(missing)} missing); "
            "reuse the folder of a run made with --replace"
        )
    with atomic_dir(out) as tmp:
        for item in folder.iterdir():
            if item.name == REFERENCE_COPY or item.name.startswith("."):
                continue
            if item.is_dir():
                shutil.copytree(item, tmp / item.name, copy_function=_link)
            else:
                _link(str(item), str(tmp / item.name))
        shutil.copyfile(reference, tmp / REFERENCE_COPY)
    return out
