"""What every refusal classifier is (`RefusalClassifier`) and the apostrophe normalisation they share; the
classifiers themselves live in harness/metrics/refusal.py (lists from the literature) and refusal_rules.py (ours).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Callable

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})


def normalise_apostrophes(text: str) -> str:
    return text.translate(_APOSTROPHES)


@dataclass(frozen=True)
class RefusalClassifier:
    name: str
    version: str
    source: str
    rules: object  # JSON-serialisable description of the rules (hashed for results.json)
    match: Callable[[str], str | None]  # response -> the rule that fired, or None
    languages: tuple[str, ...] = ("en",)  # languages it has phrases for

    def is_refusal(self, text: str) -> bool:
        return self.match(text) is not None

    @property
    def rules_sha256(self) -> str:
        blob = json.dumps(self.rules, ensure_ascii=False, sort_keys=True).encode("utf-8")
        return hashlib.sha256(blob).hexdigest()

    def describe(self) -> dict:
        return {"name": self.name, "version": self.version, "rules_sha256": self.rules_sha256[:16],
                "source": self.source, "languages": list(self.languages),
                "refusal": "full or partial refusal (XSTest convention)"}
