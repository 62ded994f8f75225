"""Contracts with Practical-RIFE and rife-ncnn-vulkan: the argv our adapters build parses with the mirrors
of the upstream CLIs, the mirrors equal the real upstream code when a clone is present, and the frame
arithmetic gives the exact target rate. Plus the real Practical-RIFE run (needs its clone and model)."""

from __future__ import annotations

import argparse
import ast
import os
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from conftest import REPO, pattern_clip

from replace_actor_video.core import config
from replace_actor_video.core.errors import UserError
from replace_actor_video.media.interpolate import pad_frames, target_frames
from replace_actor_video.upstream.rife import mirror_inference_video as rife_mirror
from replace_actor_video.upstream.rife import mirror_ncnn_main as ncnn_mirror
from replace_actor_video.upstream.rife import ncnn as rife_ncnn
from replace_actor_video.upstream.rife import practical as practical_rife


def upstream_clone(location: config.Location) -> Path:
    path = Path(os.environ.get(location.env) or REPO / location.default)
    return path


def upstream_parser(path: Path) -> argparse.ArgumentParser:
    """A parser made of the `add_argument(...)` calls of an upstream file, in source order, evaluated as
    written (the arguments are literals), wherever the calls sit (top level, main(), __main__ block)."""
    calls = [
        node
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument"
    ]
    parser = argparse.ArgumentParser()
    for node in sorted(calls, key=lambda n: (n.lineno, n.col_offset)):
        call = ast.Call(
            func=ast.Attribute(value=ast.Name("parser", ast.Load()), attr="add_argument", ctx=ast.Load()),
            args=node.args,
            keywords=node.keywords,
        )
        eval(compile(ast.fix_missing_locations(ast.Expression(call)), str(path), "eval"), {"parser": parser})
    return parser


def describe(parser: argparse.ArgumentParser) -> list[tuple]:
    return [
        (
            tuple(a.option_strings),
            a.dest,
            a.type,
            a.default,
            a.nargs,
            a.const,
            a.choices,
            a.required,
            a.help,
            type(a).__name__,
        )
        for a in parser._actions
        if not isinstance(a, argparse._HelpAction)
    ]


def clone_commit(clone: Path) -> str:
    return config.upstream_commit(clone)


# -- Practical-RIFE --------------------------------------------------------------------------------------


def test_rife_argv_parses_with_the_mirror(tmp_path):
    call = practical_rife.RifeCall(tmp_path / "Practical-RIFE", tmp_path / "in.mp4", tmp_path / "work" / "out.mp4", 2)
    args = rife_mirror.apply_upstream_rules(rife_mirror.build_parser().parse_args(call.upstream_args()))
    assert args.video == str(tmp_path / "in.mp4") and args.output == str(tmp_path / "work" / "out.mp4")
    assert os.path.isabs(args.modelDir) and args.modelDir == str(tmp_path / "Practical-RIFE" / "train_log")
    assert (args.multi, args.fps, args.png, args.fp16, args.scale) == (2, None, False, False, 1.0)
    argv = call.argv()
    assert argv[1] == str(practical_rife.LAUNCHER) and argv[argv.index("--") + 1 :] == call.upstream_args()


@pytest.mark.parametrize("source,target,multi", [(16, 30, 2), (24, 60, 3), (15, 30, 2), (25, 30, 2), (30, 120, 4)])
def test_rife_multi_reaches_the_target(source, target, multi):
    assert practical_rife.multi_for(Fraction(source), Fraction(target)) == multi


def test_practical_rife_mirror_equals_upstream():
    clone = upstream_clone(config.PRACTICAL_RIFE)
    script = clone / rife_mirror.UPSTREAM_FILE
    if not script.is_file():
        pytest.skip(
            f"no Practical-RIFE clone at {clone} (set {config.PRACTICAL_RIFE.env}); mirror commit "
            f"{rife_mirror.UPSTREAM_COMMIT[:7]}"
        )
    assert describe(upstream_parser(script)) == describe(rife_mirror.build_parser()), (
        f"inference_video.py changed since {rife_mirror.UPSTREAM_COMMIT[:7]} (clone at {clone_commit(clone)[:7]}): "
        "update the mirror and the adapter"
    )
    source = script.read_text()
    for rule in (
        "args.multi = (2 ** args.exp)",
        "assert args.scale in [0.25, 0.5, 1.0, 2.0, 4.0]",
        "from train_log.RIFE_HDv3 import Model",
        "model.load_model(args.modelDir, -1)",
        "import moviepy.editor",
        'shutil.rmtree("temp")',
    ):
        assert rule in source, f"upstream no longer has {rule!r}: recheck the adapter's traps"


# -- rife-ncnn-vulkan ------------------------------------------------------------------------------------


