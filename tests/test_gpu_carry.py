"""scripts/build_gpu_carry.sh: its wheel list matches scripts/gpu_carry.md, and the parts it can build offline
(the Wan2.2 export, the size check) behave; the PyPI parts are exercised by running the script for real."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys

import pytest
from conftest import REPO

from replace_actor_video.upstream.wan.pin import COMMIT as PIN

SCRIPT = REPO / "scripts" / "build_gpu_carry.sh"


def bash_array(name: str) -> list[str]:
    body = re.search(rf"^{name}=\((.*?)\)$", SCRIPT.read_text(), re.MULTILINE | re.DOTALL)[1]
    return [w for line in body.splitlines() for w in line.split("#")[0].split()]


def bash_scalar(name: str) -> str:
    return re.search(rf"^{name}=(\S+)$", SCRIPT.read_text(), re.MULTILINE)[1]


def test_wheel_table_names_exactly_the_wheels_the_script_builds():
    built = {w.split("==")[0].lower(): w.split("==")[1] for w in bash_array("WHEELS") + bash_array("SDISTS")}
    doc = (REPO / "scripts" / "gpu_carry.md").read_text().split("## Wheels", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| ([\w.-]+) \| (\S+)[^|]*\|", doc, re.MULTILINE)
    table = {name.lower(): version for name, version in rows if name != "wheel"}
    assert table == built


def onnx_stamp() -> str:
    """build_onnx's stamp: the code that draws the graphs, hashed as `cat ... | sha256sum` reads it."""
    sources = [
        REPO / "scripts" / "make_synthetic_checkpoint.py",
        *sorted((REPO / "scripts" / "synthetic").glob("*.py")),
    ]
    return hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:16]


def fake_carry(tmp_path, wan22_commit: str, *, onnx_done: bool = True):
    """A carry folder whose wheel and ffmpeg parts (and ONNX graphs) are complete, their stamps matching the
    script's lists, and a Wan2.2 export to copy."""
    out = tmp_path / "carry"
    (out / "whl").mkdir(parents=True)
    (out / "whl" / "x-1-py3-none-any.whl").write_bytes(b"w" * 1000)
    (out / "whl" / ".stamp").write_text(" ".join(bash_array("WHEELS")) + " | " + " ".join(bash_array("SDISTS")) + "\n")
    (out / "ffbins.tar.xz").write_bytes(b"f" * 1000)
    (out / ".ffbins.stamp").write_text(bash_scalar("FFMPEG_WHEEL") + " " + " ".join(bash_array("XZ_ARGS")) + "\n")
    if onnx_done:
        (out / "onnx").mkdir()
        (out / "onnx" / ".stamp").write_text(onnx_stamp() + "\n")
    src = tmp_path / "Wan2.2"
    for rel in (
        "wan/modules/animate/preprocess/preprocess_data.py",
        "generate.py",
        "requirements.txt",
        "requirements_animate.txt",
        "requirements_s2v.txt",
        "examples/big.mp4",
    ):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(rel)
    (src / ".rav-commit").write_text(wan22_commit + "\n")
    return out, src


def run_script(out, src, *args, python: str = "false"):
    return subprocess.run(
        ["bash", str(SCRIPT), "--out", str(out), *args],
        check=False,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "WAN22_DIR": str(src), "PYTHON": python},
    )


def test_writes_the_onnx_graphs_exports_the_pinned_wan22_code_and_reports_one_call(tmp_path):
    pytest.importorskip("onnx", reason="the ONNX graphs are drawn with the onnx package (requirements-dev.txt)")
    out, src = fake_carry(tmp_path, PIN, onnx_done=False)
    res = run_script(out, src, python=sys.executable)
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in (out / "onnx").glob("*.onnx")) == ["vitpose_h_wholebody.onnx", "yolov10m.onnx"]
    assert (out / "onnx" / ".stamp").read_text().strip() == onnx_stamp()
    wan = out / "Wan2.2"
    assert (wan / ".rav-commit").read_text().strip() == PIN
    assert (wan / "wan/modules/animate/preprocess/preprocess_data.py").is_file() and (wan / "generate.py").is_file()
    assert not (wan / "examples").exists(), "only the code travels"
    assert f'fits one call: carry ["{out}"]' in res.stdout and "of 64 MiB per call" in res.stdout
    again = run_script(out, src)  # PYTHON=false: any rebuild would fail
    assert again.returncode == 0 and "Wan2.2: up to date" in again.stdout and "onnx: up to date" in again.stdout


def test_refuses_a_wan22_export_of_another_commit(tmp_path):
    out, src = fake_carry(tmp_path, "0" * 40)
    res = run_script(out, src)
    assert res.returncode == 2 and f"not the pin {PIN}" in res.stderr
    assert not (out / "Wan2.2").exists()


def test_a_failed_wheel_build_leaves_no_wheel_folder(tmp_path):
    out, src = fake_carry(tmp_path, PIN)
    (out / "whl" / ".stamp").write_text("an older list\n")
    res = run_script(out, src)  # PYTHON=false: pip download fails
    assert res.returncode != 0
    assert (out / "whl" / ".stamp").read_text() == "an older list\n", "the previous whole folder stays as it was"


@pytest.mark.parametrize("extra", [1, 40])
def test_over_the_limit_it_splits_in_two_calls_or_fails(tmp_path, extra):
    out, src = fake_carry(tmp_path, PIN)
    big = tmp_path / "big"
    big.mkdir()
    (big / "blob").write_bytes(b"\0" * (extra * 1024 * 1024))
    (out / "ffbins.tar.xz").write_bytes(b"\0" * (40 * 1024 * 1024))
    res = run_script(out, src, "--also", str(big))
    if extra == 1:
        assert res.returncode == 0 and "fits one call" in res.stdout
    else:
        assert res.returncode == 0, res.stderr
        assert f'call 1: carry ["{out}/whl", "{out}/onnx", "{out}/Wan2.2", "{big}"]' in res.stdout
        assert f'call 2: carry ["{out}/ffbins.tar.xz"]' in res.stdout
