"""`harness validate`: render one prompt per task and language, check the document is really in it.

This catches the AfroBench-style bug where a quoting slip renders a literal word instead of the
document: every field in the task's `content_fields` must appear verbatim in the rendered prompt.
"""

from __future__ import annotations

from harness.errors import HarnessError
from harness.task import Task, template_fields


def validate_task(task: Task):
    """Yield (message, ok) per subset."""
    for subset in task.all_subsets():
        try:
            docs = task.docs(subset)
        except HarnessError as e:
            yield f"{task.name}/{subset}: {e}", False
            continue
        if not docs:
            yield f"{task.name}/{subset}: no documents", False
            continue
        doc = docs[0]
        try:
            text = "\n".join(m["content"] for m in task.messages(doc, []))
        except HarnessError as e:
            yield f"{task.name}/{subset}: {e}", False
            continue
        missing = [f for f in task.content_fields if str(doc.get(f, "")) not in text or not str(doc.get(f, ""))]
        unused = [f for f in task.content_fields if f not in template_fields(task.cfg.prompt.template)
                  and task.cfg.prompt.template]
        if missing:
            yield f"{task.name}/{subset}: field(s) {', '.join(missing)} not in the rendered prompt", False
        elif unused and task.n_rounds == 1:
            yield f"{task.name}/{subset}: template does not use {', '.join(unused)}", False
        else:
            yield f"{task.name}/{subset}: {len(docs)} docs, prompt renders {len(text)} chars", True
