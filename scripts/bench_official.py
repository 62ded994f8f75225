#!/usr/bin/env python3
"""Upstream Wan2.2 generate.py as users run it, for the official rows of scripts/bench_job.py:

    python3 scripts/bench_official.py --wan22_dir Wan2.2 -- <generate.py arguments>

generate.py runs unmodified as __main__ (no attention route, rope, motion cache, prompt patch, fast loading or any
other launcher change). Supplied only what the lent GPU machine lacks and upstream cannot run without: flash_attn
(EMULATED with PyTorch's FlashAttention-2 kernel, scripts/bench_shims/flash_attn) and an empty dashscope module
(prompt extension, never enabled); plus the launcher's [rav-timing] hooks, which only time and synchronize, so the
official rows break down by part like ours. Do not put FA3 (flash_attn_interface) on PYTHONPATH for these rows:
upstream would use it in the DiT.
"""

import importlib.util
import os
import runpy
import sys
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    started = time.perf_counter()
    argv = sys.argv[1:]
    if argv[:1] != ["--wan22_dir"] or "--" not in argv:
        sys.exit("usage: bench_official.py --wan22_dir DIR -- <generate.py arguments>")
    wan22 = os.path.abspath(argv[1])
    upstream = argv[argv.index("--") + 1 :]
    sys.path.insert(0, str(REPO / "scripts" / "bench_shims"))
    sys.path.insert(0, wan22)
    if importlib.util.find_spec("dashscope") is None:
        sys.modules["dashscope"] = types.ModuleType("dashscope")
    spec = importlib.util.spec_from_file_location(
        "rav_timing", REPO / "replace_actor_video" / "upstream" / "wan" / "runtime" / "timing.py"
    )
    timing = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(timing)
    import wan  # noqa: F401

    timing.install()
    timing.emit("import", time.perf_counter() - started, "official: import wan")
    attention = sys.modules.get("wan.modules.attention")
    if attention is not None:
        emulated = getattr(sys.modules.get("flash_attn"), "EMULATED", False)
        print(
            f"[rav-bench] official path: flash_attn {'EMULATED (PyTorch FA2 kernel)' if emulated else 'installed'}"
            f", FA3 in the DiT: {getattr(attention, 'FLASH_ATTN_3_AVAILABLE', False)}",
            flush=True,
        )
    generate_py = os.path.join(wan22, "generate.py")
    sys.argv = [generate_py, *upstream]
    runpy.run_path(generate_py, run_name="__main__")


if __name__ == "__main__":
    main()
