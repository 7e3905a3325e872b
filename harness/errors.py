"""User-facing errors: one line naming the problem and the fix, exit code 2."""


class HarnessError(Exception):
    """An error caused by input the user can fix. The CLI prints `error: <message>` and exits 2."""
