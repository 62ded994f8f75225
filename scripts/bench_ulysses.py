#!/usr/bin/env python3
"""Ulysses sequence parallelism of the official Wan2.2-Animate DiT: one GPU against N GPUs, side by side in one
torchrun job, on the same random 14B weights and inputs (1280×720×77 by default), through the launcher's
attention route (`--attention`, default auto: FA3 when it imports, else cuDNN SDPA; also inside upstream's
ulysses all-to-all attention), its float32 rope and its face-motion cache, as `--multi_gpu` runs them.

    torchrun --standalone --nproc_per_node 2 scripts/bench_ulysses.py --wan22_dir Wan2.2 --out OUT

Rank 0 first times the plain forward alone (the other ranks wait), then every rank runs the forward with
upstream's `sp_attn_forward` on each block and `use_context_parallel`, as `WanAnimate(use_sp=True)` sets it up.
Prints seconds per forward, the speed-up, and max |difference| / PSNR of the parallel output against the single-GPU
one. Weights are replicated on each GPU (no FSDP): the speed-up of the DiT forward is what Ulysses gives.
--profile adds rank 0's kernel time by kind (attention, GEMM, collectives) for the parallel forward."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import types
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_generation as bench  # noqa: E402  (model building, inputs, timing and comparison are shared)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wan22_dir", default=os.environ.get("WAN22_DIR", "Wan2.2"))
    parser.add_argument("--out", required=True)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--frames", type=int, default=77)
    parser.add_argument("--peak_tflops", type=float, default=790.0)
    parser.add_argument("--attention", default="auto", help="the launcher's --attention route")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    dist.init_process_group("nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    torch.cuda.set_device(device)
    log = (lambda text: print(f"[ulysses rank0] {text}", flush=True)) if rank == 0 else (lambda text: None)

    wan = bench.import_wan(Path(args.wan22_dir))
    import wan.distributed.sequence_parallel as sp  # noqa: E402  (after the package stubs of bench.import_wan)

    launcher = bench.import_launcher()
    route = launcher.choose_attention(args.attention)
    launcher.install_attention(route)
    context = lambda: launcher.attention_context(route)  # noqa: E731
    torch.manual_seed(0)  # the same random weights on every rank
    model = bench.build_dit(wan, device)
    inputs = bench.dit_inputs(args, device)
    flops = bench.dit_flops(model, inputs["seq_len"])
    if inputs["seq_len"] % world or 40 % world:
        raise SystemExit(f"{world} GPUs do not divide the 40 heads and the {inputs['seq_len']} tokens")
    log(f"{world} GPUs, {inputs['seq_len']} tokens, {flops / 1e15:.2f} PFLOP per forward")

    report: dict = {
        "gpu": torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "world": world,
        "attention": route,
        "size": [args.width, args.height, args.frames],
        "tokens": inputs["seq_len"],
    }
    single_out = None
    if rank == 0:
        row, single_out = bench.run_route(model, inputs, context, flops, args)
        report["single_gpu"] = row
        log(f"1 GPU: {row['s_per_forward']} s/forward, {row['tflops']} TFLOP/s")
    dist.barrier()

    for block in model.blocks:
        block.self_attn.forward = types.MethodType(sp.sp_attn_forward, block.self_attn)
    model.use_context_parallel = True
    t0 = time.perf_counter()
    row, sp_out = bench.run_route(model, inputs, context, flops, args)
    if rank == 0:
        row["tflops_per_gpu"] = round(row["tflops"] / world, 1)
        report[f"ulysses_{world}"] = row
        report["speedup"] = round(report["single_gpu"]["s_per_forward"] / row["s_per_forward"], 3)
        report["vs_single_gpu"] = bench.compare(sp_out, single_out)
        log(
            f"Ulysses {world}: {row['s_per_forward']} s/forward ({time.perf_counter() - t0:.0f} s with warm-up), "
            f"speed-up {report['speedup']}x, max|diff| {report['vs_single_gpu']['max_abs_diff']:.3g}"
        )
    if args.profile:
        profile = bench.profile_forward(model, inputs, context)  # every rank runs it: the collectives need all
        if rank == 0:
            report["profile_rank0"] = profile
            log(f"profile: {profile}")
    if rank == 0:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench_ulysses.json").write_text(json.dumps(report, indent=2, default=str))
        print("ULYSSES_JSON " + json.dumps(report, default=str), flush=True)
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
