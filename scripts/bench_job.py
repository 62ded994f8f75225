#!/usr/bin/env python3
"""Whole-job benchmark: `pipeline.py` wall clock per stage on a 1280×720 replace job (77 frames at 16 fps = one
generation clip, with audio and the relighting LoRA) with a FULL-SIZE synthetic checkpoint (14B DiT, real-size T5,
CLIP, VAE; scripts/make_synthetic_checkpoint.py --profile full), for the official path and ours, cold and warm.

    python3 scripts/bench_job.py --out OUT --work /tmp/bench_job --rows default-4,fast-cold [--budget_s 520]

Rows (--rows, comma list, run in that order; --list prints them):
  official-N         upstream generate.py as users run it (scripts/bench_official.py: unmodified, flash_attn EMULATED
                     with PyTorch's FA2 kernel, T5 offload as upstream defaults), on our preprocessing folder
  default-N          pipeline.py with our defaults (attention auto, fast loading), a fresh process (--worker off)
  nofastload-N       the same with RAV_FASTLOAD=0: upstream's model loading (what fast loading saves)
  lossless-N         the fastest lossless settings: default + --compile
  fast-cold          --preset fast --lora <synthetic LightX2V-layout distill LoRA> (4 steps), a fresh process
  fast-warm          the same + --compile on a warm worker (--worker start): job 1 starts it, job 2 is warm
  fast-warm-lossy    fast-warm + --attention fast --vae_bf16 (LOSSY kernels)
  default-Kgpu-N     default-N with --multi_gpu --nproc_per_node K, K = 2, 4 or 8 (skipped with fewer than K GPUs)
  postprocess        run_postprocess.py --backend ffmpeg to 30 fps on the last pipeline output (CPU minterpolate)
N is 4 or 20 (sampling steps). The first pipeline row runs the preprocessing (official preprocess_data.py + our
contour mask) in the shared run directory; later rows find it up to date, so their pipeline wall clock is the
generation stage's.

Per row and job: wall clock, and per part from the launcher's [rav-timing] lines
(replace_actor_video/upstream/wan/runtime/timing.py) and the run manifest: import, model loading per file (T5, CLIP,
VAE, DiT shards, relighting LoRA +
our LoRA merges), T5, DiT forwards, VAE, save_video, retime/mux; DERIVED (labelled): compile = first forward minus
the median forward, overhead beyond the DiT steps = wall minus steps × the median forward; PSNR of the decoded
output against the official row of the same steps (H.264 both, same seed). --repeat R runs each row R times
(min / median). The report (OUT/bench_job.{json,md}) is rewritten after every row and APPENDED to across calls
(rows of a later call join those of an earlier one), so a device call cut short keeps what it measured; a row that
would end after --budget_s is skipped and listed with the reason.

The checkpoint is written once (--ckpt, default /tmp/bench_ckpt; ~55 GB; complete when its SAM2 file exists, which
is written last) and reused by later calls on the same warm machine. Put the launcher's FA3 on our rows only with
--fa3_site (never on the official rows: upstream would pick FA3 for its DiT).
--plumbing runs the same flow on the CPU against contract stand-ins (tests/test_bench_job.py): small clip, no GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Searched anywhere in a line: tqdm redraws its bar without a newline, so a timing line may follow "| 1/4 [..]".
TIMING = re.compile(r"\[rav-timing\] (\S+) ([0-9.]+) s(?: \((.*)\))?\s*$")
LOAD_PARTS = ("load.t5", "load.clip", "load.vae", "load.dit", "load.configure")
SEED = 7
FULL_CKPT_GB = 55  # DiT 34.5 + T5 11.4 + CLIP 2.4 + relighting LoRA 1.4 + distill LoRA 0.7 + SAM2 0.9 + VAE 0.5


@dataclass(frozen=True)
class Row:
    name: str
    kind: str  # official | pipeline | postprocess
    steps: int = 4
    options: tuple[str, ...] = ()
    env: dict = field(default_factory=dict)
    jobs: int = 1  # warm rows: job 1 starts the worker, job 2 runs warm
    gpus: int = 1
    expect_s: float = 150.0  # H200 estimate (launch and loading included) for the time budget
    note: str = ""


def rows_table() -> dict[str, Row]:
    fast = ("--preset", "fast", "--lora", "{distill_lora}")
    rows = []
    for steps, dit in ((4, 4 * 19), (20, 20 * 19)):
        rows.append(
            Row(
                f"official-{steps}",
                "official",
                steps,
                expect_s=130 + dit,
                note="upstream generate.py as users run it; flash_attn EMULATED (PyTorch's FA2 kernel)",
            )
        )
    for steps, dit in ((4, 4 * 12.9), (20, 20 * 12.9)):
        rows += [
            Row(
                f"default-{steps}",
                "pipeline",
                steps,
                ("--worker", "off"),
                expect_s=70 + dit,
                note="pipeline.py defaults (attention auto, fast loading), fresh process",
            ),
            Row(
                f"nofastload-{steps}",
                "pipeline",
                steps,
                ("--worker", "off"),
                env={"RAV_FASTLOAD": "0"},
                expect_s=130 + dit,
                note="default with RAV_FASTLOAD=0: upstream's model loading",
            ),
            Row(
                f"lossless-{steps}",
                "pipeline",
                steps,
                ("--worker", "off", "--compile"),
                expect_s=150 + dit,
                note="fastest lossless: default + --compile",
            ),
        ]
        rows += [
            Row(
                f"default-{n}gpu-{steps}",
                "pipeline",
                steps,
                ("--worker", "off", "--multi_gpu", "--nproc_per_node", str(n)),
                gpus=n,
                expect_s=120 + dit / (0.95 * n),
                note=f"default on {n} GPUs (FSDP + Ulysses)",
            )
            for n in (2, 4, 8)
        ]
    rows += [
        Row(
            "fast-cold",
            "pipeline",
            4,
            (*fast, "--worker", "off"),
            expect_s=130,
            note="--preset fast + distill LoRA, fresh process",
        ),
        Row(
            "fast-warm",
            "pipeline",
            4,
            (*fast, "--compile", "--worker", "start"),
            jobs=2,
            expect_s=300,
            note="--preset fast + distill LoRA + --compile on a warm worker: job 1 starts it, job 2 is warm",
        ),
        Row(
            "fast-warm-lossy",
            "pipeline",
            4,
            (*fast, "--compile", "--attention", "fast", "--vae_bf16", "--worker", "start"),
            jobs=2,
            expect_s=300,
            note="fast-warm + --attention fast --vae_bf16 (LOSSY)",
        ),
        Row("postprocess", "postprocess", 0, expect_s=120, note="run_postprocess.py --backend ffmpeg 16 → 30 fps"),
    ]
    return {r.name: r for r in rows}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, help="report folder (bench_job.json/.md, logs/)")
    p.add_argument("--work", type=Path, default=Path("/tmp/bench_job"), help="inputs, run directory, outputs")
    p.add_argument("--ckpt", type=Path, default=Path("/tmp/bench_ckpt"), help="synthetic checkpoint folder")
    p.add_argument("--ckpt_profile", choices=("full", "tiny"), default="full")
    p.add_argument(
        "--onnx_from",
        type=Path,
        default=REPO / ".e2e" / "onnx",
        help="the carried ONNX graphs (the GPU image has no onnx package)",
    )
    p.add_argument("--wan22_dir", type=Path, default=Path(os.environ.get("WAN22_DIR", REPO / "Wan2.2")))
    p.add_argument("--rows", default="default-4,fast-cold", help="comma list of rows (see --list)")
    p.add_argument("--repeat", type=int, default=1, help="runs per row (the report shows min and median)")
    p.add_argument(
        "--budget_s",
        type=float,
        default=520.0,
        help="skip a row that would end after this many seconds of this call (device calls: 600 s)",
    )
    p.add_argument("--fa3_site", type=Path, help="FlashAttention-3 site folder to put on PYTHONPATH for OUR rows")
    p.add_argument(
        "--evict",
        action="store_true",
        help="drop the checkpoint from the page cache before each row (no effect on tmpfs)",
    )
    p.add_argument(
        "--plumbing",
        action="store_true",
        help="CPU plumbing run against contract stand-ins: small clip, no GPU, any checkpoint layout",
    )
    p.add_argument("--list", action="store_true", help="print the rows and exit")
    p.add_argument(
        "--reparse",
        action="store_true",
        help="only re-read the timing of every job in --out from its saved log and rewrite the report",
    )
    args = p.parse_args(argv)
    if not args.list and args.out is None:
        p.error("--out is required")
    return args


# ---- helpers -----------------------------------------------------------------------------------------------------

CALL_STARTED = time.perf_counter()


def log(msg: str) -> None:
    print(f"[bench_job {time.perf_counter() - CALL_STARTED:5.0f}s] {msg}", flush=True)


def run(argv, *, log_path: Path, env=None, timeout=None, cwd=None) -> tuple[int, float]:
    """Run argv (a list, never a shell) with its output to log_path; (exit code, wall seconds)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(log_path, "w") as out:
        out.write("$ " + " ".join(map(str, argv)) + "\n")
        out.flush()
        try:
            code = subprocess.run(
                [str(a) for a in argv],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                timeout=timeout,
                check=False,
            ).returncode
        except subprocess.TimeoutExpired:
            code = 124
    return code, round(time.perf_counter() - started, 2)


