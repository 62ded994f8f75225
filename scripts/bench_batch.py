#!/usr/bin/env python3
"""Batch throughput on 1 GPU vs N GPUs, side by side in one call: the same batch of jobs through
`run_batch.py` on a local Ray instance given 1 GPU, then N GPUs (`--num_gpus`), each with its own runs
folder (so nothing is skipped); and the dataset builder (`run_dataset.py`) the same way. Measured: wall clock
of each command (Ray's start included) and the span from the first job's start to the last job's end (from
batch_summary.json); throughput in jobs per hour and the N-GPU / 1-GPU ratio of both. Nothing is asserted.

    python3 scripts/bench_batch.py --out OUT --ckpt_dir CKPT --wan22_dir WAN22 [--jobs 4] [--gpus 2]
        [--parts batch,dataset] [--job_args "--sample_steps 2 ..."]

On the lent GPU machine (no network, 64 MiB per call) Ray travels in two calls: scripts/ray_carry.sh; the
synthetic checkpoint and the Wan2.2 code come from the e2e carry (scripts/gpu_carry.md).

--standins runs the same flow on a CPU against the contract stand-ins (tests/standins), with Ray's logical
GPUs and a stand-in generate.py that sleeps --standin_sleep seconds (the time a GPU would be busy): it proves
the plumbing, its figures say nothing about GPUs. The report (OUT/bench_batch.json and .md) is rewritten after
each part and appended to across calls, so a device call cut short keeps what it measured.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def sh(argv: list[str], *, log: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[int, float]:
    """Run a command with its output in `log`; returns (exit code, wall seconds)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log, "w") as fh:
        fh.write(f"$ {shlex.join(argv)}\n")
        fh.flush()
        code = subprocess.run(argv, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=cwd).returncode
    return code, time.monotonic() - started


def make_inputs(work: Path, count: int) -> tuple[list[Path], Path]:
    """`count` distinct 2 s 24 fps 480x272 clips with audio (distinct so no job can reuse another's files) and
    a reference image, as scripts/e2e_gpu.sh makes them."""
    work.mkdir(parents=True, exist_ok=True)
    clips = []
    for i in range(count):
        clip = work / "videos" / f"clip{i}.mp4"
        if not clip.is_file():
            clip.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [
                    "ffmpeg",
                    "-v",
                    "error",
                    "-y",
                    "-f",
                    "lavfi",
                    "-i",
                    "testsrc2=size=480x272:rate=24",
                    "-f",
                    "lavfi",
                    "-i",
                    f"sine=frequency={300 + 20 * i}",
                    "-t",
                    "2",
                    "-vf",
                    f"hue=h={40 * i}",
                    "-c:v",
                    "libx264",
                    "-pix_fmt",
                    "yuv420p",
                    "-c:a",
                    "aac",
                    str(clip),
                ],
                check=True,
            )
        clips.append(clip)
    ref = work / "ref.png"
    if not ref.is_file():
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=272x480", "-frames:v", "1", str(ref)],
            check=True,
        )
    return clips, ref


def standin_clone(work: Path, sleep: float) -> tuple[Path, Path]:
    """A Wan2.2 folder made of the contract stand-ins (generate.py sleeping `sleep` s first, as a GPU would be
    busy) and a checkpoint folder with the real layout of empty files, as tests/conftest.py makes them."""
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import CKPT_FILES, STANDINS

    clone, ckpt = work / "Wan2.2", work / "ckpt"
    shutil.rmtree(clone, ignore_errors=True)
    shutil.copytree(STANDINS / "fake_wan" / "wan", clone / "wan")
    pre = clone / "wan" / "modules" / "animate" / "preprocess"
    pre.mkdir(parents=True)
    shutil.copy(STANDINS / "wan_preprocess_data.py", pre / "preprocess_data.py")
    shutil.copy(STANDINS / "wan_generate.py", clone / "generate_standin.py")
    (clone / "generate.py").write_text(
        f"import runpy, time\nfrom pathlib import Path\ntime.sleep({sleep})\n"
        "runpy.run_path(str(Path(__file__).resolve().parent / 'generate_standin.py'), run_name='__main__')\n"
    )
    for name in CKPT_FILES:
        (ckpt / name).parent.mkdir(parents=True, exist_ok=True)
        (ckpt / name).write_bytes(b"stand-in")
    return clone, ckpt


