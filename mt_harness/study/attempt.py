"""A phase attempt's heartbeat file, so that COST.md counts what a killed attempt cost and not the time a process
was stopped, without notes written by hand.

While a worker runs a phase it keeps `<unit>/logs/<phase>.attempt.json` up to date every `HEARTBEAT_SECONDS`: when it
started, when it was last alive, the git commit, and the seconds it spent stopped (a heartbeat that comes more than
`STOP_GAP_SECONDS` late means the whole process was frozen: SIGSTOP, a suspended VM). A worker whose phase succeeds
removes the file; one that fails leaves it, and one that is killed (its driver's session ended, out of memory, a lost
node) cannot remove it. So a file found when the phase starts again holds the attempts that did not finish (each new
attempt carries the older ones forward), and their time up to their last heartbeat is added to the phase's record
(`estimated_extra_seconds` with a `note`, starred in COST.md). Stopped time is left out and named in the note.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from harness.rundir.phases import read_attempt, write_attempt

HEARTBEAT_SECONDS = 15.0
STOP_GAP_SECONDS = 30.0


def read_attempts(path: Path) -> list[dict]:
    """The unfinished attempts a heartbeat file holds, oldest first: each {seconds (alive - started - stopped),
    stopped_seconds, started, alive, git, ended (it returned a failure; else it was killed, or still runs)}; [] when
    there is no readable file."""
    data = read_attempt(path)
    try:
        started, alive, stopped = float(data["started"]), float(data["alive"]), float(data.get("stopped_seconds", 0))
        earlier = [dict(e) for e in data.get("earlier", [])]
    except (ValueError, KeyError, TypeError):  # TypeError also when there is no file (data None)
        return []
    return earlier + [{"seconds": round(max(0.0, alive - started - stopped), 1), "stopped_seconds": round(stopped, 1),
                       "started": _iso(started), "alive": _iso(alive), "git": str(data.get("git", "")),
                       "ended": bool(data.get("ended"))}]


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")


class Heartbeat:
    """This attempt's file, written now and every `interval` seconds by a daemon thread until `finish()`."""

    def __init__(self, path: Path, git: str = "", interval: float = HEARTBEAT_SECONDS,
                 stop_gap: float = STOP_GAP_SECONDS):
        self.path, self.git, self.interval, self.stop_gap = Path(path), git, interval, stop_gap
        self.earlier = read_attempts(self.path)  # attempts that did not finish, carried forward in this file
        self.started = time.time()
        self.stopped = 0.0
        self._done = threading.Event()
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write()
        self._thread = threading.Thread(target=self._beat, name="study-heartbeat", daemon=True)
        self._thread.start()

    def _write(self, ended: bool = False) -> None:
        write_attempt(self.path, {"ended": ended, "started": self.started, "alive": time.time(), "stopped_seconds":
                                      round(self.stopped, 1), "git": self.git, "pid": os.getpid(),
                                      "earlier": self.earlier})

    def _beat(self) -> None:
        last = time.monotonic()
        while True:
            done = self._done.wait(self.interval)
            now = time.monotonic()
            late = now - last - self.interval
            with self._lock:
                if late > self.stop_gap:
                    self.stopped += late
                if done:
                    return
                self._write()
            last = now

    def finish(self, ok: bool) -> float:
        """Stop beating; remove the file when the phase succeeded, else leave its final state for the next attempt.
        Returns the seconds this attempt spent stopped."""
        self._done.set()
        self._thread.join()
        if ok:
            self.path.unlink(missing_ok=True)
        else:
            self._write(ended=True)
        return self.stopped