def gpu_info() -> dict:
    try:
        lines = (
            subprocess.run(
                ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                check=False,
            )
            .stdout.strip()
            .splitlines()
        )
    except OSError:
        lines = []
    return {"gpus": len(lines), "names": lines}


def median(values):
    return statistics.median(values) if values else None


# ---- the checkpoint and the inputs -------------------------------------------------------------------------------


def checkpoint(args, report, save) -> None:
    marker = args.ckpt / "process_checkpoint" / "sam2" / "sam2_hiera_large.pt"  # written last
    if marker.is_file():
        log(f"checkpoint {args.ckpt}: complete, reused")
        report.setdefault("checkpoint", {"path": str(args.ckpt), "written": "by an earlier call"})
        return
    args.ckpt.parent.mkdir(parents=True, exist_ok=True)
    free_gb = shutil.disk_usage(args.ckpt.parent).free / 1e9
    need = FULL_CKPT_GB if args.ckpt_profile == "full" else 16
    if free_gb < need * 1.05:
        sys.exit(
            f"bench_job.py: {args.ckpt.parent} has {free_gb:.0f} GB free, the {args.ckpt_profile} checkpoint "
            f"needs ~{need} GB; pass --ckpt on a larger disk (or /dev/shm if it has room)"
        )
    argv = [
        sys.executable,
        REPO / "scripts" / "make_synthetic_checkpoint.py",
        "--out",
        args.ckpt,
        "--profile",
        args.ckpt_profile,
        "--distill_lora",
        "--pose2d_layout",
        "folder",
    ]
    argv += ["--device", "cpu", "--skip_heavy"] if args.plumbing else ["--device", "cuda"]
    if args.onnx_from and args.onnx_from.is_dir():
        argv += ["--onnx_from", args.onnx_from]
    log(f"writing the {args.ckpt_profile} synthetic checkpoint to {args.ckpt} ({free_gb:.0f} GB free there)")
    code, seconds = run(argv, log_path=args.out / "logs" / "checkpoint.log")
    text = (args.out / "logs" / "checkpoint.log").read_text()
    if code != 0:
        sys.exit(f"bench_job.py: writing the checkpoint failed; see {args.out / 'logs' / 'checkpoint.log'}")
    if args.plumbing:  # the contract stand-ins never read the heavy encoders: placeholders, SAM2's last
        for name in (
            "models_t5_umt5-xxl-enc-bf16.pth",
            "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth",
            "Wan2.1_VAE.pth",
            "process_checkpoint/sam2/sam2_hiera_large.pt",
        ):
            (args.ckpt / name).parent.mkdir(parents=True, exist_ok=True)
            (args.ckpt / name).write_bytes(b"stand-in")
    parts = re.findall(r"^\[synthetic\] (.+?): ([0-9.]+) GB in ([0-9.]+) s", text, re.M)
    report["checkpoint"] = {
        "path": str(args.ckpt),
        "profile": args.ckpt_profile,
        "seconds": seconds,
        "parts": {name: {"gb": float(gb), "s": float(s)} for name, gb, s in parts},
    }
    save()
    log(f"checkpoint written in {seconds:.0f} s: " + ", ".join(f"{n} {gb} GB {s} s" for n, gb, s in parts))