def job_span(summary: Path) -> float | None:
    """First job start to last job end, from batch_summary.json (seconds resolution)."""
    try:
        jobs = json.loads(summary.read_text())["jobs"]
    except (OSError, ValueError, KeyError):
        return None
    starts = [dt.datetime.fromisoformat(j["started"]) for j in jobs if j.get("started")]
    ends = [dt.datetime.fromisoformat(j["finished"]) for j in jobs if j.get("finished")]
    return (max(ends) - min(starts)).total_seconds() if starts and ends else None


def bench_batch(args: argparse.Namespace, clips: list[Path], ref: Path, gpus: int, env: dict[str, str]) -> dict:
    work = args.work / f"batch-{gpus}gpu"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    jobs = work / "jobs.csv"
    lines = ["video_path,refer_path,output_path"]
    lines += [f"{clip},{ref},{work / 'out' / f'job{i}.mp4'}" for i, clip in enumerate(clips[: args.jobs])]
    jobs.write_text("\n".join(lines) + "\n")
    config = work / "defaults.toml"
    config.write_text(f'wan22_dir = "{args.wan22_dir}"\nckpt_dir = "{args.ckpt_dir}"\n' + args.job_config)
    argv = [
        sys.executable,
        str(REPO / "run_batch.py"),
        str(jobs),
        "--config",
        str(config),
        "--num_gpus",
        str(gpus),
        "--runs_dir",
        str(work / "runs"),
        *args.engine_args,
    ]
    code, wall = sh(argv, log=args.out / f"batch-{gpus}gpu.log", env=env)
    summary = work / "runs" / "batch-jobs" / "batch_summary.json"
    if summary.is_file():
        shutil.copy(summary, args.out / f"batch-{gpus}gpu_summary.json")
    span = job_span(summary)
    return {
        "part": "batch",
        "gpus": gpus,
        "jobs": args.jobs,
        "exit_code": code,
        "wall_s": round(wall, 1),
        "span_s": span,
        "jobs_per_hour_wall": round(args.jobs / wall * 3600, 1),
        "jobs_per_hour_span": round(args.jobs / span * 3600, 1) if span else None,
    }


def bench_dataset(args: argparse.Namespace, clips: list[Path], gpus: int, env: dict[str, str]) -> dict:
    work = args.work / f"dataset-{gpus}gpu"
    shutil.rmtree(work, ignore_errors=True)
    argv = [
        sys.executable,
        str(REPO / "run_dataset.py"),
        "--input",
        str(clips[0].parent),
        "--output",
        str(work / "dataset"),
        "--wan22_dir",
        str(args.wan22_dir),
        "--ckpt_dir",
        str(args.ckpt_dir),
        "--runs_dir",
        str(work / "runs"),
        "--resolution",
        "480x272",
        "--clip_frames",
        "17",
        "--num_gpus",
        str(gpus),
        *args.engine_args,
    ]
    code, wall = sh(argv, log=args.out / f"dataset-{gpus}gpu.log", env=env)
    return {
        "part": "dataset",
        "gpus": gpus,
        "jobs": len(clips),
        "exit_code": code,
        "wall_s": round(wall, 1),
        "span_s": None,
        "jobs_per_hour_wall": round(len(clips) / wall * 3600, 1),
        "jobs_per_hour_span": None,
    }


def ratios(rows: list[dict]) -> list[dict]:
    """N-GPU over 1-GPU throughput of the same part measured in the same call (DERIVED from the rows)."""
    out = []
    for part in ("batch", "dataset"):
        one = next((r for r in rows if r["part"] == part and r["gpus"] == 1), None)
        for row in (r for r in rows if r["part"] == part and r["gpus"] > 1):
            if one and one["exit_code"] == 0 and row["exit_code"] == 0:
                span = (
                    row["jobs_per_hour_span"] / one["jobs_per_hour_span"]
                    if row["jobs_per_hour_span"] and one["jobs_per_hour_span"]
                    else None
                )
                out.append(
                    {
                        "part": part,
                        "gpus": row["gpus"],
                        "ratio_wall": round(row["jobs_per_hour_wall"] / one["jobs_per_hour_wall"], 2),
                        "ratio_span": round(span, 2) if span else None,
                    }
                )
    return out


