"""Preprocess stand-in for the UI tests: the contract stand-in (tests/standins/wan_preprocess_data.py),
held at a gate. While the file named by UI_STANDIN_GATE exists it prints tqdm-style progress (a new line every
second, so the log grows) and waits, so a test can watch a running job, queue another behind it and cancel it;
then it runs the contract stand-in with the same (upstream) arguments."""

import os
import runpy
import sys
import time

sys.path.insert(0, os.environ["RAV_REPO"])

from replace_actor_video.upstream.wan.mirror_preprocess_data import build_parser  # noqa: E402


def clock(seconds):
    seconds = int(seconds)
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def main():
    build_parser().parse_args()  # exactly the upstream argument list, checked before waiting
    gate, total, done, start = os.environ.get("UI_STANDIN_GATE"), 200, 0, time.monotonic()
    while gate and os.path.exists(gate) and time.monotonic() - start < 300:
        done = min(done + 1, total - 1)
        elapsed = time.monotonic() - start
        eta = elapsed / done * (total - done)
        sys.stdout.write(
            f"\r{done * 100 // total:3d}%|{'#' * (done * 10 // total):<10}| {done}/{total} "
            f"[{clock(elapsed)}<{clock(eta)},  5.00it/s]" + ("\n" if done % 5 == 0 else "")
        )
        sys.stdout.flush()
        time.sleep(0.2)
    print(flush=True)
    standin = os.path.join(os.environ["RAV_REPO"], "tests", "standins", "wan_preprocess_data.py")
    runpy.run_path(standin, run_name="__main__")


if __name__ == "__main__":
    main()