def inputs(args) -> dict:
    """A 77-frame 16 fps clip with a tone (one generation clip) and a reference image."""
    folder = args.work / "inputs"
    folder.mkdir(parents=True, exist_ok=True)
    size = "320x240" if args.plumbing else "1280x720"
    clip, ref = folder / f"clip_{size}.mp4", folder / f"ref_{size}.png"
    if not clip.is_file():
        subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                f"testsrc2=size={size}:rate=16",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=330",
                "-frames:v",
                "77",
                "-t",
                str(77 / 16),
                "-c:v",
                "libx264",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                str(clip) + ".tmp.mp4",
            ],
            check=True,
        )
        os.replace(str(clip) + ".tmp.mp4", clip)
    if not ref.is_file():
        subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                f"testsrc=size={size}",
                "-frames:v",
                "1",
                str(ref) + ".tmp.png",
            ],
            check=True,
        )
        os.replace(str(ref) + ".tmp.png", ref)
    return {"clip": clip, "ref": ref, "resolution": size}


def evict(ckpt: Path) -> None:
    """Drop the checkpoint files from the page cache (clean pages only; tmpfs keeps them)."""
    for path in ckpt.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


# ---- parsing a job ---------------------------------------------------------------------------------------------


def parse_timing(text: str) -> dict:
    parts: dict[str, list[float]] = {}
    for line in text.replace("\r", "\n").splitlines():
        m = TIMING.search(line.strip())
        if m:
            parts.setdefault(m.group(1), []).append(float(m.group(2)))
    return parts


