"""Where phases run: `local` (N worker processes on this machine, no extra dependency) or `ray` (one Ray task per
phase on a Ray cluster, asking for the phase's CPUs/GPUs; `pip install -e '.[ray]'`).

Both take a phase's payload (mt_harness.study.worker) and report `(phase id, outcome)` pairs as phases end. A worker
that dies without an answer (SIGKILL, out of memory, a lost node) is reported with `crashed: True`; the driver
retries it, and the phase resumes from its saved samples. Every worker process runs one phase only, so phases
never share a torch state. On Ray, the study's output folder and $HARNESS_CACHE must be paths every node sees (a
shared filesystem): the payload carries absolute paths, not files.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from multiprocessing.connection import wait as wait_for

from harness.errors import HarnessError
from mt_harness.study.spec import Resources


def exit_with_parent(interval: float = 2.0) -> None:
    """Exit this process when its parent (the study's driver) is gone: a driver killed by a signal it cannot catch
    would otherwise leave its workers training on, e.g. into an artifact a restarted study trains again."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _child(payload: dict, conn) -> None:
    from mt_harness.study.worker import execute

    exit_with_parent()
    conn.send(execute(payload))
    conn.close()


class LocalExecutor:
    """`workers` processes at a time, each a fresh interpreter (spawn) running one phase."""

    name = "local"

    def __init__(self, workers: int):
        self.slots = workers
        self.running: dict[str, tuple] = {}  # phase id -> (process, connection)
        self._mp = mp.get_context("spawn")

    def free(self) -> bool:
        return len(self.running) < self.slots

    def start(self, phase_id: str, payload: dict, resources: Resources) -> None:
        reader, writer = self._mp.Pipe(duplex=False)
        proc = self._mp.Process(target=_child, args=(payload, writer), name=f"study {phase_id}")
        proc.start()
        writer.close()
        self.running[phase_id] = (proc, reader)

    def wait(self) -> list[tuple[str, dict]]:
        """Block until at least one phase ends; its outcome (or a crash report)."""
        by_handle = {}
        for pid, (proc, reader) in self.running.items():
            by_handle[proc.sentinel] = pid
            by_handle[reader] = pid
        ended: list[tuple[str, dict]] = []
        for pid in dict.fromkeys(by_handle[h] for h in wait_for(list(by_handle))):
            proc, reader = self.running[pid]
            outcome = None
            try:
                if reader.poll():
                    outcome = reader.recv()
            except (EOFError, OSError):
                outcome = None
            if outcome is None and proc.is_alive():
                continue  # the pipe closed early but the process still runs: wait for its exit
            proc.join()
            reader.close()
            del self.running[pid]
            ended.append((pid, outcome or {"ok": False, "crashed": True,
                                           "error": f"worker process died (exit code {proc.exitcode})"}))
        return ended

    def close(self) -> None:
        for proc, reader in self.running.values():
            proc.join()
            reader.close()
        self.running.clear()


class RayExecutor:
    """One Ray task per phase (`max_calls=1`: a fresh worker process each), asking for the phase's resources."""

    name = "ray"

    def __init__(self, address: str | None):
        try:
            import ray
        except ImportError:
            raise HarnessError("--executor ray: ray is not installed; pip install -e '.[ray]'") from None
        self.ray = ray
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False) if address else ray.init(include_dashboard=False)
        self.task = ray.remote(max_calls=1, max_retries=0)(_ray_phase)  # the driver retries crashed phases
        self.running: dict = {}  # object ref -> phase id

    def free(self) -> bool:
        return True  # Ray queues the tasks until their resources are free

    def start(self, phase_id: str, payload: dict, resources: Resources) -> None:
        ref = self.task.options(num_cpus=resources.cpus, num_gpus=resources.gpus, name=phase_id).remote(payload)
        self.running[ref] = phase_id

    def wait(self) -> list[tuple[str, dict]]:
        ready, _ = self.ray.wait(list(self.running), num_returns=1)
        ended = []
        for ref in ready:
            pid = self.running.pop(ref)
            try:
                outcome = self.ray.get(ref)
            except self.ray.exceptions.RayError as e:
                outcome = {"ok": False, "crashed": True, "error": f"Ray task failed: {' '.join(str(e).split())[:300]}"}
            ended.append((pid, outcome))
        return ended

    def close(self) -> None:
        if self.running:
            self.ray.wait(list(self.running), num_returns=len(self.running))
        self.running.clear()


def _ray_phase(payload: dict) -> dict:
    from mt_harness.study.worker import execute

    return execute(payload)


def make_executor(kind: str, workers: int, address: str | None):
    if kind == "local":
        if address:
            raise HarnessError("--address: only for --executor ray")
        return LocalExecutor(workers)
    if kind == "ray":
        return RayExecutor(address)
    raise HarnessError(f"--executor {kind}: use local or ray")
