"""mt-harness, the application: the `harness` command (cli.py parses, commands.py translates arguments) and the Python
API under it (api.py: run, train, score, judge, leaderboard, ...). It sits above everything else: it reaches the method
registry (methods/), the task registry (tasks/) and the leaderboard (leaderboard/), which all build on the core library
in harness/. Nothing below imports it."""

from harness import __version__

__all__ = ["__version__"]