def job_parts(text: str, wall: float, manifest: dict | None, started_iso: str | None) -> dict:
    """One job's measured parts, and the derived ones (labelled)."""
    timing = parse_timing(text)
    total = {k: round(sum(v), 3) for k, v in timing.items()}
    forwards = timing.get("dit.forward", [])
    steady = median(forwards[1:]) if len(forwards) > 1 else (forwards[0] if forwards else None)
    out = {"wall_s": wall, "timing": total, "dit_forwards": forwards}
    out["t5_s"] = round(sum(total.get(k, 0.0) for k in ("t5.to_device", "t5.encode", "t5.offload")), 3)
    if forwards:
        out["dit_steps_s"] = round(sum(forwards), 3)
        out["dit_median_s"] = round(steady, 3)
        out["derived_first_forward_extra_s"] = round(forwards[0] - steady, 3)  # the compilation, if compiled
        out["derived_overhead_beyond_dit_s"] = round(wall - steady * len(forwards), 1)
    out["warm_skip"] = "models already loaded" in text
    if manifest:
        stages = manifest.get("stages", {})
        for name, stage in stages.items():
            if started_iso and stage.get("started", "")[:19] >= started_iso:
                out.setdefault("stages_s", {})[name] = stage.get("seconds")
                for command in stage.get("commands", []):
                    if command["label"].startswith("retime"):
                        out["retime_mux_s"] = command["seconds"]
                    if "via" in command:
                        out["via"] = command["via"]
    return out


def psnr(a: Path, b: Path) -> float | None:
    """Average PSNR of two videos frame by frame (index, not timestamp: 30 fps upstream vs 16 fps ours)."""
    if not (a.is_file() and b.is_file()):
        return None
    res = subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-i",
            str(a),
            "-i",
            str(b),
            "-lavfi",
            "[0:v]setpts=N/TB[x];[1:v]setpts=N/TB[y];[x][y]psnr",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    m = re.search(r"average:([0-9.]+|inf)", res.stderr)
    return None if not m else (float("inf") if m.group(1) == "inf" else float(m.group(1)))


