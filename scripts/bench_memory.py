#!/usr/bin/env python3
"""Memory-profile benchmark for the GPU machine: the official Wan2.2-Animate-14B DiT (random weights, real size)
per --memory_profile (full, balanced, low) under GPU memory caps of 24, 32 and 48 GiB and uncapped, at 1280×720×77
and 832×480×77: peak GPU memory and seconds per DiT forward, side by side in one run.

    python3 scripts/bench_memory.py --wan22_dir Wan2.2 --out OUT_DIR [--profiles full,balanced,low]
        [--caps none,48,32,24] [--sizes 720p,480p] [--budget_s 450]

The cap is torch.cuda.set_per_process_memory_fraction(cap GiB / the GPU's memory): this process's allocator may
hold at most that much (the CUDA context, ~0.5 GiB on a real card, is outside it). Rows, in this order:
  full      upstream's placement: the whole DiT on the GPU (random weights drawn there); under a cap below its
            weights a forward cannot allocate: the row says "out of memory" (found in a second, no time spent)
  low       memory.DiTStreamer with no block kept: 2.1 GiB of non-block parts + two 0.75 GiB slots on the GPU,
            the 40 blocks streamed from pinned CPU memory, the next one copied on a side stream
  balanced  the same with resident="fit": its first forward (streamed, untimed) measures the peak, then as many
            blocks as the cap leaves room for stay on the GPU; the second forward is timed
Timing: CUDA events around one forward, under torch.autocast(bf16) + no_grad as upstream runs it, on the launcher's
cuDNN attention route with its float32 rope and face-motion cache (the motion encoder runs in the first forward
only: every row after the first has it cached, as every step of a clip after the first). The first forward at each
size is an untimed warm-up (cuDNN plans). Ratios are to the uncapped full row at the same size, measured in this run.
Writes OUT/bench_memory.json and OUT/bench_memory.md after every row (a run cut short keeps what it measured).

--tiny --device cpu runs the same code end to end at small dims on the CPU (no caps, no peaks): a dry check.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import platform
import sys
import time
import types
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
RUNTIME = REPO / "replace_actor_video" / "upstream" / "wan" / "runtime"  # the launcher and what it loads
GIB = 2**30
SIZES = {"720p": (1280, 720), "480p": (832, 480), "tiny": (64, 64)}
TARGETS = {"24": 1.6, "32": 1.3, "48": 1.1}  # issue 15: time per forward at the cap ≤ this × the uncapped full row
TINY_DIMS = {"dim": 64, "ffn_dim": 96, "num_heads": 4, "num_layers": 10, "text_dim": 4096, "freq_dim": 32}
EXPECTED_S = {"720p": 13.0, "480p": 3.5, "tiny": 1.0}  # s per forward on an H200 (cuDNN route), for the budget


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--wan22_dir", default=os.environ.get("WAN22_DIR", str(REPO / "Wan2.2")))
    p.add_argument("--out", required=True, help="folder for bench_memory.json and bench_memory.md")
    p.add_argument("--profiles", default="full,low,balanced")
    p.add_argument("--caps", default="none,48,32,24", help="GiB caps; none = uncapped")
    p.add_argument("--sizes", default="720p,480p")
    p.add_argument("--frames", type=int, default=77)
    p.add_argument("--budget_s", type=float, default=450.0, help="skip rows that would end past this many seconds")
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="small dims (a CPU check of the script)")
    return p.parse_args(argv)


def load_by_path(stem: str):
    spec = importlib.util.spec_from_file_location(f"rav_{stem}", RUNTIME / f"{stem}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def import_wan(wan22_dir: Path):
    for name, sub in (
        ("wan", "wan"),
        ("wan.modules", "wan/modules"),
        ("wan.modules.animate", "wan/modules/animate"),
        ("wan.distributed", "wan/distributed"),
    ):
        module = types.ModuleType(name)
        module.__path__ = [str(wan22_dir / sub)]
        sys.modules[name] = module
    import wan.modules.animate.model_animate as model_animate  # diffusers probes for torchvision: before the stub

    if importlib.util.find_spec("torchvision") is None:  # clip.py imports it; CLIP is not used here (CPU check)
        for name in ("torchvision", "torchvision.transforms"):
            sys.modules[name] = types.ModuleType(name)
    return model_animate


def build_dit(model_animate, device, tiny: bool):
    """The official WanAnimateModel (14B dims, or tiny), bf16, random normal(0, 0.02) weights, as bench_generation
    (float32 on the CPU, where there is no bf16 autocast to run it under)."""
    torch.set_default_dtype(torch.bfloat16 if device.type == "cuda" else torch.float32)
    try:
        with torch.device("meta"):
            model = model_animate.WanAnimateModel(**(TINY_DIMS if tiny else {}))
    finally:
        torch.set_default_dtype(torch.float32)
    model = model.to_empty(device=device)
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.is_floating_point():
                tensor.normal_(0, 0.02)
    model.eval().requires_grad_(False)
    d = model.dim // model.num_heads
    rope = model_animate.rope_params
    model.freqs = torch.cat([rope(1024, d - 4 * (d // 6)), rope(1024, 2 * (d // 6)), rope(1024, 2 * (d // 6))], dim=1)
    return model


def dit_inputs(width, height, frames, device, text_dim):
    lat_t, lh, lw = frames // 4 + 1, height // 8, width // 8
    g = torch.Generator(device=device).manual_seed(0)

    def rand(*shape, dtype=torch.float32):
        return torch.randn(*shape, device=device, generator=g, dtype=dtype)

    half = torch.bfloat16 if device.type == "cuda" else torch.float32  # as generate() has them on the GPU
    return dict(
        x=[rand(16, lat_t + 1, lh, lw)],
        t=torch.tensor([500.0], device=device),
        clip_fea=rand(1, 257, 1280, dtype=half),
        context=[rand(60, text_dim, dtype=half)],
        seq_len=(lat_t + 1) * (lh // 2) * (lw // 2),
        y=[rand(20, lat_t + 1, lh, lw, dtype=half)],
        pose_latents=rand(1, 16, lat_t, lh, lw),
        face_pixel_values=rand(1, 3, frames, 512, 512, dtype=half),
    )


class Bench:
    def __init__(self, args):
        self.args = args
        self.device = torch.device(args.device)
        if self.device.type == "cuda" and self.device.index is None:  # set_per_process_memory_fraction needs an index
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.cuda = self.device.type == "cuda"
        self.started = time.perf_counter()
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.rows: list[dict] = []
        self.total = torch.cuda.get_device_properties(self.device).total_memory if self.cuda else 0
        self.report = {
            "env": {
                "gpu": torch.cuda.get_device_name(self.device) if self.cuda else "cpu",
                "gpu_gib": round(self.total / GIB, 1),
                "torch": torch.__version__,
                "python": platform.python_version(),
                "tiny": args.tiny,
            },
            "frames": 5 if args.tiny else args.frames,
            "rows": self.rows,
            "blocks": None,
        }
        self.warm: set[str] = set()

    def log(self, message: str) -> None:
        print(f"[bench_memory {time.perf_counter() - self.started:5.0f}s] {message}", flush=True)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def cap(self, cap: str) -> None:
        if not self.cuda:
            return
        gc.collect()
        torch.cuda.empty_cache()
        fraction = 1.0 if cap == "none" else min(float(cap) * GIB / self.total, 1.0)
        torch.cuda.set_per_process_memory_fraction(fraction, self.device)

    def forward(self, model, inputs):
        ctx = (
            torch.autocast(self.device.type, dtype=torch.bfloat16)
            if self.cuda
            else torch.autocast("cpu", enabled=False)
        )
        with torch.no_grad(), ctx:
            return model(**inputs)[0]

    def timed(self, model, inputs) -> float:
        if not self.cuda:
            started = time.perf_counter()
            self.forward(model, inputs)
            return time.perf_counter() - started
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        out = self.forward(model, inputs)
        end.record()
        torch.cuda.synchronize()
        if not torch.isfinite(out).all():
            raise RuntimeError("non-finite DiT output")
        return start.elapsed_time(end) / 1000

    def row(self, profile: str, cap: str, size: str, run) -> None:
        """Run one row (run() → extra fields) under `cap`, recording seconds per forward and peak memory."""
        expected = EXPECTED_S[size] * (2 if profile == "balanced" or size not in self.warm else 1) + 5
        record = {"profile": profile, "cap_gib": cap, "size": size}
        if self.elapsed() + expected > self.args.budget_s:
            record["skipped"] = f"time budget ({self.elapsed():.0f} s used, ~{expected:.0f} s needed)"
            self.log(f"{profile} @ {cap} GiB, {size}: skipped (time budget)")
            return self.save(record)
        self.cap(cap)
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        try:
            record.update(run())
        except torch.cuda.OutOfMemoryError as exc:
            record["oom"] = str(exc).split("\n")[0][:200]
        except RuntimeError as exc:
            if "out of memory" not in str(exc).lower():
                raise
            record["oom"] = str(exc).split("\n")[0][:200]
        if self.cuda and "oom" not in record:
            record["peak_gib"] = round(torch.cuda.max_memory_allocated(self.device) / GIB, 2)
        self.log(
            f"{profile} @ {cap} GiB, {size}: "
            + (
                f"out of memory ({record['oom'][:80]})"
                if "oom" in record
                else f"{record['s_per_forward']:.2f} s/forward, peak {record.get('peak_gib', 'n/a')} GiB"
                + (f", {record['resident_blocks']} blocks kept" if "resident_blocks" in record else "")
            )
        )
        self.save(record)

    def save(self, record: dict) -> None:
        self.rows.append(record)
        base = {
            (r["size"]): r["s_per_forward"]
            for r in self.rows
            if r["profile"] == "full" and r["cap_gib"] == "none" and "s_per_forward" in r
        }
        for r in self.rows:
            if "s_per_forward" in r and r["size"] in base:
                r["vs_uncapped_full"] = round(r["s_per_forward"] / base[r["size"]], 3)
        self.report["total_s"] = round(self.elapsed(), 1)
        (self.out / "bench_memory.json").write_text(json.dumps(self.report, indent=1) + "\n")
        (self.out / "bench_memory.md").write_text(markdown(self.report))


def markdown(report: dict) -> str:
    env = report["env"]
    lines = [
        f"# Memory profiles: Wan2.2-Animate-14B DiT per forward, {env['gpu']} ({env['gpu_gib']} GiB)",
        "",
        f"torch {env['torch']}, Python {env['python']}; {report['frames']} frames; caps by "
        "torch.cuda.set_per_process_memory_fraction; cuDNN attention route; random bf16 weights"
        + (" (TINY dims: a script check, not a measurement)" if env["tiny"] else "")
        + ".",
        "",
        "| profile | cap GiB | size | s / forward | × uncapped full | target | peak GiB | blocks kept | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        target = f"≤ {TARGETS[r['cap_gib']]}×" if r["cap_gib"] in TARGETS else ""
        if "s_per_forward" in r:
            lines.append(
                f"| {r['profile']} | {r['cap_gib']} | {r['size']} | {r['s_per_forward']:.2f} | "
                f"{r.get('vs_uncapped_full', '')} | {target} | {r.get('peak_gib', 'n/a')} | "
                f"{r.get('resident_blocks', report['blocks'] if r['profile'] == 'full' else '')} | "
                f"{r.get('note', '')} |"
            )
        else:
            what = f"out of memory: {r['oom'][:60]}" if "oom" in r else r.get("skipped", "")
            lines.append(f"| {r['profile']} | {r['cap_gib']} | {r['size']} | | | {target} | | | {what} |")
    lines += [
        "",
        f"Total {report.get('total_s', '')} s. Ratios are measured in this run against the uncapped full "
        "row of the same size.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    profiles = [p for p in args.profiles.split(",") if p]
    caps = [c for c in args.caps.split(",") if c]
    sizes = ["tiny"] if args.tiny else [s for s in args.sizes.split(",") if s]
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_memory.py needs a CUDA GPU (or --tiny --device cpu for a dry check)")
    bench = Bench(args)
    rows = len(profiles) * len(caps) * len(sizes)
    budget = sum(EXPECTED_S[s] * (2 if p == "balanced" else 1) for p in profiles for _ in caps for s in sizes)
    bench.log(
        f"{rows} rows ({','.join(profiles)} × caps {','.join(caps)} × {','.join(sizes)}); expected "
        f"~{budget + 60:.0f} s on an H200 (forwards ~{budget:.0f} s, building ~60 s); rows past --budget_s "
        f"{args.budget_s:.0f} are skipped; the report is rewritten after every row"
    )
    wan22_dir = Path(args.wan22_dir).resolve()
    missing = load_by_path("patch_sites").missing_sites(str(wan22_dir))
    if missing:  # what the launcher refuses: the streamer would not follow this upstream's DiT loop
        sys.exit(f"{wan22_dir} lacks the patch site {missing[0].describe()}; bench the pinned Wan2.2 (pin.py)")
    model_animate = import_wan(wan22_dir)
    launcher = load_by_path("launcher")
    memory = load_by_path("memory")
    route = "cudnn"
    launcher.install_attention(route)
    started = time.perf_counter()
    model = build_dit(model_animate, bench.device, args.tiny)
    bench.report["build_s"] = round(time.perf_counter() - started, 1)
    bench.report["blocks"] = len(model.blocks)
    bench.log(f"DiT built ({sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters)")
    text_dim = model.text_dim
    inputs = {s: dit_inputs(*SIZES[s], args.frames if not args.tiny else 5, bench.device, text_dim) for s in sizes}

    def warm_then_time(size):
        if size not in bench.warm:
            bench.forward(model, inputs[size])
            bench.warm.add(size)
        return {"s_per_forward": round(bench.timed(model, inputs[size]), 3)}

    with launcher.attention_context(route):
        if "full" in profiles:
            for cap in caps:
                for size in sizes:
                    bench.row("full", cap, size, lambda size=size: warm_then_time(size))
        streamed = [p for p in profiles if p != "full"]
        if streamed:
            bench.cap("none")
            started = time.perf_counter()
            streamer = memory.DiTStreamer(model, bench.device, resident=0, log=bench.log)
            gc.collect()
            if bench.cuda:
                torch.cuda.empty_cache()
            bench.report["pack_to_pinned_s"] = round(time.perf_counter() - started, 1)
            for profile in streamed:
                for cap in caps:
                    for size in sizes:

                        def run(profile=profile, cap=cap, size=size):
                            budget = None if cap == "none" else int(float(cap) * GIB)
                            if profile == "balanced":
                                streamer.configure(
                                    "fit", budget if budget is not None else (bench.total if bench.cuda else 64 * GIB)
                                )
                                bench.forward(model, inputs[size])  # streamed: measures its own peak, then fits
                                if bench.cuda:
                                    torch.cuda.reset_peak_memory_stats(bench.device)
                            else:
                                streamer.configure(0)
                            result = warm_then_time(size)
                            result["resident_blocks"] = len(streamer.resident)
                            return result

                        bench.row(profile, cap, size, run)
    (bench.out / "bench_memory.md").write_text(markdown(bench.report))
    print("BENCH_JSON " + json.dumps(bench.report), flush=True)
    print(markdown(bench.report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
