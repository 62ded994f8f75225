"""Run Real-ESRGAN's `inference_realesrgan_video.py` unchanged after the torchvision shim it needs.

Usage (by the upscale stage, cwd = the clone): python realesrgan_launcher.py --realesrgan_dir DIR -- ARGS

Standard library only at import time. basicsr 1.4.2 (the latest on PyPI) imports `rgb_to_grayscale` from
`torchvision.transforms.functional_tensor`, a module torchvision removed in 0.17; `import realesrgan`
imports basicsr.data, so every run fails with ModuleNotFoundError (XPixelGroup/BasicSR#649). The
function lives on in `torchvision.transforms.functional`, so when the old module is missing we register
the new one under its name before upstream imports basicsr. Nothing in site-packages is edited.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

from upstream_main import run_upstream_script  # a sibling file: launchers run as files

TAG = "[rav-realesrgan]"
OLD = "torchvision.transforms.functional_tensor"


def shim_functional_tensor() -> None:
    if importlib.util.find_spec("torchvision") is None:
        return  # upstream will report the missing torchvision itself
    try:
        importlib.import_module(OLD)
    except ModuleNotFoundError:
        sys.modules[OLD] = importlib.import_module("torchvision.transforms.functional")
        print(f"{TAG} {OLD} is gone in this torchvision; aliased it to torchvision.transforms.functional",
              flush=True)


def main() -> None:
    # As when upstream is run as `python inference_realesrgan_video.py`: the clone's `realesrgan` package first.
    run_upstream_script("realesrgan_dir", "inference_realesrgan_video.py", TAG, shim_functional_tensor)


if __name__ == "__main__":
    main()
