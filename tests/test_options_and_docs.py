"""Options declared once: parsers, config files and the README tables all come from the dataclasses."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest
from conftest import REPO, run_cli

from replace_actor_video.core.errors import UserError
from replace_actor_video.core.options import add_to_parser, build, to_argv
from replace_actor_video.core.values import parse_resolution
from replace_actor_video.pipeline.run import build_parser
from replace_actor_video.upstream.wan.generate import GenerateOptions
from replace_actor_video.upstream.wan.preprocess import PreprocessOptions


@pytest.mark.parametrize("text", ["1280 720", "1280x720", "1280X720", "1280*720", " 1280 x 720 "])
def test_resolution_spellings(text):
    assert parse_resolution(text) == (1280, 720)


def test_resolution_as_two_cli_words_and_roundtrip():
    values = vars(build_parser().parse_args(["--video_path", "v", "--refer_path", "r", "--resolution", "960", "544"]))
    opts = build(PreprocessOptions, values)
    assert opts.resolution == (960, 544)
    again = build(
        PreprocessOptions,
        vars(build_parser().parse_args(["--video_path", "v", "--refer_path", "r", *to_argv(opts)[4:]])),
    )
    assert again == opts


def test_bad_resolution_is_a_user_error():
    with pytest.raises(UserError, match="--resolution"):
        build(PreprocessOptions, {"video_path": "v", "refer_path": "r", "resolution": "wide"})


def test_seed_flags_exist_under_the_seed_names():
    parser = build_parser()
    flags = {s for a in parser._actions for s in a.option_strings}
    for flag in (
        "--video_path",
        "--refer_path",
        "--save_path",
        "--resolution",
        "--fps",
        "--replace",
        "--retarget",
        "--use_flux",
        "--iterations",
        "--k",
        "--w_len",
        "--h_len",
        "--wan22_dir",
        "--ckpt_dir",
        "--use_relighting_lora",
        "--prompt",
        "--sample_steps",
        "--sample_guide_scale",
        "--sample_shift",
        "--sample_solver",
        "--seed",
        "--frame_num",
        "--refert_num",
        "--no_offload",
        "--t5_cpu",
        "--convert_model_dtype",
        "--multi_gpu",
        "--nproc_per_node",
        "--output_path",
        "--dry-run",
        "--force",
    ):
        assert flag in flags, flag


def test_generation_accepts_output_path_as_alias_of_save_file():
    parser = argparse.ArgumentParser()
    add_to_parser(parser, GenerateOptions)
    assert parser.parse_args(["--output_path", "x.mp4"]).save_file == "x.mp4"


def test_config_file_supplies_defaults_and_cli_wins(media, fake_wan22, fake_ckpt, tmp_path):
    cfg = tmp_path / "job.toml"
    cfg.write_text(
        f'[inputs]\nvideo_path = "{media["dance"]}"\nrefer_path = "{media["ref"]}"\n'
        '[options]\nreplace = true\nresolution = "960x544"\nsample_steps = 12\n'
    )
    res = run_cli(
        "pipeline.py",
        "--config",
        cfg,
        "--dry-run",
        "--sample_steps",
        "8",
        "--output_path",
        tmp_path / "o.mp4",
        "--wan22_dir",
        fake_wan22,
        "--ckpt_dir",
        fake_ckpt,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert "--resolution_area 960 544" in res.stdout and "--replace_flag" in res.stdout
    assert "--sample_steps 8" in res.stdout


def test_config_file_with_unknown_key_is_refused(tmp_path):
    cfg = tmp_path / "job.toml"
    cfg.write_text("sample_stepz = 3\n")
    res = run_cli("pipeline.py", "--config", cfg, cwd=tmp_path)
    assert res.returncode == 2 and "job.toml:sample_stepz: unknown option" in res.stderr


def test_readme_option_tables_are_generated_from_the_code():
    env = {k: v for k, v in os.environ.items() if k not in ("WAN22_DIR", "WAN_ANIMATE_CKPT", "RAV_RUNS_DIR")}
    res = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "options_doc.py"), "--check"], capture_output=True, text=True, env=env
    )
    assert res.returncode == 0, res.stderr
