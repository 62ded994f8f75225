"""An option is declared once: one line added to GenerateOptions reaches the CLI, the UI form, the pipeline,
refine and the upstream argv (generate.py's, or the launcher's), with no other edit. The test makes that one-line
edit in a copy of the package and runs the copy as a user would (dry runs print the exact upstream commands); the
launcher options declared so (the colour match, the memory profile) are followed the same way in the package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, locations

PROBE = (
    '    rav_probe: int = option(3, help="a throwaway option of the test", group="sampling", '
    "upstream=GENERATE)\n"
    '    rav_launcher_probe: int = option(4, help="another, for the launcher", group="sampling", '
    "upstream=LAUNCHER)\n"
)
ANCHOR = "    audio_from: str | None = option("


@pytest.fixture(scope="module")
def copy_with_probe(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("repo")
    shutil.copytree(
        REPO / "replace_actor_video", root / "replace_actor_video", ignore=shutil.ignore_patterns("__pycache__")
    )
    for script in (*REPO.glob("run_*.py"), REPO / "pipeline.py"):
        shutil.copy(script, root / script.name)
    home = root / "replace_actor_video" / "upstream" / "wan" / "generate.py"
    text = home.read_text()
    assert text.count(ANCHOR) == 1
    home.write_text(text.replace(ANCHOR, PROBE + ANCHOR))  # the one edit
    return root


def run(root: Path, *args: object, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True, env=env, timeout=300, check=False
    )


def generate_commands(stdout: str, part: int = 1) -> list[list[str]]:
    """The generate.py arguments (after the launcher's `--`; part=0: the launcher's options before it) of every
    generate step a dry run printed."""
    lines = [line for line in stdout.splitlines() if line.startswith("[dry-run] generate (official")]
    return [line.split(" -- ", 1)[part].split() for line in lines]


def test_the_cli_and_the_upstream_argv(copy_with_probe, media, fake_wan22, fake_ckpt, tmp_path):
    help_text = run(copy_with_probe, copy_with_probe / "run_generation.py", "--help", cwd=tmp_path).stdout
    assert "--rav_probe" in help_text and "a throwaway option of the test" in help_text
    pre = run(
        copy_with_probe,
        copy_with_probe / "run_preprocessing.py",
        "--video_path",
        media["dance"],
        "--refer_path",
        media["ref"],
        "--resolution",
        "320x240",
        *locations(fake_wan22, fake_ckpt, tmp_path),
        cwd=tmp_path,
    )  # ./process_results, generation's default
    assert pre.returncode == 0, pre.stderr
    res = run(
        copy_with_probe,
        copy_with_probe / "run_generation.py",
        "--dry-run",
        "--rav_probe",
        9,
        *locations(fake_wan22, fake_ckpt, tmp_path),
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    [args] = generate_commands(res.stdout)
    assert args[args.index("--rav_probe") + 1] == "9"
    [own] = generate_commands(res.stdout, part=0)
    assert own[own.index("--rav_launcher_probe") + 1] == "4" and "--rav_launcher_probe" not in args
    res = run(
        copy_with_probe,
        copy_with_probe / "run_generation.py",
        "--dry-run",
        *locations(fake_wan22, fake_ckpt, tmp_path),
        cwd=tmp_path,
    )
    [args] = generate_commands(res.stdout)
    assert args[args.index("--rav_probe") + 1] == "3"  # the declared default reaches upstream too


def test_the_pipeline_and_refine(copy_with_probe, media, fake_wan22, fake_ckpt, tmp_path):
    common = [
        *locations(fake_wan22, fake_ckpt, tmp_path),
        "--dry-run",
        "--rav_probe",
        11,
    ]
    res = run(
        copy_with_probe,
        copy_with_probe / "pipeline.py",
        "--video_path",
        media["dance"],
        "--refer_path",
        media["ref"],
        "--replace",
        "--refine",
        "--mask_mode",
        "official",
        "--output_path",
        tmp_path / "out.mp4",
        *common,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    commands = generate_commands(res.stdout)
    assert len(commands) == 2  # the first pass and refine's
    assert all(args[args.index("--rav_probe") + 1] == "11" for args in commands)
    res = run(
        copy_with_probe,
        copy_with_probe / "run_refine.py",
        "--input",
        media["dance"],
        "--refer_path",
        media["ref"],
        "--mask_mode",
        "official",
        "--save_file",
        tmp_path / "refined.mp4",
        *common,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    [args] = generate_commands(res.stdout)
    assert args[args.index("--rav_probe") + 1] == "11"


def test_the_ui_form(copy_with_probe, tmp_path):
    """The form the UI builds for the generation tab and the pipeline tab, and the command a job runs."""
    script = f"""
