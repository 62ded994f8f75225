"""Adapter for hzwer/Practical-RIFE `inference_video.py` (PyTorch RIFE on CUDA), run unchanged through
runtime/launcher.py (set-up and measured runs: docs/FINISHING.md).

Traps handled here:
- the repo holds no model: `train_log/RIFE_HDv3.py` (+ IFNet_HDv3.py) and `train_log/flownet.pkl` come
  from a model zip; the import is resolved against the clone, `--model` only says where flownet.pkl is
  and defaults to a cwd-relative 'train_log': we check the files and always pass an absolute --model;
- it deletes and recreates `./temp` in its cwd (audio merge): it runs in a scratch directory of its own;
- `--fps` only relabels the frames (the duration changes) and turns the audio merge off, and `--multi`
  is an integer: we never pass --fps, interpolate by ceil(target/source) and resample to the exact rate
  with ffmpeg afterwards (16 → 30 fps: ×2 to 32 fps, then 30 fps);
- it writes MPEG-4 Part 2 ('mp4v') whatever the extension: our final encode makes H.264 yuv420p;
- moviepy 2 (no `moviepy.editor`) and sk-video on NumPy ≥ 1.24 (`np.float`) break it: the launcher shims
  both; scripts/patch_skvideo_numpy2.py and scripts/requirements_practical_rife_py312.txt fix an install.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ...core.errors import UserError

SCRIPT = "inference_video.py"
LAUNCHER = Path(__file__).with_name("runtime") / "launcher.py"
MODEL_CODE = "train_log/RIFE_HDv3.py"
WEIGHTS = "train_log/flownet.pkl"
# module → what to install (model/loss.py imports torchvision; cv2 reads the fps, skvideo the frames).
MODULES = {
    "torch": "PyTorch",
    "torchvision": "torchvision",
    "cv2": "opencv-python",
    "skvideo": "sk-video",
    "tqdm": "tqdm",
    "numpy": "numpy",
}
INSTALL_HINT = "pip install -r scripts/requirements_practical_rife_py312.txt (see docs/FINISHING.md)"


def check_clone(rife_dir: Path) -> None:
    """UserError naming every missing file of a usable clone (script, model code, weights)."""
    if not (rife_dir / SCRIPT).is_file():
        raise UserError(
            f"{rife_dir / SCRIPT} not found; clone hzwer/Practical-RIFE (scripts/install_finishing.sh) "
            "or pass --rife_pytorch_dir"
        )
    missing = [name for name in (MODEL_CODE, WEIGHTS) if not (rife_dir / name).is_file()]
    code = rife_dir / MODEL_CODE
    if (
        code.is_file()
        and "IFNet_HDv3" in code.read_text(errors="replace")
        and not (rife_dir / "train_log/IFNet_HDv3.py").is_file()
    ):
        missing.append("train_log/IFNet_HDv3.py")
    if missing:
        raise UserError(
            f"{rife_dir}: missing {', '.join(missing)}; unzip a Practical-RIFE model (4.25 recommended, "
            f"see its README) into {rife_dir / 'train_log'}"
        )


def missing_modules() -> list[str]:
    return [package for module, package in MODULES.items() if importlib.util.find_spec(module) is None]


def check_python() -> None:
    missing = missing_modules()
    if missing:
        raise UserError(f"Practical-RIFE needs {', '.join(missing)} in this Python ({sys.executable}); {INSTALL_HINT}")


def multi_for(source_fps: Fraction, target_fps: Fraction) -> int:
    """The integer factor that reaches at least the target rate (the rest is an exact ffmpeg resample)."""
    return max(2, math.ceil(target_fps / source_fps))


@dataclass(frozen=True)
class RifeCall:
    rife_dir: Path  # absolute
    video: Path  # absolute
    output: Path  # absolute, outside the cwd it runs in
    multi: int

    def upstream_args(self) -> list[str]:
        return [
            "--video",
            str(self.video),
            "--output",
            str(self.output),
            "--model",
            str(self.rife_dir / "train_log"),
            "--multi",
            str(self.multi),
        ]

    def argv(self, python: str = sys.executable) -> list[str]:
        return [python, str(LAUNCHER), "--rife_dir", str(self.rife_dir), "--", *self.upstream_args()]

    def expected_frames(self, source_frames: int) -> int:
        """Upstream writes each source frame and multi-1 frames after all but the last."""
        return (source_frames - 1) * self.multi + 1