def write_report(out: Path, report: dict) -> None:
    (out / "bench_batch.json").write_text(json.dumps(report, indent=2))
    lines = [
        f"# bench_batch ({report['machine']})",
        "",
        "| call | part | GPUs | jobs | exit | wall s | span s | jobs/h (wall) | jobs/h (span) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for call in report["calls"]:
        for r in call["rows"]:
            lines.append(
                f"| {call['started']} | {r['part']} | {r['gpus']} | {r['jobs']} | {r['exit_code']} | "
                f"{r['wall_s']} | {r['span_s']} | {r['jobs_per_hour_wall']} | {r['jobs_per_hour_span']} |"
            )
    lines += ["", "Ratios (DERIVED: N-GPU throughput / 1-GPU throughput, same call):", ""]
    for call in report["calls"]:
        for r in call["ratios"]:
            span = f", {r['ratio_span']}x by job span" if r["ratio_span"] else ""
            lines.append(f"- {call['started']} {r['part']} {r['gpus']} GPUs: {r['ratio_wall']}x by wall clock{span}")
    (out / "bench_batch.md").write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="report folder (bench_batch.json/.md, logs)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_batch"), help="scratch folder")
    parser.add_argument("--ckpt_dir", type=Path, help="checkpoint (e.g. the synthetic one, --profile tiny)")
    parser.add_argument("--wan22_dir", type=Path, help="Wan2.2 clone")
    parser.add_argument("--jobs", type=int, default=4, help="jobs in the batch (and videos for the dataset)")
    parser.add_argument("--gpus", type=int, default=2, help="the N of 1 vs N GPUs")
    parser.add_argument("--parts", default="batch,dataset", help="batch, dataset or both")
    parser.add_argument(
        "--job_args",
        default='resolution = "480x272"\nfps = 16\nsample_steps = 2\nseed = 1\n',
        help="TOML lines added to every job's --config (default: a small 2-step job)",
    )
    parser.add_argument("--standins", action="store_true", help="CPU plumbing run against the contract stand-ins")
    parser.add_argument(
        "--standin_sleep",
        type=float,
        default=6.0,
        help="--standins: seconds each generation sleeps, as a GPU would be busy",
    )
    args = parser.parse_args()
    args.out = args.out.resolve()
    args.work = args.work.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    args.job_config = args.job_args if args.job_args.endswith("\n") else args.job_args + "\n"
    env = dict(os.environ)
    args.engine_args = []
    if args.standins:
        args.wan22_dir, args.ckpt_dir = standin_clone(args.work, args.standin_sleep)
        env["RAV_REPO"] = str(REPO)
        # Logical GPUs on a CPU machine; one CPU per job is reserved, so give Ray enough of them.
        args.engine_args = ["--num_cpus", str(max(2, args.gpus))]
    elif not (args.ckpt_dir and args.wan22_dir):
        parser.error("--ckpt_dir and --wan22_dir are needed (or --standins)")
    clips, ref = make_inputs(args.work / "inputs", args.jobs)
    report_path = args.out / "bench_batch.json"
    report = (
        json.loads(report_path.read_text())
        if report_path.is_file()
        else {"machine": f"{platform.node()} {platform.machine()}", "calls": []}
    )
    call = {
        "started": dt.datetime.now().isoformat(timespec="seconds"),
        "standins": args.standins,
        "gpu_names": _gpu_names(),
        "job_config": args.job_config,
        "rows": [],
        "ratios": [],
    }
    report["calls"].append(call)
    for part in args.parts.split(","):
        for gpus in (1, args.gpus):
            row = bench_batch(args, clips, ref, gpus, env) if part == "batch" else bench_dataset(args, clips, gpus, env)
            call["rows"].append(row)
            call["ratios"] = ratios(call["rows"])
            write_report(args.out, report)
            print(json.dumps(row), flush=True)
    for r in call["ratios"]:
        span = f", {r['ratio_span']}x (job span)" if r["ratio_span"] else ""
        print(f"[bench] {r['part']}: {r['gpus']} GPUs / 1 GPU = {r['ratio_wall']}x (wall){span}")
    print(f"[bench] report: {args.out / 'bench_batch.md'}")
    return 0 if all(r["exit_code"] == 0 for r in call["rows"]) else 1


def _gpu_names() -> list[str]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    out = subprocess.run([exe, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


if __name__ == "__main__":
    sys.exit(main())
