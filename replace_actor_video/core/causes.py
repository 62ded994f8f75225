"""The most telling line of a failed program's output, so the one-line failure names the real cause: "No space
left on device" rather than ffmpeg's closing "Conversion failed!", the Python exception rather than
torchrun's boilerplate."""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterable

from .console import settled_lines
from .supervisor import SIGNAL_LINE

# Causes in the environment (disk, memory, file limits): when the output names one, it is the reason,
# whatever the program printed after it. The texts are the C library's own (os.strerror).
RESOURCE_CAUSES = (
    *(
        os.strerror(code)
        for code in (
            errno.ENOSPC,
            errno.EDQUOT,
            errno.EROFS,
            errno.ENOMEM,
            errno.EMFILE,
            errno.ENFILE,
            errno.EFBIG,
            errno.EIO,
        )
    ),
    "CUDA out of memory",
)
_EXCEPTION = re.compile(r"(^|[\s:])[A-Za-z_.]*(Error|Exception|Interrupt)\b: ")
# Closing lines that follow the real error and say nothing about it.
_NOISE = ("error_file", "elastic/errors", "To enable traceback", "ChildFailedError", "Conversion failed!")


def last_error(lines: Iterable[str], limit: int = 240) -> str:
    """The line that best explains a failure, or "" when nothing looks like an error. In order: a line
    naming a resource cause, a Python exception line ('ValueError: ...', also behind torchrun's '[rank0]:'
    prefix), the supervisor's 'ended by signal' line, the last line mentioning an error."""
    settled = settled_lines(lines)
    theirs = [line for line in settled if not line.startswith("[rav")]
    resource = [line for line in theirs if any(cause in line for cause in RESOURCE_CAUSES)]
    exception = [line for line in theirs if _EXCEPTION.search(line) and not _noise(line)]
    signalled = [line for line in settled if line.startswith(SIGNAL_LINE)]
    loose = [
        line for line in theirs if any(w in line for w in ("Error", "error", "failed", "assert")) and not _noise(line)
    ]
    picked = (resource or exception or signalled or loose or [""])[-1]
    return picked[:limit]


def _noise(line: str) -> bool:
    return any(text in line for text in _NOISE)
