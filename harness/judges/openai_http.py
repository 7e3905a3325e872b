"""Any OpenAI-compatible `/v1/chat/completions` endpoint as judge (OpenAI, vLLM serve, llama.cpp, TGI, ...).

The API key is read from the environment variable whose NAME is given (`--judge-key-env`); the
key itself is never stored on this object's identity, never logged, and scrubbed from error
messages. Requests use the standard library (urllib), retry on 429/5xx/connection errors with
exponential backoff, and run a few at a time in threads.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from harness.errors import HarnessError
from harness.judges.base import JudgeSettings

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class OpenAIJudge:
    kind = "openai"

    def __init__(self, base_url: str, model: str, settings: JudgeSettings, key_env: str | None = None,
                 timeout: float = 120.0, retries: int = 4, workers: int = 4, backoff: float = 1.0):
        if not base_url.startswith(("http://", "https://")):
            raise HarnessError(f"--judge-url {base_url!r}: must start with http:// or https://")
        if not model:
            raise HarnessError("--judge-model: an HTTP judge needs the endpoint's model name")
        self.url = base_url.rstrip("/")
        if not self.url.endswith("/chat/completions"):
            self.url += "/chat/completions"
        self.model = model
        self.settings = settings
        self.key_env = key_env
        self._key = None
        if key_env:
            self._key = os.environ.get(key_env)
            if not self._key:
                raise HarnessError(f"--judge-key-env {key_env}: that environment variable is empty or unset")
        self.timeout, self.retries, self.workers, self.backoff = timeout, retries, workers, backoff

    def identity(self) -> dict:
        return {"kind": self.kind, "model": self.model, "url": self.url, "key_env": self.key_env}

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def _post(self, messages: list[dict], seed: int) -> str:
        body = {"model": self.model, "messages": messages, "temperature": self.settings.temperature,
                "max_tokens": self.settings.max_new_tokens, "seed": seed, "n": 1}
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        data = json.dumps(body).encode("utf-8")
        last = ""
        for attempt in range(self.retries + 1):
            req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    payload = json.loads(resp.read().decode("utf-8"))
                return _content(payload, self.url)
            except urllib.error.HTTPError as e:
                detail = e.read().decode("utf-8", "replace")[:300]
                last = f"HTTP {e.code}: {detail}"
                if e.code not in RETRY_STATUS:
                    break
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                last = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
            except json.JSONDecodeError as e:
                last = f"response is not JSON ({e})"
            if attempt < self.retries:
                time.sleep(self.backoff * 2**attempt)
        raise HarnessError(self._scrub(f"judge endpoint {self.url}: {last}"))

    def complete(self, conversations: list[list[dict]], seeds: list[int], progress=None) -> list[str]:
        def one(args):
            text = self._post(*args)
            if progress is not None:
                progress.update(1)
            return text

        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            return list(pool.map(one, zip(conversations, seeds)))


def _content(payload: dict, url: str) -> str:
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise HarnessError(f"judge endpoint {url}: reply has no choices[0].message.content") from None
    return content if isinstance(content, str) else ""