def test_ncnn_argv_parses_and_passes_upstream_checks(tmp_path):
    model = tmp_path / "release" / "rife-v4.6"
    model.mkdir(parents=True)
    frames_in, frames_out = tmp_path / "in", tmp_path / "out"
    frames_in.mkdir()
    frames_out.mkdir()
    call = rife_ncnn.NcnnCall(
        rife_ncnn.NcnnSetup(tmp_path / "release" / "rife-ncnn-vulkan", model), frames_in, frames_out, 90
    )
    args = ncnn_mirror.parse(call.argv()[1:])
    assert (args.inputpath, args.outputpath, args.numframe, args.model) == (
        str(frames_in),
        str(frames_out),
        90,
        "rife-v4.6",
    )
    assert ncnn_mirror.model_kind(args.model) == "v4"
    old = os.getcwd()
    os.chdir(call.cwd)  # -m is resolved against the cwd the stage runs it in
    try:
        assert ncnn_mirror.check(args) == "dir"
        assert ncnn_mirror.resolve_model_dir(args.model, "/nowhere/") == "rife-v4.6"
    finally:
        os.chdir(old)


def test_ncnn_rejects_what_upstream_rejects():
    with pytest.raises(ncnn_mirror.UsageError, match="only rife-v4"):
        ncnn_mirror.check(ncnn_mirror.parse(["-i", "/", "-o", "/", "-n", "10"]))  # default model rife-v2.3
    # the type is a substring of the whole -m text, rife-v2 first: why we pass the bare folder name
    assert ncnn_mirror.model_kind("/opt/rife-v2-tools/rife-v4.6") == "v2"


@pytest.mark.parametrize("frames,source,target", [(32, 16, 30), (48, 16, 30), (77, 16, 30), (50, 25, 60)])
def test_ncnn_frame_plan_lands_on_the_target_clock(frames, source, target):
    n = target_frames(frames, Fraction(source), Fraction(target))
    assert n == round(frames * target / source)
    for i, (s0, s1, t) in enumerate(ncnn_mirror.frame_plan(frames, n)):
        assert s1 == s0 + 1 and 0 <= t <= 1
        if s0 < frames - 2:  # before upstream clamps the end to the last pair
            # n is whole, so the frames are spread over the source's exact duration: each lands within
            # half an output frame of its clock time (exactly on it when frames × target / source is whole)
            assert abs((s0 + t) / source - i / target) <= 0.5 / target, i


def test_pad_covers_the_unfilled_last_interval():
    assert pad_frames(Fraction(16), Fraction(30)) >= 2  # minterpolate leaves ~30/16 frames unfilled
    assert pad_frames(Fraction(24), Fraction(60)) >= 3


def test_ncnn_mirror_equals_upstream_source():
    src = Path(os.environ.get("RIFE_NCNN_VULKAN_SRC") or REPO / "rife-ncnn-vulkan-src") / ncnn_mirror.UPSTREAM_FILE
    if not src.is_file():
        pytest.skip(
            f"no rife-ncnn-vulkan source at {src} (set RIFE_NCNN_VULKAN_SRC to a clone of "
            f"nihui/rife-ncnn-vulkan); mirror commit {ncnn_mirror.UPSTREAM_COMMIT[:7]}"
        )
    code = src.read_text()
    assert ncnn_mirror.OPTSTRING in re.findall(r'getopt\(argc, argv, "([^"]+)"\)', code)
    usage = code[code.index("static void print_usage()") :]
    usage = usage[: usage.index("\n}\n")]
    printed = "".join(
        bytes(m, "utf-8").decode("unicode_escape").replace("%%", "%")
        for m in re.findall(r'fprintf\(std(?:err|out), "((?:[^"\\]|\\.)*)"\);', usage)
    )
    assert printed == ncnn_mirror.USAGE
    for line in (
        'model = PATHSTR("rife-v2.3")',
        "numframe = count * 2",
        "float fx = i * scale;",
        '"only rife-v4 model support custom numframe and timestep\\n"',
        "sprintf(tmp, pattern.c_str(), i+1)",
    ):
        assert line in code, f"upstream no longer has {line!r}: recheck the mirror"


# -- the real Practical-RIFE (its clone and a model in train_log/) -----------------------------------------


@pytest.mark.gpu
def test_real_practical_rife_through_the_stage(tmp_path):
    """Runs upstream's own inference_video.py with the model in train_log/ (random weights are fine: the
    contract is frames, rate, audio and files); on CUDA when there is a GPU, else slowly on the CPU."""
    clone = upstream_clone(config.PRACTICAL_RIFE)
    try:
        practical_rife.check_clone(clone)
        practical_rife.check_python()
    except UserError as exc:  # what is missing, and the fix
        pytest.skip(f"real Practical-RIFE not runnable here: {exc}")
    clip = tmp_path / "clip16.mp4"
    pattern_clip(clip, size="160x120", rate=16, seconds=2)
    out = tmp_path / "out30.mp4"
    res = subprocess.run(
        [
            sys.executable,
            str(REPO / "run_postprocess.py"),
            "--input",
            str(clip),
            "--output",
            str(out),
            "--backend",
            "cuda",
            "--rife_pytorch_dir",
            str(clone),
            "--runs_dir",
            str(tmp_path / "runs"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr
    from replace_actor_video.media.probe import probe_video

    info = probe_video(out, count_frames=True)
    assert (info.frames, info.fps, info.has_audio, info.codec) == (60, 30, True, "h264")
