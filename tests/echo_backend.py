"""A test double backend shared by the leaderboard and translation-file tests: no model, known outputs."""

from __future__ import annotations

from harness.backends.base import Capabilities, Generation


class EchoBackend:
    """Answers each request with `transform(doc, index)` of its document (index = the number after the last "/")."""

    name = "echo"
    capabilities = Capabilities(generate=True, loglik=False, hf_weights=False)

    def __init__(self, docs: dict, transform):
        self.docs, self.transform = docs, transform

    def generate(self, requests, progress=None):
        out = []
        for r in requests:
            doc = self.docs[r.id.rsplit("#", 1)[0]]
            out.append(Generation(self.transform(doc, int(doc["id"].rsplit("/", 1)[1])), "prompt", 3, 5, "stop"))
        return out

    def settings(self):
        return {"backend": "echo-test-double"}