from pathlib import Path
from replace_actor_video.pipeline.registry import STAGES
from replace_actor_video.ui.commands import Workspace, pipeline_form, resolve, stage_form, to_args
from replace_actor_video.ui.settings import ServerSettings
form = stage_form(next(e for e in STAGES if e.name == "generate"))
assert form.field("rav_probe") is not None and pipeline_form().field("rav_probe") is not None
work = Path({str(tmp_path)!r})
resolved = resolve(form, {{"rav_probe": "5"}}, job_dir=work / "job", workspace=Workspace(work, work, work),
                   settings=ServerSettings({{}}))
args = to_args(form, resolved.values)
print(args[args.index("--rav_probe") + 1])
"""
    res = run(copy_with_probe, "-c", script, cwd=copy_with_probe)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "5"


NEW_LAUNCHER_OPTIONS = [
    "--color_match",
    "hm",
    "--color_match_strength",
    "0.5",
    "--color_match_anchor",
    "first",
    "--memory_profile",
    "low",
]


def assert_launcher_got_them(own: list[str]) -> None:
    for flag, value in zip(NEW_LAUNCHER_OPTIONS[::2], NEW_LAUNCHER_OPTIONS[1::2]):
        assert own[own.index(flag) + 1] == value, (flag, own)


def test_the_colour_match_and_memory_options_reach_the_launcher(media, fake_wan22, fake_ckpt, tmp_path):
    """Declared once in GenerateOptions with upstream=LAUNCHER: from run_generation.py, pipeline.py and
    run_refine.py to the launcher's argv (not generate.py's), and in the UI forms."""
    common = [
        *locations(fake_wan22, fake_ckpt, tmp_path),
        "--dry-run",
        *NEW_LAUNCHER_OPTIONS,
    ]
    pre = run(
        REPO,
        REPO / "run_preprocessing.py",
        "--video_path",
        media["dance"],
        "--refer_path",
        media["ref"],
        "--resolution",
        "320x240",
        *common[:6],
        cwd=tmp_path,
    )  # ./process_results, generation's default
    assert pre.returncode == 0, pre.stderr
    res = run(REPO, REPO / "run_generation.py", *common, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    [own], [args] = generate_commands(res.stdout, part=0), generate_commands(res.stdout)
    assert_launcher_got_them(own)
    assert "--t5_cpu" in args and "--color_match" not in args  # low runs T5 on the CPU (upstream's own flag)
    res = run(
        REPO,
        REPO / "pipeline.py",
        "--video_path",
        media["dance"],
        "--refer_path",
        media["ref"],
        "--replace",
        "--refine",
        "--mask_mode",
        "official",
        "--output_path",
        tmp_path / "out.mp4",
        *common,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    commands = generate_commands(res.stdout, part=0)
    assert len(commands) == 2
    for own in commands:
        assert_launcher_got_them(own)
    res = run(
        REPO,
        REPO / "run_refine.py",
        "--input",
        media["dance"],
        "--refer_path",
        media["ref"],
        "--mask_mode",
        "official",
        "--save_file",
        tmp_path / "refined.mp4",
        *common,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    [own] = generate_commands(res.stdout, part=0)
    assert_launcher_got_them(own)
    script = f"""
from pathlib import Path
from replace_actor_video.pipeline.registry import STAGES
from replace_actor_video.ui.commands import Workspace, pipeline_form, resolve, stage_form, to_args
from replace_actor_video.ui.settings import ServerSettings
form = stage_form(next(e for e in STAGES if e.name == "generate"))
chosen = {{"color_match": "hm", "color_match_strength": "0.5", "color_match_anchor": "first", "memory_profile": "low"}}
assert all(form.field(n) is not None and pipeline_form().field(n) is not None for n in chosen)
work = Path({str(tmp_path)!r})
resolved = resolve(form, chosen, job_dir=work / "job", workspace=Workspace(work, work, work),
                   settings=ServerSettings({{}}))
assert resolved.ok, resolved.problems
print(" ".join(to_args(form, resolved.values)))
"""
    res = run(REPO, "-c", script, cwd=REPO)
    assert res.returncode == 0, res.stderr
    assert_launcher_got_them(res.stdout.split())  # the command a UI job runs carries them
