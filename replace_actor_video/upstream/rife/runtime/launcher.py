"""Run Practical-RIFE's `inference_video.py` unchanged after two compatibility shims.

Usage (by the postprocess stage, in a scratch cwd): python upstream/rife/runtime/launcher.py --rife_dir DIR -- ARGS

Standard library only at import time: this file runs in whatever Python has Practical-RIFE's packages.
- moviepy: upstream's transferAudio() starts with `import moviepy.editor`, which it never uses. moviepy 2
  has no `moviepy.editor`; the ImportError then sends upstream into a fallback that renames a file that
  does not exist yet, so every run ends with FileNotFoundError and a non-zero exit. When the real module
  cannot be imported we register an empty one.
- sk-video 1.1.10 / scikit-video 1.1.11 call np.float/np.int/np.bool/np.object (removed in NumPy 1.24)
  when they open a video, and decode every frame with the binary mode of np.fromstring (removed in
  NumPy 2.3). We put back the aliases (they were the builtins) and give np.fromstring its binary mode
  back (np.frombuffer + copy), each only when missing. scripts/patch_skvideo_numpy2.py repairs an
  installed sk-video instead, for running upstream by hand.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
import warnings

# Launchers run as files in the upstream Python: the shared runner is loaded from upstream/runtime/ by path.
sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "runtime")
)
from run_script import run_upstream_script

TAG = "[rav-rife]"


def _log(text: str) -> None:
    print(f"{TAG} {text}", flush=True)


def shim_moviepy_editor() -> None:
    try:
        importlib.import_module("moviepy.editor")
        return
    except Exception as exc:  # ModuleNotFoundError, or moviepy 1.x failing at import
        reason = f"{type(exc).__name__}: {exc}"
    try:
        importlib.import_module("moviepy")
    except Exception:
        sys.modules["moviepy"] = types.ModuleType("moviepy")
    sys.modules["moviepy.editor"] = types.ModuleType("moviepy.editor")
    _log(f"moviepy.editor unavailable ({reason}); registered an empty module (upstream never uses it)")


def restore_numpy_compat() -> None:
    import numpy as np

    restored = []
    for name, builtin in (("float", float), ("int", int), ("bool", bool), ("object", object)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            present = hasattr(np, name)
        if not present:
            setattr(np, name, builtin)
            restored.append(f"np.{name}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            np.fromstring(b"\0", dtype=np.uint8)
    except ValueError:
        text_mode = np.fromstring

        def fromstring(string, dtype=float, count=-1, sep=""):
            if sep == "":
                return np.frombuffer(string, dtype=dtype, count=count).copy()
            return text_mode(string, dtype=dtype, count=count, sep=sep)

        np.fromstring = fromstring
        restored.append("the binary mode of np.fromstring")
    if restored:
        _log(f"NumPy {np.__version__}: restored {', '.join(restored)} for sk-video")


def shims() -> None:
    shim_moviepy_editor()
    restore_numpy_compat()


def main() -> None:
    # As when upstream is run as `python inference_video.py`: `train_log` and `model` import from the clone.
    run_upstream_script("rife_dir", "inference_video.py", TAG, shims)


if __name__ == "__main__":
    main()
