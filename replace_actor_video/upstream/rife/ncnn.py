"""Adapter for nihui/rife-ncnn-vulkan (release 20221029): finding the binary and its model folder,
checking that it really runs on a Vulkan GPU, and the argv that converts a frame folder to an exact
frame count (docs/FINISHING.md).

Traps handled here:
- `-n` is the total number of output frames, not a rate, and only models whose -m text contains
  "rife-v4" accept it ("only rife-v4 model support custom numframe and timestep"): we always pass `-n`
  and refuse other models up front;
- the model type is guessed from a substring of the whole -m text (rife-v2 first), so an absolute path
  under a folder named e.g. "rife-v2-tools" would load a v4 model as v2: we run with cwd = the model's
  parent and pass its bare folder name;
- input names are sorted as strings: frames are extracted zero-padded (media/interpolate.py);
- without a usable Vulkan driver it exits with "vkCreateInstance failed" / "invalid gpu device", and with
  only a software driver (llvmpipe, lavapipe, SwiftShader) it runs on the CPU, very slowly: a two-frame
  probe tells which, before any real work.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ...core.errors import UserError
from ...media.interpolate import FRAME_PATTERN

BINARY = "rife-ncnn-vulkan"
ENV = "RIFE_NCNN_VULKAN"
INSTALL_DIR = "rife-ncnn-vulkan"  # where scripts/install_finishing.sh unpacks the release zip
DEFAULT_MODEL = "rife-v4.6"
SOFTWARE_DEVICES = ("llvmpipe", "lavapipe", "swiftshader")
# ncnn prints one line per Vulkan device: "[0 NVIDIA H100 80GB HBM3]  queueC=2[8]  queueG=0[16] ..."
_DEVICE = re.compile(r"^\[(\d+) (.+?)\]\s+queueC=", re.MULTILINE)
FIX = "pass --rife_bin PATH, put rife-ncnn-vulkan on PATH, or run scripts/install_finishing.sh"


@dataclass(frozen=True)
class NcnnSetup:
    binary: Path
    model: Path  # the model folder (absolute)


@dataclass(frozen=True)
class Probe:
    device: str | None  # the Vulkan device it used, when it ran
    problem: str | None  # why it cannot be used, else None

    @property
    def software(self) -> bool:
        return self.device is not None and any(s in self.device.lower() for s in SOFTWARE_DEVICES)


def find_binary(rife_bin: str | None) -> Path:
    """--rife_bin, else $RIFE_NCNN_VULKAN, else rife-ncnn-vulkan on PATH, else ./rife-ncnn-vulkan/."""
    if rife_bin:
        path = Path(rife_bin).expanduser()
        if path.is_dir():
            path = path / BINARY
        if not path.is_file():
            raise UserError(f"--rife_bin {rife_bin}: no such file; {FIX}")
        return path.resolve()
    for candidate in (os.environ.get(ENV), shutil.which(BINARY), str(Path(INSTALL_DIR) / BINARY)):
        if candidate and Path(candidate).is_file():
            return Path(candidate).resolve()
    raise UserError(f"{BINARY} not found (${ENV}, PATH, ./{INSTALL_DIR}/); {FIX}")


def find_model(binary: Path, rife_model: str) -> Path:
    """The model folder: --rife_model as a path, else a folder of that name next to the binary (where
    the release zip puts them). Must be a v4 model, because we always pass -n."""
    given = Path(rife_model).expanduser()
    model = given if given.is_dir() else binary.parent / rife_model
    if not (model / "flownet.param").is_file():
        raise UserError(
            f"--rife_model {rife_model}: no flownet.param in {model}; pass a model folder of the "
            f"rife-ncnn-vulkan release (e.g. {DEFAULT_MODEL})"
        )
    name = model.resolve().name
    if "rife-v4" not in name or "rife-v2" in name or "rife-v3" in name:
        raise UserError(
            f"--rife_model {rife_model}: only rife-v4 models accept a target frame count; use {DEFAULT_MODEL}"
        )
    return model.resolve()


def locate(rife_bin: str | None, rife_model: str) -> NcnnSetup:
    binary = find_binary(rife_bin)
    return NcnnSetup(binary, find_model(binary, rife_model))


def probe(setup: NcnnSetup, timeout: float = 120.0) -> Probe:
    """Interpolate two tiny frames with the chosen model; report the Vulkan device or why it failed."""
    from PIL import Image

    with tempfile.TemporaryDirectory(prefix="rav-ncnn-probe-") as tmp:
        a, b, out = Path(tmp, "a.png"), Path(tmp, "b.png"), Path(tmp, "out.png")
        Image.new("RGB", (64, 64), (0, 0, 0)).save(a)
        Image.new("RGB", (64, 64), (255, 255, 255)).save(b)
        argv = [str(setup.binary), "-0", str(a), "-1", str(b), "-o", str(out), "-m", setup.model.name]
        try:
            proc = subprocess.run(
                argv, cwd=setup.model.parent, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired:
            return Probe(None, f"{setup.binary} did not finish a two-frame test in {timeout:.0f}s")
        except OSError as exc:
            return Probe(None, f"{setup.binary} cannot be started ({exc.strerror})")
        text = proc.stdout + proc.stderr
        devices = _DEVICE.findall(text)
        device = devices[0][1] if devices else None
        if proc.returncode != 0 or not out.is_file():
            said = " / ".join([line.strip() for line in text.splitlines() if line.strip()][-2:]) or "no output"
            return Probe(
                device,
                f"{setup.binary.name} failed a two-frame test (exit {proc.returncode}: {said}); "
                "it needs a Vulkan driver (libvulkan1 and the NVIDIA ICD)",
            )
        return Probe(device or "unknown Vulkan device", None)


@dataclass(frozen=True)
class NcnnCall:
    setup: NcnnSetup
    in_dir: Path  # 00000001.png … (absolute)
    out_dir: Path  # absolute, existing, empty
    frames: int  # total output frames

    @property
    def cwd(self) -> Path:
        return self.setup.model.parent

    def argv(self) -> list[str]:
        return [
            str(self.setup.binary),
            "-i",
            str(self.in_dir),
            "-o",
            str(self.out_dir),
            "-n",
            str(self.frames),
            "-m",
            self.setup.model.name,
            "-f",
            FRAME_PATTERN,
        ]
