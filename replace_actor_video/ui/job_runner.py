"""Run one stage CLI as a UI job and leave its exit code in the job folder.

`python -m replace_actor_video.ui.job_runner <exit-file> <script> [args...]` runs `<script>` as __main__ in
this very process (so the job's pid is the CLI's pid, and the CLI's own SIGTERM handling ends its child
tree), then writes the exit status to `<exit-file>`. The file outlives the UI: a UI restarted while the job
ran still learns how it ended. Standard library only."""

from __future__ import annotations

import os
import runpy
import sys


def _write(path: str, code: int) -> None:
    tmp = f"{path}.partial-{os.getpid()}"
    with open(tmp, "w") as fh:
        fh.write(f"{code}\n")
    os.replace(tmp, path)


def main() -> None:
    exit_file, script, *args = sys.argv[1:]
    sys.argv = [script, *args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    code = 1
    try:
        runpy.run_path(script, run_name="__main__")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        raise
    except KeyboardInterrupt:
        code = 130
        raise
    finally:
        _write(exit_file, code)


if __name__ == "__main__":
    main()