# ---- rows -------------------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args):
        self.args = args
        self.started = time.perf_counter()
        self.out = args.out
        self.run_dir = args.work / "runs" / "shared"
        self.preprocess_dir = self.run_dir / "preprocess"
        self.report_path = self.out / "bench_job.json"
        self.report = json.loads(self.report_path.read_text()) if self.report_path.is_file() else {"rows": {}}
        self.call = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "rows": [], "skipped": {}}
        self.report.setdefault("calls", []).append(self.call)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        tmp = self.report_path.with_suffix(".json.partial")
        tmp.write_text(json.dumps(self.report, indent=1) + "\n")
        os.replace(tmp, self.report_path)
        (self.out / "bench_job.md").write_text(markdown(self.report))

    def env(self, row: Row) -> dict:
        env = dict(os.environ)
        env["RAV_WORKER_DIR"] = str(self.args.work / "workers")
        env["PYTHONUNBUFFERED"] = "1"
        env.update(row.env)
        if self.args.fa3_site and row.kind != "official":
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.args.fa3_site), env.get("PYTHONPATH")]))
        return env

    def common(self, row: Row, media: dict) -> list:
        return [
            "--video_path",
            media["clip"],
            "--refer_path",
            media["ref"],
            "--replace",
            "--use_relighting_lora",
            "--resolution",
            media["resolution"],
            "--fps",
            "16",
            "--seed",
            str(SEED),
            "--wan22_dir",
            self.args.wan22_dir,
            "--ckpt_dir",
            self.args.ckpt,
            "--runs_dir",
            self.args.work / "runs",
            "--run_dir",
            self.run_dir,
            "--overwrite",
            # plumbing: the contour mask runs the real SAM2, which needs real SAM2 weights: the stand-in's mask
            *(["--mask_mode", "official"] if self.args.plumbing else []),
        ]

    def argv(self, row: Row, media: dict, output: Path) -> list:
        options = [
            o.replace("{distill_lora}", str(self.args.ckpt / "synthetic_lightx2v_4step_lora.safetensors"))
            for o in row.options
        ]
        if row.kind == "official":
            return [
                sys.executable,
                REPO / "scripts" / "bench_official.py",
                "--wan22_dir",
                self.args.wan22_dir,
                "--",
                "--task",
                "animate-14B",
                "--ckpt_dir",
                self.args.ckpt,
                "--src_root_path",
                self.preprocess_dir,
                "--refert_num",
                "1",
                "--save_file",
                output,
                "--sample_steps",
                str(row.steps),
                "--base_seed",
                str(SEED),
                "--replace_flag",
                "--use_relighting_lora",
            ]
        if row.kind == "postprocess":
            last = self.report.get("last_output")
            return [
                sys.executable,
                REPO / "run_postprocess.py",
                "--input",
                last,
                "--output",
                output,
                "--target_fps",
                "30",
                "--backend",
                "ffmpeg",
                "--runs_dir",
                self.args.work / "runs",
                "--overwrite",
            ]
        steps = [] if "--preset" in options else ["--sample_steps", str(row.steps)]
        return [
            sys.executable,
            REPO / "pipeline.py",
            *self.common(row, media),
            *steps,
            *options,
            "--output_path",
            output,
        ]

    def skip(self, row: Row, why: str) -> None:
        log(f"{row.name}: skipped ({why})")
        self.call["skipped"][row.name] = why
        self.report["rows"].setdefault(row.name, {"row": row.__dict__, "runs": []})
        self.report["rows"][row.name]["skipped"] = why
        self.save()

    def run_row(self, row: Row, media: dict) -> None:
        gpus = gpu_info()["gpus"] if not self.args.plumbing else 0
        if row.gpus > 1 and gpus < row.gpus:
            return self.skip(row, f"needs {row.gpus} GPUs, {gpus} visible")
        if row.kind == "official" and not self.preprocess_dir.is_dir():
            return self.skip(row, "no preprocessing yet: run a pipeline row (e.g. default-4) first")
        if row.kind == "postprocess" and not self.report.get("last_output"):
            return self.skip(row, "no pipeline output yet")
        for repeat in range(self.args.repeat):
            remaining = self.args.budget_s - self.elapsed()
            expect = 5 if self.args.plumbing else row.expect_s
            if expect > remaining:
                return self.skip(row, f"time budget: ~{expect:.0f} s needed, {remaining:.0f} s left of --budget_s")
            if self.args.evict and row.jobs == 1:
                evict(self.args.ckpt)
            record = {"repeat": repeat + 1, "jobs": [], "evicted": self.args.evict, "call": self.call["started"]}
            for job in range(1, row.jobs + 1):
                tag = f"{row.name}-r{repeat + 1}-j{job}"
                output = self.args.work / "out" / f"{tag}.mp4"
                output.parent.mkdir(parents=True, exist_ok=True)  # pipeline.py refuses an output in a missing folder
                output.unlink(missing_ok=True)
                started_iso = time.strftime("%Y-%m-%dT%H:%M:%S")
                code, wall = run(
                    self.argv(row, media, output),
                    log_path=self.out / "logs" / f"{tag}.log",
                    env=self.env(row),
                    timeout=max(self.args.budget_s - self.elapsed(), 1),
                    cwd=self.args.work,
                )
                text = (self.out / "logs" / f"{tag}.log").read_text(errors="replace")
                manifest_path = self.run_dir / "manifest.json"
                manifest = (
                    json.loads(manifest_path.read_text())
                    if manifest_path.is_file() and row.kind == "pipeline"
                    else None
                )
                parts = job_parts(text, wall, manifest, started_iso[:19] if manifest else None)
                parts.update(job=job, exit_code=code, output=str(output), log=f"logs/{tag}.log")
                if code == 124:
                    parts["error"] = "cut at the time budget"
                elif code != 0:
                    parts["error"] = next(
                        (line for line in reversed(text.splitlines()) if "rror" in line), f"exit {code}"
                    )[:300]
                record["jobs"].append(parts)
                log(
                    f"{tag}: exit {code} after {wall:.1f} s"
                    + (f", DiT {parts.get('dit_steps_s')} s" if "dit_steps_s" in parts else "")
                    + (", warm (models already loaded)" if parts["warm_skip"] else "")
                )
                if code == 0 and row.kind == "pipeline":
                    self.report["last_output"] = str(output)
                if code != 0:
                    break
            self.report["rows"].setdefault(row.name, {"row": row.__dict__, "runs": []})
            self.report["rows"][row.name].pop("skipped", None)
            self.report["rows"][row.name]["runs"].append(record)
            self.call["rows"].append(row.name)
            self.compare()
            self.save()
            if row.jobs > 1:
                self.stop_workers()

    def compare(self) -> None:
        """PSNR of each of our outputs against the official output of the same steps (decoded frames)."""
        for entry in self.report["rows"].values():
            row = entry.get("row", {})
            official = self.report["rows"].get(f"official-{row.get('steps')}", {}).get("runs", [])
            if not official or row.get("kind") != "pipeline" or official[-1]["jobs"][0].get("exit_code") != 0:
                continue
            reference = Path(official[-1]["jobs"][0]["output"])
            for run_ in entry["runs"]:
                for job in run_["jobs"]:
                    if job.get("exit_code") == 0 and job.get("psnr_vs_official_db") is None:
                        job["psnr_vs_official_db"] = psnr(Path(job["output"]), reference)

    def stop_workers(self) -> None:
        env = {**os.environ, "RAV_WORKER_DIR": str(self.args.work / "workers")}
        subprocess.run(
            [sys.executable, "-m", "replace_actor_video.upstream.wan.worker_client", "stop", "--all"],
            cwd=REPO,
            env=env,
            capture_output=True,
            check=False,
        )


