"""One phase, run in a worker process (a local worker or a Ray task): `mt_harness.api.train` or `mt_harness.api.run`
in-process, with the phase's output in its log file; the result goes back as data (the artifact's description for
training, the results folder for an evaluation), never parsed from printed text.

The payload is plain data (JSON-able) so that any executor can ship it: the RunSpec fields, the threads, the
environment every node needs (HARNESS_CACHE, HARNESS_DATA_DIR), the log path and the module holding the API
(`mt_harness.api`, imported here, after the environment is set, so that torch starts with the phase's threads).
"""

from __future__ import annotations

import importlib
import os
import socket
import sys
import time
import traceback
from pathlib import Path

from harness.errors import HarnessError


def execute(payload: dict) -> dict:
    """Run the phase in `payload`; returns {"ok": True, "seconds", "artifact"|"out"} or {"ok": False, "error"}, with
    `stopped_seconds` (left out of `seconds`) and, on success, `earlier` (the heartbeat records of attempts that did not
    finish: mt_harness.study.attempt) when there were any."""
    for key, value in payload["env"].items():
        os.environ[key] = value
    os.environ["OMP_NUM_THREADS"] = str(payload["threads"])
    if Path(payload["cwd"]).is_dir():
        os.chdir(payload["cwd"])
    log = Path(payload["log"])
    log.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    print(f"[study] {payload['id']}: pid {os.getpid()} on {socket.gethostname()}, "
          f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')}: {' '.join(payload['command'])}", flush=True)
    sys.argv = list(payload["command"])  # results.json records the equivalent `harness run` command line
    from harness import provenance
    from harness.rundir.phases import attempt_file
    from mt_harness.study.attempt import Heartbeat

    beat = Heartbeat(attempt_file(log), (provenance.git_state().get("commit") or "")[:7])
    start = time.time()
    try:
        api = importlib.import_module(payload["api"])
        from harness.loading import BackendConfig

        fields = dict(payload["spec"])
        fields["settings"] = BackendConfig(**fields["settings"])
        spec = api.RunSpec(**fields)
        if payload["kind"] == "train":
            artifact = api.train(spec)
            result = {"ok": True, "artifact": artifact.describe()}
        else:
            out = api.run(spec)
            result = {"ok": True, "out": str(out.out)}
    except HarnessError as e:
        print(f"error: {e}", flush=True)
        result = {"ok": False, "error": str(e)}
    except Exception as e:  # noqa: BLE001 - reported to the driver, which stops the study
        traceback.print_exc()
        result = {"ok": False, "error": f"{type(e).__name__}: {e} (traceback in {log})"}
    stopped = beat.finish(result["ok"])
    result["seconds"] = time.time() - start - stopped  # the time it ran, not the time it was frozen
    if stopped:
        result["stopped_seconds"] = round(stopped, 1)
    if beat.earlier and result["ok"]:  # a failed attempt leaves them in its file, for the next one
        result["earlier"] = beat.earlier  # attempts that did not finish (mt_harness.study.attempt)
    print(f"[study] {payload['id']}: {'done' if result['ok'] else 'failed'} in {result['seconds']:.1f} s", flush=True)
    sys.stdout.flush()
    return result
