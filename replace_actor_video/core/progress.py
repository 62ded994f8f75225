"""Progress parsed from upstream console output (tqdm bars and our own step markers)."""

from __future__ import annotations

import re
from dataclasses import dataclass

# tqdm: " 45%|████▌     | 9/20 [00:10<00:12,  1.10s/it]"
_TQDM = re.compile(r"(?P<pct>\d{1,3})%\|[^|]*\|\s*(?P<n>\d+)/(?P<total>\d+)\s*\[(?P<elapsed>[\d:]+)<(?P<eta>[\d:?]+)")
# Our own markers, printed by stages between upstream calls: "[rav] step 2/5: generate"
_STEP = re.compile(r"\[rav\] step (?P<n>\d+)/(?P<total>\d+): (?P<name>.+)")


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    eta_s: float | None
    text: str

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


def _seconds(clock: str) -> float | None:
    if "?" in clock:
        return None
    parts = [int(p) for p in clock.split(":")]
    seconds = 0
    for p in parts:
        seconds = seconds * 60 + p
    return float(seconds)


def parse_progress(line: str) -> Progress | None:
    """A Progress for a console line that reports one, else None."""
    m = _TQDM.search(line)
    if m:
        return Progress(int(m["n"]), int(m["total"]), _seconds(m["eta"]), line.strip())
    m = _STEP.search(line)
    if m:
        return Progress(int(m["n"]), int(m["total"]), None, m["name"].strip())
    return None
