"""Run Real-ESRGAN's `inference_realesrgan_video.py` unchanged after the torchvision shim it needs.

Usage (by the upscale stage, cwd = the clone):
    python upstream/realesrgan/runtime/launcher.py --realesrgan_dir DIR -- ARGS

Standard library only at import time. basicsr 1.4.2 (the latest on PyPI) imports `rgb_to_grayscale` from
`torchvision.transforms.functional_tensor`, a module torchvision removed in 0.17; `import realesrgan`
imports basicsr.data, so every run fails with ModuleNotFoundError (XPixelGroup/BasicSR#649). The
function lives on in `torchvision.transforms.functional`, so when the old module is missing we register
the new one under its name before upstream imports basicsr. Nothing in site-packages is edited.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

# Launchers run as files in the upstream Python: the shared runner is loaded from upstream/runtime/ by path.
sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "runtime")
)
from run_script import run_upstream_script

TAG = "[rav-realesrgan]"
OLD = "torchvision.transforms.functional_tensor"


def shim_functional_tensor() -> None:
    if importlib.util.find_spec("torchvision") is None:
        return  # upstream will report the missing torchvision itself
    try:
        importlib.import_module(OLD)
    except ModuleNotFoundError:
        sys.modules[OLD] = importlib.import_module("torchvision.transforms.functional")
        print(f"{TAG} {OLD} is gone in this torchvision; aliased it to torchvision.transforms.functional", flush=True)


def main() -> None:
    # As when upstream is run as `python inference_realesrgan_video.py`: the clone's `realesrgan` package first.
    run_upstream_script("realesrgan_dir", "inference_realesrgan_video.py", TAG, shim_functional_tensor)


if __name__ == "__main__":
    main()
