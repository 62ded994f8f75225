"""DiffSynth-Studio's train.py with the tiny models of tiny_model.py registered, for smoke tests:

    run_training.py --ckpt_dir <tiny folder> --train_script replace_actor_video/training/tiny_train.py ...

accelerate starts this file in every process; it reads rav_tiny_models.json beside the first file of
--model_paths, adds its entries to diffsynth.configs.MODEL_CONFIGS (the list the model loader matches file
hashes against) and runs the real train.py as __main__ with the same arguments. The clone is not edited.

One deferral: train.py builds LoadAudio for S2V datasets whatever the model (train.py:154), and its
constructor touches librosa.load, which pulls numba, llvmlite and scipy (operators.py:281) onto a bare GPU
machine for nothing. Here LoadAudio imports librosa when it first loads audio instead; Animate never does.
"""

import json
import runpy
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _load_audio_when_used(self, sr=16000):
    def load(path, sr):
        import librosa

        return librosa.load(path, sr=sr)

    self.sr = sr
    self.audio_loader = load


def main():
    # This folder would otherwise be sys.path[0], and its module names (dataset, launch...) could shadow others.
    sys.path[0] = str(REPO)
    import diffsynth
    from diffsynth.configs import MODEL_CONFIGS
    from diffsynth.core.data import operators

    operators.LoadAudio.__init__ = _load_audio_when_used
    args = sys.argv[1:]
    model_paths = json.loads(args[args.index("--model_paths") + 1])
    first = model_paths[0][0] if isinstance(model_paths[0], list) else model_paths[0]
    tiny = json.loads((Path(first).parent / "rav_tiny_models.json").read_text())
    MODEL_CONFIGS.extend(tiny["configs"])
    train_py = Path(diffsynth.__file__).resolve().parents[1] / "examples" / "wanvideo" / "model_training" / "train.py"
    sys.argv = [str(train_py), *args]
    runpy.run_path(str(train_py), run_name="__main__")


if __name__ == "__main__":
    main()
