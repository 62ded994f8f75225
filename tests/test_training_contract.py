"""The DiffSynth-Studio contract, checked against the real clone when it is present (DiffSynth-Studio/ at the
repo root or $DIFFSYNTH_DIR): the mirror of train.py's parser, the metadata columns train.py and the
pipeline read, the Animate defaults of the upstream scripts, and the class names FSDP wraps."""

from __future__ import annotations

import argparse
import ast
import importlib.util
import os
import re
import shlex
from pathlib import Path

import pytest

from replace_actor_video.training.accelerate_config import FSDP_IGNORED_MODULES, FSDP_WRAP_CLASSES
from replace_actor_video.upstream.diffsynth import mirror_train as mirror
from replace_actor_video.upstream.diffsynth import train as ds

REPO = Path(__file__).resolve().parents[1]
CLONE = Path(os.environ.get("DIFFSYNTH_DIR") or REPO / "DiffSynth-Studio")
needs_clone = pytest.mark.skipif(
    not (CLONE / ds.TRAIN_SCRIPT).is_file(),
    reason=f"no DiffSynth-Studio clone at {CLONE} (scripts/install_training.sh makes one)",
)


def real_parser() -> argparse.ArgumentParser:
    """train.py's wan_parser(), built from the clone's own source: parsers.py only imports argparse, and
    wan_parser is taken out of train.py with ast (train.py itself imports torch and diffsynth)."""
    spec = importlib.util.spec_from_file_location("ds_parsers", CLONE / mirror.UPSTREAM_PARSERS)
    parsers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(parsers)
    tree = ast.parse((CLONE / ds.TRAIN_SCRIPT).read_text())
    func = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "wan_parser")
    namespace = {"argparse": argparse, **vars(parsers)}
    exec(compile(ast.Module(body=[func], type_ignores=[]), "train.py", "exec"), namespace)
    return namespace["wan_parser"]()


def actions(parser: argparse.ArgumentParser) -> dict[str, tuple]:
    return {
        a.dest: (tuple(a.option_strings), type(a).__name__, a.type, a.default, a.nargs, a.choices, a.required)
        for a in parser._actions
    }


@needs_clone
def test_mirror_matches_train_py_parser():
    assert actions(mirror.build_parser()) == actions(real_parser())


def script_args(mode: str) -> dict[str, str | None]:
    text = (CLONE / "examples/wanvideo/model_training" / mode / "Wan2.2-Animate-14B.sh").read_text()
    command = text[text.index("accelerate launch") :].replace("\\\n", " ").splitlines()[0]
    words = shlex.split(command)
    out: dict[str, str | None] = {}
    for i, word in enumerate(words):
        if word.startswith("--"):
            nxt = words[i + 1] if i + 1 < len(words) else None
            out[word] = None if nxt is None or nxt.startswith("--") else nxt
    return out


@needs_clone
@pytest.mark.parametrize("mode", ["lora", "full"])
def test_our_animate_arguments_follow_the_upstream_scripts(mode):
    upstream = script_args(mode)
    call = ds.TrainCall(
        dataset_dir=Path("d"),
        metadata=Path("d/metadata.csv"),
        replace=False,
        model_paths=[["a"]],
        tokenizer_path=Path("t"),
        output_path=Path("o"),
        mode=mode,
        learning_rate=ds.MODE_DEFAULTS[mode]["learning_rate"],
        num_epochs=ds.MODE_DEFAULTS[mode]["num_epochs"],
        dataset_repeat=1,
        num_frames=81,
        height=480,
        width=832,
        max_pixels=1,
        lora_rank=32,
        lora_target_modules=ds.LORA_TARGETS,
        gradient_checkpointing_offload=True,
        gradient_accumulation_steps=1,
        save_steps=None,
        dataset_num_workers=0,
        layer_offload=False,
    )
    ours = mirror.build_parser().parse_args(call.args())
    for flag in (
        "--data_file_keys",
        "--extra_inputs",
        "--learning_rate",
        "--num_epochs",
        "--remove_prefix_in_ckpt",
        "--trainable_models",
        "--lora_base_model",
        "--lora_target_modules",
        "--lora_rank",
        "--height",
        "--width",
        "--num_frames",
    ):
        if flag in upstream:
            assert str(getattr(ours, flag[2:])) == upstream[flag] or float(getattr(ours, flag[2:])) == float(
                upstream[flag]
            ), flag
    assert ours.use_gradient_checkpointing_offload == ("--use_gradient_checkpointing_offload" in upstream)
    origin = upstream["--model_id_with_origin_paths"]
    assert [p.split(":", 1)[1] for p in origin.split(",")] == [ds.DIT_GLOB, ds.T5_FILE, ds.VAE_FILE, ds.CLIP_FILE]


@needs_clone
def test_metadata_columns_are_the_ones_diffsynth_reads():
    pipeline = (CLONE / "diffsynth/pipelines/wan_video.py").read_text()
    for column in ds.REPLACE_FILE_KEYS[1:]:
        assert re.search(rf"\b{column}: list\[Image.Image\] = None", pipeline), column
    train = (CLONE / ds.TRAIN_SCRIPT).read_text()
    assert '"animate_face_video": ToAbsolutePath(args.dataset_base_path)' in train
    assert 'inputs_shared["input_image"] = data["video"][0]' in train
    assert 'inputs_posi = {"prompt": data["prompt"]}' in train


@needs_clone
def test_fsdp_wrap_classes_exist_in_the_animate_models():
    sources = {
        name: (CLONE / "diffsynth/models" / f"{name}.py").read_text()
        for name in ("wan_video_dit", "wan_video_text_encoder", "wan_video_animate_adapter")
    }
    for cls in FSDP_WRAP_CLASSES.split(","):
        assert sum(f"\nclass {cls}(" in text for text in sources.values()) == 1, cls


@needs_clone
def test_fsdp_ignored_modules_hold_every_scalar_parameter_of_the_wan_models():
    """FSDP2 refuses 0-dim parameters; the only ones in the Wan models are the CLIP's (log_scale, logit_bias),
    and the ignored-modules regex names where train.py's training module keeps the CLIP."""
    scalar = re.compile(r"nn\.Parameter\(.*torch\.(ones|zeros|empty|tensor)\((\[\]|\(\)|[-\d.e]+\))")
    holders = {
        path.name for path in (CLONE / "diffsynth/models").glob("wan_video_*.py") if scalar.search(path.read_text())
    }
    assert holders == {"wan_video_image_encoder.py"}
    train = (CLONE / ds.TRAIN_SCRIPT).read_text()
    assert "self.pipe = WanVideoPipeline.from_pretrained(" in train
    assert "self.image_encoder: WanImageEncoder = None" in (CLONE / "diffsynth/pipelines/wan_video.py").read_text()
    assert re.fullmatch(FSDP_IGNORED_MODULES, "pipe.image_encoder")  # accelerate fullmatches module names
