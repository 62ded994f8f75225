"""Adapter for xinntao/Real-ESRGAN `inference_realesrgan_video.py`, run unchanged through
runtime/launcher.py (set-up and measured runs: docs/FINISHING.md).

Traps handled here:
- output naming: it writes `<-o folder>/<input name>_<suffix>.mp4`; we give it a scratch folder and a
  fixed input name and hand the user exactly --output;
- basicsr 1.4.2 + torchvision >= 0.17 (`functional_tensor`): shimmed by the launcher;
- the clone's `realesrgan` package imports a `version.py` that only `python setup.py develop` writes;
- it needs `ffmpeg-python`; without it, it runs `pip install --user` (fails in a venv), and the unrelated
  `ffmpeg` package gives "module 'ffmpeg' has no attribute 'input'": checked before launch;
- audio is stream-copied into MP4 (fails for codecs MP4 cannot hold) and `nb_frames` must be in the
  container (KeyError for many mkv/webm): it gets a video-only MP4 stream copy, we add the audio after;
- with several GPUs it cuts the video with `-ss/-to` and concatenates (wrong length, lost audio): we
  show it one GPU;
- weights are looked up in `weights/` relative to the cwd, else downloaded into `<clone>/weights`, and
  --face_enhance keeps facexlib weights in a cwd-relative `gfpgan/weights`: it runs with cwd = the clone;
- a RuntimeError on a frame (CUDA out of memory) is printed and the frame is skipped, exit code 0: we
  count the frames it wrote;
- fp16 by default, `--fp32` for full precision; the video script has no CPU path at all (Pool(0)), so
  `--fp32` does not make it run on a CPU.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ...core.errors import UserError
from .mirror_inference_video import MODELS

SCRIPT = "inference_realesrgan_video.py"
LAUNCHER = Path(__file__).with_name("runtime") / "launcher.py"
SUFFIX = "out"
INPUT_NAME = "input.mp4"
MODEL_NAMES = ("realesr-general-x4v3", "RealESRGAN_x4plus", "RealESRGAN_x4plus_anime_6B", "realesr-animevideov3")
INSTALL_HINT = "see docs/FINISHING.md (scripts/install_finishing.sh installs them)"


def check_clone(clone: Path) -> None:
    if not (clone / SCRIPT).is_file():
        raise UserError(
            f"{clone / SCRIPT} not found; clone xinntao/Real-ESRGAN (scripts/install_finishing.sh) "
            "or pass --realesrgan_dir"
        )
    if not (clone / "realesrgan" / "version.py").is_file():
        raise UserError(
            f"{clone / 'realesrgan' / 'version.py'} missing; run `python setup.py develop` in {clone} "
            "(scripts/install_finishing.sh does it)"
        )


def check_python(*, face_enhance: bool) -> None:
    """The packages upstream imports, checked without importing them (torch is slow to import)."""
    needed = {"torch": "torch", "torchvision": "torchvision", "basicsr": "basicsr", "cv2": "opencv-python"}
    if face_enhance:
        needed.update({"gfpgan": "gfpgan", "facexlib": "facexlib"})
    missing = [pkg for module, pkg in needed.items() if importlib.util.find_spec(module) is None]
    spec = importlib.util.find_spec("ffmpeg")
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not any((Path(p) / "_probe.py").is_file() for p in locations):
        missing.append(
            "ffmpeg-python"
            + (" (the installed `ffmpeg` package is a different one: pip uninstall ffmpeg)" if spec else "")
        )
    if missing:
        raise UserError(f"Real-ESRGAN needs {', '.join(missing)} in this Python ({sys.executable}); {INSTALL_HINT}")


def missing_weights(clone: Path, model_name: str) -> list[Path]:
    """Weight files not in <clone>/weights (upstream would download them on the first run)."""
    return [
        clone / "weights" / Path(url).name
        for url in MODELS[model_name][1]
        if not (clone / "weights" / Path(url).name).is_file()
    ]


def single_gpu_env() -> dict[str, str]:
    """The environment with only the first visible GPU, so upstream runs one process on the whole video."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    first = visible.split(",")[0].strip() if visible else "0"
    return {**os.environ, "CUDA_VISIBLE_DEVICES": first}


@dataclass(frozen=True)
class RealEsrganCall:
    clone: Path  # absolute; also the cwd
    video: Path  # absolute, named INPUT_NAME, video only
    out_dir: Path  # absolute
    model_name: str
    outscale: int
    tile: int
    face_enhance: bool
    fp32: bool
    ffmpeg: str

    def upstream_args(self) -> list[str]:
        args = [
            "-i",
            str(self.video),
            "-o",
            str(self.out_dir),
            "-n",
            self.model_name,
            "-s",
            str(self.outscale),
            "--suffix",
            SUFFIX,
            "-t",
            str(self.tile),
            "--ffmpeg_bin",
            self.ffmpeg,
        ]
        if self.face_enhance:
            args.append("--face_enhance")
        if self.fp32:
            args.append("--fp32")
        return args

    def argv(self, python: str = sys.executable) -> list[str]:
        return [python, str(LAUNCHER), "--realesrgan_dir", str(self.clone), "--", *self.upstream_args()]

    @property
    def output(self) -> Path:
        """Where upstream writes: <output folder>/<input name without extension>_<suffix>.mp4."""
        return self.out_dir / f"{self.video.stem}_{SUFFIX}.mp4"
