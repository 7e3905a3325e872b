"""What a task's documents offer methods, declared by the task (`Task.translation`), so that a method tests an
ability instead of a task name, and backends read typed fields instead of parsing document dicts.

* `TranslationDoc`: the typed view of a translation document (every task with `translation = True`: FLORES, the
  YAML-only test sets of `hook: translation` such as wmt16 and multi30k, your own `TranslationTask`).
* `request_langs`: the `Request.langs` the runner sets for a document.
* `refuse_directions`: the check a composite method runs in `check_run`, before any training or generation,
  for every translation task of the run, whatever its name.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import HarnessError


@dataclass(frozen=True)
class TranslationDoc:
    """The fields every translation document has (tasks/_translation.py `TranslationTask.make_doc`)."""

    source: str  # the sentence to translate
    src: str  # source language code, e.g. "de"
    tgt: str  # target language code, e.g. "en"
    src_name: str  # "German"
    tgt_name: str  # "English"

    @property
    def direction(self) -> str:
        return f"{self.src}-{self.tgt}"

    @classmethod
    def of(cls, doc: dict, task: str = "") -> TranslationDoc:
        try:
            return cls(**{k: doc[k] for k in cls.__dataclass_fields__})
        except KeyError as e:
            raise HarnessError(f"task {task}: declares translation = True but a document lacks {e.args[0]!r} "
                               f"(translation documents have {', '.join(cls.__dataclass_fields__)})") from None


def translation_doc(task, doc: dict | None) -> TranslationDoc | None:
    """The typed translation view of `doc` when `task` declares the translation ability, else None."""
    return TranslationDoc.of(doc, task.name) if doc is not None and getattr(task, "translation", False) else None


def request_langs(task, doc: dict) -> tuple[str, str] | None:
    """(source, target) language of a document's requests: from the declared ability; a task that declares none
    but whose documents carry `src` and `tgt` (a custom task routed by language) still gets them."""
    td = translation_doc(task, doc)
    if td is not None:
        return td.src, td.tgt
    return (doc["src"], doc["tgt"]) if "src" in doc and "tgt" in doc else None


def translation_tasks(tasks: list) -> list:
    return [t for t in tasks if getattr(t, "translation", False)]


def refuse_directions(tasks: list, serves, what: str, fix: str) -> None:
    """One-line HarnessError for the first selected direction of any translation task (YAML test sets included)
    for which `serves(direction)` is False: "--tasks <task>: direction <d> is served by no <what> <fix>".
    A composite method calls it from `check_run`, so the run stops before any training or generation."""
    for task in translation_tasks(tasks):
        for direction in task.selected:
            if not serves(direction):
                raise HarnessError(f"--tasks {task.name}: direction {direction} is served by no {what} {fix}")
