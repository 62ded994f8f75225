"""GPU facts from nvidia-smi (no torch import in the orchestrator: it may not have CUDA torch)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    memory_mib: int
    free_mib: int | None = None  # unused memory when asked (other processes may hold some)


def visible_gpus() -> list[Gpu]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    proc = subprocess.run(
        [exe, "--query-gpu=index,name,memory.total,memory.free", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        return []
    gpus = []
    for line in proc.stdout.strip().splitlines():
        index, name, memory, *free = (part.strip() for part in line.split(","))
        gpus.append(Gpu(int(index), name, int(float(memory)), int(float(free[0])) if free else None))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() != "":
        wanted = {v.strip() for v in visible.split(",")}
        gpus = [g for g in gpus if str(g.index) in wanted]
    return gpus
