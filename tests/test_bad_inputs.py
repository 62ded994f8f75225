"""Bad input: exit 2, one line naming the problem and the fix, and nothing written."""

from __future__ import annotations

import pytest
from conftest import locations, run_cli


def files_under(path):
    return sorted(p for p in path.rglob("*")) if path.exists() else []


CASES = {
    "missing video": (["--video_path", "{tmp}/nope.mp4"], "nope.mp4: file not found"),
    "corrupt video": (["--video_path", "{corrupt}"], "corrupt.mp4: not a readable media file"),
    "image as video": (["--video_path", "{ref}"], "ref.png"),
    "missing image": (["--refer_path", "{tmp}/nope.png"], "nope.png: file not found"),
    "bad image": (["--refer_path", "{not_an_image}"], "not_an_image.png: not a readable image"),
    "bad resolution": (["--resolution", "1280by720"], "--resolution"),
    "tiny resolution": (["--resolution", "8x720"], "at least 16"),
    "flux without retarget": (["--use_flux", "--no-retarget"], "--use_flux"),
    "flux in replace": (["--use_flux", "--replace"], "--use_flux"),
    "bad fps": (["--fps", "0"], "--fps 0"),
    "output holds input": (["--save_path", "{media_dir}"], "holds the input"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_preprocess_rejects(case, media, fake_wan22, fake_ckpt, tmp_path):
    override, message = CASES[case]
    values = {"tmp": tmp_path, "media_dir": media["dance"].parent, **media}
    args = {"--video_path": str(media["dance"]), "--refer_path": str(media["ref"]), "--save_path": str(tmp_path / "pp")}
    extra = []
    it = iter(override)
    for flag in it:
        if flag in args or flag in ("--resolution", "--fps"):
            args[flag] = next(it).format(**values)
        else:
            extra.append(flag)
    before = files_under(media["dance"].parent)
    res = run_cli(
        "run_preprocessing.py",
        *[x for kv in args.items() for x in kv],
        *extra,
        *locations(fake_wan22, fake_ckpt, tmp_path),
        cwd=tmp_path,
    )
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], res.stderr
    assert not (tmp_path / "pp").exists() and not (tmp_path / "runs").exists()
    assert files_under(media["dance"].parent) == before


def test_missing_checkpoint_file_is_named(media, fake_wan22, fake_ckpt, tmp_path):
    (fake_ckpt / "process_checkpoint" / "sam2" / "sam2_hiera_large.pt").unlink()
    args = [
        "--video_path",
        media["dance"],
        "--refer_path",
        media["ref"],
        "--save_path",
        tmp_path / "pp",
        *locations(fake_wan22, fake_ckpt, tmp_path),
    ]
    assert run_cli("run_preprocessing.py", *args, cwd=tmp_path).returncode == 0  # animate mode does not need SAM2
    res = run_cli(
        "run_preprocessing.py",
        *args[:4],
        "--save_path",
        tmp_path / "pp2",
        *args[6:],
        "--replace",
        "--mask_mode",
        "official",
        cwd=tmp_path,
    )
    assert res.returncode == 2 and "sam2/sam2_hiera_large.pt" in res.stderr


def test_existing_results_are_not_overwritten(media, fake_wan22, fake_ckpt, tmp_path):
    args = [
        "--video_path",
        media["dance"],
        "--refer_path",
        media["ref"],
        "--save_path",
        tmp_path / "pp",
        *locations(fake_wan22, fake_ckpt, tmp_path),
    ]
    assert run_cli("run_preprocessing.py", *args, cwd=tmp_path).returncode == 0
    stamp = (tmp_path / "pp" / "src_pose.mp4").stat().st_mtime_ns
    res = run_cli("run_preprocessing.py", *args, cwd=tmp_path)
    assert res.returncode == 2 and "--overwrite" in res.stderr
    assert (tmp_path / "pp" / "src_pose.mp4").stat().st_mtime_ns == stamp
    failed = run_cli("run_preprocessing.py", *args, "--overwrite", cwd=tmp_path, env={"STANDIN_PREPROCESS_FAIL": "1"})
    assert failed.returncode == 1 and "stand-in failure requested" in failed.stderr
    assert (tmp_path / "pp" / "src_pose.mp4").stat().st_mtime_ns == stamp, "a failed rerun keeps the old results"
    assert not list(tmp_path.glob(".pp.partial-*"))


GENERATE_CASES = {
    "frame_num not 4n+1": (["--frame_num", "76"], "4n+1"),
    "refert_num 77": (["--refert_num", "77"], "invalid choice"),
    "animate folder in replace mode": (["--replace"], "--replace"),
    "relighting without replace": (["--use_relighting_lora"], "replace mode"),
    "not a folder": (["--src_root_path", "{tmp}/nothing"], "nothing: not a directory"),
    "ulysses 3 does not divide 40 heads": (["--multi_gpu", "--nproc_per_node", "3"], "40 attention heads"),
    "existing output": (["--save_file", "{existing}"], "the file exists"),
}


@pytest.mark.parametrize("case", sorted(GENERATE_CASES))
def test_generate_rejects(case, media, fake_wan22, fake_ckpt, tmp_path):
    loc = ["--wan22_dir", fake_wan22, "--ckpt_dir", fake_ckpt, "--runs_dir", tmp_path / "runs"]
    assert (
        run_cli(
            "run_preprocessing.py",
            "--video_path",
            media["dance"],
            "--refer_path",
            media["ref"],
            "--save_path",
            tmp_path / "pp",
            "--resolution",
            "640x368",
            *loc,
            cwd=tmp_path,
        ).returncode
        == 0
    )
    existing = tmp_path / "done.mp4"
    existing.write_bytes(b"finished video")
    override, message = GENERATE_CASES[case]
    override = [a.format(tmp=tmp_path, existing=existing) for a in override]
    args = {"--src_root_path": str(tmp_path / "pp"), "--save_file": str(tmp_path / "out.mp4")}
    extra = []
    it = iter(override)
    for flag in it:
        if flag in args:
            args[flag] = next(it)
        else:
            extra.append(flag)
    res = run_cli("run_generation.py", *[x for kv in args.items() for x in kv], *extra, *loc, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert message in res.stderr.strip().splitlines()[-1], res.stderr
    assert not (tmp_path / "out.mp4").exists()
    assert existing.read_bytes() == b"finished video"
