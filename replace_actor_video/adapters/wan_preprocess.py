"""Adapter for Wan2.2's official `preprocess_data.py`: its CLI, its checkpoint files, its outputs, its traps.

Traps handled here (each read in the Wan2.2 source at the pinned commit; README "Troubleshooting"):
- it needs `--ckpt_path <ckpt>/process_checkpoint`, not the checkpoint root;
- pose2d is a file or, as published on Hugging Face, a folder holding end2end.onnx;
- SAM2 is loaded only in replace mode, FLUX Kontext only with --use_flux (from process_checkpoint/);
- --use_flux without --retarget_flag is an assertion error after the models load, so we refuse it first;
- --retarget_flag is silently ignored in replace mode, so we never pass it there.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import UserError

SCRIPT = Path("wan/modules/animate/preprocess/preprocess_data.py")
ANIMATE_OUTPUTS = ("src_ref.png", "src_face.mp4", "src_pose.mp4")
REPLACE_OUTPUTS = ANIMATE_OUTPUTS + ("src_bg.mp4", "src_mask.mp4")
FLUX_OUTPUTS = ("refer_edit.png", "tpl_edit.png")
FLUX_DIR = "FLUX.1-Kontext-dev"


@dataclass(frozen=True)
class PreprocessCall:
    wan22_dir: Path
    process_checkpoint: Path
    video_path: Path
    refer_path: Path
    save_path: Path
    resolution: tuple[int, int]
    fps: int
    replace: bool
    retarget: bool
    use_flux: bool
    iterations: int
    k: int
    w_len: int
    h_len: int

    def argv(self, python: str = sys.executable) -> list[str]:
        argv = [python, str(self.wan22_dir / SCRIPT),
                "--ckpt_path", str(self.process_checkpoint),
                "--video_path", str(self.video_path),
                "--refer_path", str(self.refer_path),
                "--save_path", str(self.save_path),
                "--resolution_area", str(self.resolution[0]), str(self.resolution[1]),
                "--fps", str(self.fps)]
        if self.replace:
            argv += ["--replace_flag", "--iterations", str(self.iterations), "--k", str(self.k),
                     "--w_len", str(self.w_len), "--h_len", str(self.h_len)]
        elif self.retarget:
            argv.append("--retarget_flag")
            if self.use_flux:
                argv.append("--use_flux")
        return argv

    def expected_outputs(self) -> list[Path]:
        names = REPLACE_OUTPUTS if self.replace else ANIMATE_OUTPUTS
        if self.use_flux and not self.replace:
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
        raise UserError(f"{pc}: missing {'; '.join(missing)}; download the checkpoint with ./install.sh "
                        f"or pass --ckpt_dir")
    return pc
