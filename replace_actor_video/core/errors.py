"""User-facing failures: each carries a one-line message that names the problem and the fix."""


class UserError(Exception):
    """Bad input or environment. The CLI prints the message on one line and exits with `exit_code` (2)."""

    exit_code = 2


class StageFailed(Exception):
    """An upstream tool failed (non-zero exit, or exit 0 without the files it had to write)."""

    exit_code = 1


class Cancelled(Exception):
    """The user pressed Ctrl-C or the job was cancelled; the child process tree has been ended."""

    exit_code = 130


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: handled exactly as Ctrl-C (a KeyboardInterrupt), with the signal's name."""
