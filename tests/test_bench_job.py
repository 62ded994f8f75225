"""scripts/bench_job.py's plumbing on the CPU (--plumbing): the real pipeline.py, launcher, warm worker and
bench_official.py against the contract stand-ins of Wan2.2 (a fake `wan`), with the tiny synthetic checkpoint's
light parts. What it checks is the flow (checkpoint once, rows, parsing, the report after every row, the budget,
appending across calls), not GPU figures: those come from the GPU run (docs/PERFORMANCE.md)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import REPO, STANDINS

sys.path.insert(0, str(REPO / "scripts"))
import bench_job  # noqa: E402

pytest.importorskip("torch", reason="the checkpoint writer needs torch")
pytest.importorskip("onnx", reason="the checkpoint writer builds the ONNX graphs here")


def test_job_parts_measured_and_derived():
    text = "\n".join(
        [
            "[rav-timing] import 9.5 s (launcher setup and import wan)",
            "[rav-timing] load.t5 1.2 s (models_t5_umt5-xxl-enc-bf16.pth, 11.36 GB)",
            "[rav-timing] load.total 20.0 s",
            "[rav-timing] t5.to_device 2.0 s",
            "[rav-timing] t5.encode 0.05 s",
            "[rav-timing] t5.encode 0.04 s",
            "[rav-timing] vae.encode 3.9 s",
            "[rav-timing] vae.decode 6.2 s",
            "[rav-timing] dit.forward 80.0 s (#1)",
            "[rav-timing] dit.forward 9.7 s (#2)",
            "\r 50%|#####     | 2/4 [00:10<00:10]\r[rav-timing] dit.forward 9.8 s (#3)",
            "[rav-timing] dit.forward 9.6 s (#4)",
            "[rav-worker] models already loaded",
        ]
    )
    parts = bench_job.job_parts(text, 150.0, None, None)
    assert parts["timing"]["load.t5"] == 1.2 and parts["t5_s"] == pytest.approx(2.09)
    assert parts["dit_forwards"] == [80.0, 9.7, 9.8, 9.6] and parts["dit_median_s"] == 9.7
    assert parts["derived_first_forward_extra_s"] == pytest.approx(70.3)  # the compilation of a compiled row
    assert parts["derived_overhead_beyond_dit_s"] == pytest.approx(150.0 - 4 * 9.7, abs=0.05)
    assert parts["warm_skip"]


@pytest.fixture(scope="module")
def wan22_standin(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bench") / "Wan2.2"
    shutil.copytree(STANDINS / "fake_wan" / "wan", root / "wan")
    pre = root / "wan" / "modules" / "animate" / "preprocess"
    pre.mkdir(parents=True)
    shutil.copy(STANDINS / "wan_preprocess_data.py", pre / "preprocess_data.py")
    shutil.copy(STANDINS / "wan_generate.py", root / "generate.py")
    return root


def bench(tmp: Path, wan22: Path, *args: str) -> subprocess.CompletedProcess:
    argv = [
        sys.executable,
        str(REPO / "scripts" / "bench_job.py"),
        "--plumbing",
        "--out",
        str(tmp / "out"),
        "--work",
        str(tmp / "work"),
        "--ckpt",
        str(tmp / "ckpt"),
        "--ckpt_profile",
        "tiny",
        "--wan22_dir",
        str(wan22),
    ]
    return subprocess.run(
        [*argv, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "RAV_REPO": str(REPO)},
        check=False,
    )


def test_plumbing_two_calls_append_to_one_report(wan22_standin):
    tmp = Path(tempfile.mkdtemp(prefix="bj"))  # short: the warm worker's socket lives under --work
    try:
        first = bench(tmp, wan22_standin, "--rows", "default-4,official-4,fast-warm,default-2gpu-4")
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        assert "writing the tiny synthetic checkpoint" in first.stdout
        report = json.loads((tmp / "out" / "bench_job.json").read_text())
        rows = report["rows"]
        default = rows["default-4"]["runs"][0]["jobs"][0]
        assert default["exit_code"] == 0 and default["stages_s"]["preprocess"] > 0  # the first row preprocessed
        assert len(default["dit_forwards"]) == 4 and "load.total" in default["timing"]
        assert default["psnr_vs_official_db"] is not None  # compared once the official row existed
        official = rows["official-4"]["runs"][0]["jobs"][0]
        assert official["exit_code"] == 0 and "load.total" in official["timing"] and "retime_mux_s" not in official
        first_job, warm = rows["fast-warm"]["runs"][0]["jobs"]
        assert not first_job["warm_skip"] and "load.total" in first_job["timing"] and "import" in first_job["timing"]
        assert warm["warm_skip"] and not any(k.startswith("load.") for k in warm["timing"])
        assert warm["via"].startswith("warm worker pid") and len(warm["dit_forwards"]) == 4
        assert rows["default-2gpu-4"]["skipped"].startswith("needs 2 GPUs")
        md = (tmp / "out" / "bench_job.md").read_text()
        assert "| fast-warm | 2 | 1 |" in md and "warm: models already loaded" in md
        assert (tmp / "out" / "logs" / "fast-warm-r1-j2.log").is_file()

        second = bench(tmp, wan22_standin, "--rows", "default-4,lossless-20", "--budget_s", "3")
        assert second.returncode == 0, second.stderr[-3000:]
        assert "checkpoint" in second.stdout and "complete, reused" in second.stdout
        report = json.loads((tmp / "out" / "bench_job.json").read_text())
        assert len(report["calls"]) == 2 and "fast-warm" in report["rows"]  # the first call's rows stay
        assert report["calls"][1]["skipped"]["lossless-20"].startswith("time budget")
    finally:
        subprocess.run(
            [sys.executable, "-m", "replace_actor_video.upstream.wan.worker_client", "stop", "--all"],
            cwd=REPO,
            env={**os.environ, "RAV_WORKER_DIR": str(tmp / "work" / "workers")},
            capture_output=True,
            check=False,
        )
        shutil.rmtree(tmp, ignore_errors=True)


def test_unknown_rows_and_missing_gpu_are_refused(tmp_path):
    res = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_job.py"), "--out", str(tmp_path), "--rows", "default-4,warp-9"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode != 0 and "unknown row(s) warp-9" in res.stderr
    if shutil.which("nvidia-smi") is None:
        res = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "bench_job.py"), "--out", str(tmp_path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert res.returncode != 0 and "needs a CUDA GPU" in res.stderr


def test_timing_lines_behind_a_tqdm_bar_are_read():
    """On the H200 (2026-12-01) every DiT forward's timing line came right after tqdm's bar on the same line; the
    first parser, anchored at the line start, saw none of them."""
    text = (
        " 25%|██▌       | 1/4 [00:11<00:35, 11.74s/it][rav-timing] dit.forward 11.740 s (#6)\n"
        "[rav-timing] vae.decode 6.256 s\n"
    )
    parts = bench_job.parse_timing(text)
    assert parts == {"dit.forward": [11.74], "vae.decode": [6.256]}
