"""How every entry point reports failure: one line on stderr and an exit code that says what kind."""

from __future__ import annotations

import sys
from typing import Callable

from .errors import Cancelled, StageFailed, UserError


def report_errors(body: Callable[[], object]) -> int:
    """Run `body`; 0 on success, 2 bad input, 1 upstream failure, 130 cancelled."""
    try:
        body()
        return 0
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return UserError.exit_code
    except StageFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return StageFailed.exit_code
    except (Cancelled, KeyboardInterrupt) as exc:
        print(f"cancelled: {exc or 'interrupted'}", file=sys.stderr)
        return Cancelled.exit_code