# ---- report -----------------------------------------------------------------------------------------------------


def _mm(values, digits=1) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{min(values):.{digits}f} / {median(values):.{digits}f}"


def markdown(report: dict) -> str:
    env = report.get("env", {})
    lines = [
        "# Whole-job benchmark (scripts/bench_job.py)",
        "",
        f"Machine: {env.get('gpu', '?')}; Python {env.get('python', '?')}; checkpoint: "
        f"{report.get('checkpoint', {}).get('path', '?')} ({report.get('checkpoint', {}).get('profile', '?')})"
        f"; page cache: {'evicted before each cold row' if env.get('evict') else 'as left by earlier reads'}.",
        "",
    ]
    ck = report.get("checkpoint", {})
    if ck.get("parts"):
        lines += [
            "Checkpoint written in "
            + f"{ck['seconds']:.0f} s: "
            + ", ".join(f"{n} {p['gb']:.1f} GB in {p['s']:.0f} s" for n, p in ck["parts"].items())
            + ".",
            "",
        ]
    lines += [
        "Seconds, min / median over the runs when repeated. `load` = WanAnimate.__init__ (every model); T5 = "
        "to the GPU + two encodes + upstream's offload; VAE = its encodes and the decode. DERIVED columns "
        "(differences of measured figures): first-forward extra (the compilation of compiled rows), overhead "
        "beyond the DiT steps = wall − steps × median forward.",
        "",
        "| row | job | runs | wall | import | load | T5 / CLIP / VAE / DiT / LoRA+configure load | T5 | "
        "DiT forwards (n × median) | VAE | save | retime+mux | first-forward extra (derived) | overhead beyond "
        "DiT (derived) | preprocess | PSNR vs official (dB) | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in report.get("rows", {}).items():
        row = entry.get("row", {})
        if entry.get("skipped") and not entry.get("runs"):
            lines.append(f"| {name} | | 0 | skipped: {entry['skipped']} |" + " |" * 12 + f" {row.get('note', '')} |")
            continue
        jobs = max((len(r["jobs"]) for r in entry["runs"]), default=0)
        for j in range(jobs):
            got = [r["jobs"][j] for r in entry["runs"] if len(r["jobs"]) > j]
            ok = [g for g in got if g.get("exit_code") == 0]
            if not ok:
                lines.append(
                    f"| {name} | {j + 1} | {len(got)} | failed: {got[-1].get('error', '')} |"
                    + " |" * 12
                    + f" {row.get('note', '')} |"
                )
                continue
            t = [g["timing"] for g in ok]
            loads = " / ".join(_mm([x.get(k) for x in t]) or "–" for k in LOAD_PARTS)
            n = len(ok[0].get("dit_forwards", []))
            dit = f"{n} × {_mm([g.get('dit_median_s') for g in ok], 2)}" if n else ""
            vae = _mm([x.get("vae.encode", 0) + x.get("vae.decode", 0) for x in t if "vae.decode" in x])
            pre = _mm([g.get("stages_s", {}).get("preprocess") for g in ok])
            note = row.get("note", "") + (" · warm: models already loaded" if ok[0].get("warm_skip") else "")
            wall = _mm([g["wall_s"] for g in ok])
            lines.append(
                f"| {name} | {j + 1} | {len(ok)} | {wall} | {_mm([x.get('import') for x in t])}"
                f" | {_mm([x.get('load.total') for x in t])} | {loads} | {_mm([g.get('t5_s') for g in ok])} | {dit} | "
                f"{vae} | {_mm([x.get('save_video') for x in t])} | {_mm([g.get('retime_mux_s') for g in ok])} | "
                f"{_mm([g.get('derived_first_forward_extra_s') for g in ok])} | "
                f"{_mm([g.get('derived_overhead_beyond_dit_s') for g in ok])} | {pre} | "
                f"{_mm([g.get('psnr_vs_official_db') for g in ok])} | {note} |"
            )
    skipped = {n: w for c in report.get("calls", []) for n, w in c.get("skipped", {}).items()}
    if skipped:
        lines += ["", "Skipped in a call: " + "; ".join(f"{n} ({w})" for n, w in skipped.items()) + "."]
    lines += ["", "Raw per-job logs: logs/<row>-r<repeat>-j<job>.log; every timing line: bench_job.json."]
    return "\n".join(lines) + "\n"


def reparse(out: Path) -> int:
    """Re-read every job's timing from its saved log: a report written before the parser read timing lines behind
    tqdm's bar lacks the DiT forwards. A log that belongs to another run of the job (a later call rewrote it: its
    other timings differ from the recorded ones) is left as recorded. Returns how many jobs were updated."""
    report_path = out / "bench_job.json"
    report = json.loads(report_path.read_text())
    updated = 0
    for entry in report["rows"].values():
        for run_ in entry["runs"]:
            for job in run_["jobs"]:
                log_path = out / job.get("log", "")
                if not job.get("timing") or not log_path.is_file():
                    continue
                text = log_path.read_text(errors="replace")
                fresh = job_parts(text, job["wall_s"], None, None)
                if {k: v for k, v in fresh["timing"].items() if k != "dit.forward"} != {
                    k: v for k, v in job["timing"].items() if k != "dit.forward"
                }:
                    continue
                job.update({k: v for k, v in fresh.items() if k == "timing" or k.startswith(("dit_", "derived_"))})
                updated += 1
    tmp = report_path.with_suffix(".json.partial")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    os.replace(tmp, report_path)
    (out / "bench_job.md").write_text(markdown(report))
    return updated


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.reparse:
        log(f"re-read the timing of {reparse(args.out)} job(s) from their logs")
        return 0
    table = rows_table()
    if args.list:
        for row in table.values():
            print(f"{row.name:18} {row.note}")
        return 0
    wanted = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in wanted if r not in table]
    if unknown:
        sys.exit(f"bench_job.py: unknown row(s) {', '.join(unknown)}; --list shows them")
    if not args.plumbing and not gpu_info()["gpus"]:
        sys.exit("bench_job.py needs a CUDA GPU (or --plumbing for the CPU plumbing run)")
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    bench = Bench(args)
    bench.report["env"] = {
        "gpu": "; ".join(gpu_info()["names"]) or "none (plumbing)",
        "python": platform.python_version(),
        "evict": args.evict,
        "plumbing": args.plumbing,
    }
    bench.save()
    checkpoint(args, bench.report, bench.save)
    media = inputs(args)
    for name in wanted:
        bench.run_row(table[name], media)
    bench.stop_workers()
    bench.save()
    log(f"report: {bench.report_path} and {bench.out / 'bench_job.md'}")
    print((bench.out / "bench_job.md").read_text(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
