"""Durable, resumable answers for `lmeval:` tasks, and JSON that any lm-eval task config can be written as.

lm-eval computes every answer first and builds its per-document logs and metrics only at the end, so
a crash (or a failed write) after hours of requests would lose them all. `RequestLog` saves each
answered request the moment lm-eval's HFLM produces it (through HFLM's own `cache_hook.add_partial`
calls) to `<out>/lmeval_<task>/requests.jsonl`, and `serve()` wraps the LM's request methods so that a
rerun answers saved requests from that file and sends only the rest to the model.

Keys: sha256 of (run key, request type, request arguments, occurrence). The run key is a hash of
the task folder's fingerprint (model weights, method and artifact, task config hash, dtype, seed,
lm-eval version), so a line is reused only by the same model on the same task config, never by
prompt alone (the mistake in lm-eval's own response cache). The occurrence number tells apart
identical requests asked several times (`repeats` with sampling); each keeps its own saved answer.
A resumed run with sampling reuses the samples it already drew; the rest come from the same seed,
so they can differ from what an uninterrupted run would have drawn.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import json
import os
import re
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.io import JsonlStore, sha256_text

REQUEST_TYPES = ("loglikelihood", "loglikelihood_rolling", "generate_until")
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def jsonable(obj: Any, _depth: int = 0) -> Any:
    """`obj` as plain JSON data, whatever an lm-eval task config holds.

    Functions (`!function utils.process_docs`) become "function <module>.<qualname> sha256:<source hash>",
    so the config hash changes when their code changes and not from one process to the next (a plain
    `str()` would embed a memory address); regexes become their pattern and flags; other objects their
    class name and attributes. Nothing here raises on an unknown type.
    """
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if _depth > 12:
        return _clean_repr(obj)
    if isinstance(obj, dict):
        return {str(k): jsonable(v, _depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v, _depth + 1) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted((jsonable(v, _depth + 1) for v in obj), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(obj, re.Pattern):
        return f"re.compile({obj.pattern!r}, flags={int(obj.flags)})"
    if isinstance(obj, (bytes, bytearray)):
        return f"bytes sha256:{sha256_text(bytes(obj).hex())[:16]}"
    if isinstance(obj, functools.partial):
        return {"partial": jsonable(obj.func, _depth + 1), "args": jsonable(obj.args, _depth + 1),
                "keywords": jsonable(obj.keywords, _depth + 1)}
    if inspect.isfunction(obj) or inspect.ismethod(obj) or inspect.isbuiltin(obj) or inspect.isclass(obj):
        return _describe_callable(obj)
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy / torch scalars and arrays
        with contextlib.suppress(Exception):  # a tolist() that fails: fall through to the generic description
            return jsonable(obj.tolist(), _depth + 1)
    kind = f"{type(obj).__module__}.{type(obj).__qualname__}"
    if dataclasses.is_dataclass(obj):
        return {"object": kind, **{f.name: jsonable(getattr(obj, f.name), _depth + 1) for f in dataclasses.fields(obj)}}
    if hasattr(obj, "__dict__"):
        return {"object": kind, **{k: jsonable(v, _depth + 1) for k, v in vars(obj).items() if not k.startswith("__")}}
    return _clean_repr(obj)


def _describe_callable(fn: Callable) -> str:
    target = getattr(fn, "__func__", fn)
    module = getattr(target, "__module__", None) or "?"
    module = Path(module).name if os.sep in module else module  # lm-eval names `!function` modules by file path
    name = f"{module}.{getattr(target, '__qualname__', None) or type(target).__name__}"
    kind = "class" if inspect.isclass(fn) else "function"
    try:
        return f"{kind} {name} sha256:{sha256_text(inspect.getsource(target))[:16]}"
    except (OSError, TypeError):  # builtins and functions without a source file: the name is all there is
        return f"{kind} {name}"


def _clean_repr(obj: Any) -> str:
    return _ADDRESS.sub("", repr(obj))


def _request_key(run_key: str, attr: str, args: Any, occurrence: int) -> str:
    payload = json.dumps([run_key, attr, jsonable(args), occurrence], sort_keys=True, ensure_ascii=False)
    return sha256_text(payload)[:32]


def _decode(attr: str, result: Any) -> Any:
    if attr == "loglikelihood" and isinstance(result, list):
        return tuple(result)  # (logprob, is_greedy), as HFLM returns it
    return result


class RequestLog:
    """`requests.jsonl`: one line per answered lm-eval request, written (and flushed) as it is answered."""

    def __init__(self, store: JsonlStore, run_key: str, fsync_every_s: float = 2.0):
        self.store = store  # harness.rundir.write.open_lmeval_requests: a torn last line left by a kill is cut
        self.path = self.store.path
        self.run_key = run_key
        self.fsync_every_s = fsync_every_s
        self.reused = 0
        self.written = 0
        self._file = None
        self._last_sync = 0.0
        # (attr, args json) -> keys asked, unanswered
        self._pending: dict[tuple[str, str], list[str]] = defaultdict(list)

    @property
    def repaired(self) -> bool:
        return self.store.repaired

    def __len__(self) -> int:
        return len(self.store.records)

    def _write(self, key: str, attr: str, args: Any, result: Any) -> None:
        if key in self.store.records:
            return
        rec = {"key": key, "type": attr, "args": jsonable(args), "result": jsonable(result)}
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open across answers, closed in close()
        self._file.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self._file.flush()  # in the OS from here on: survives a crash or kill of this process
        self.store.records[key] = rec
        self.written += 1
        if time.monotonic() - self._last_sync > self.fsync_every_s:
            os.fsync(self._file.fileno())
            self._last_sync = time.monotonic()

    def close(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None

    # lm-eval's CacheHook interface: HFLM calls add_partial(type, request args, answer) for each answer.
    def add_partial(self, attr: str, req: Any, res: Any) -> None:
        waiting = self._pending.get((attr, _args_id(req)))
        if waiting:
            key = waiting.pop(0)
            self._write(key, attr, req, res)

    def serve(self, attr: str, inner: Callable[[list], list]) -> Callable[[list], list]:
        """Wrap `lm.<attr>`: saved answers come from the file, the rest from `inner` (and get saved)."""
        seen: dict[str, int] = defaultdict(int)

        def call(requests: list, *a, **kw) -> list:
            out: list = [None] * len(requests)
            todo, todo_keys = [], []
            for i, req in enumerate(requests):
                ident = _args_id(req.args)
                key = _request_key(self.run_key, attr, req.args, seen[ident])
                seen[ident] += 1
                if key in self.store.records:
                    out[i] = _decode(attr, self.store.records[key]["result"])
                    self.reused += 1
                else:
                    todo.append(i)
                    todo_keys.append(key)
                    self._pending[(attr, ident)].append(key)
            if todo:
                answers = inner([requests[i] for i in todo], *a, **kw)
                for i, key, ans in zip(todo, todo_keys, answers, strict=True):
                    out[i] = ans
                    self._write(key, attr, requests[i].args, ans)  # answers the hook did not see
                    waiting = self._pending.get((attr, _args_id(requests[i].args)))
                    if waiting and key in waiting:
                        waiting.remove(key)
            return out

        return call


def _args_id(args: Any) -> str:
    return json.dumps(jsonable(args), sort_keys=True, ensure_ascii=False)


def install(lm, log: RequestLog) -> None:
    """Make `lm` (an lm-eval LM instance) save every answer into `log` and reuse the answers already in it."""
    lm.set_cache_hook(log)
    for attr in REQUEST_TYPES:
        setattr(lm, attr, log.serve(attr, getattr(lm, attr)))
