"""Cleaning of translation outputs, shared by translation tasks (FLORES, WMT).

Chat models wrap translations ("Here is the translation:\n…", quotes, a trailing "Note: …").
Every step that changes the text is named in the sample's `cleaning` list, so a score can be
traced back to the raw output.
"""

from __future__ import annotations

import re

_PREAMBLE = re.compile(
    r"^\s*(sure|certainly|of course|okay|ok|here is|here's|here are|the translation|translation|translated)\b[^\n]*[:：]\s*$",
    re.IGNORECASE,
)
# same-line start of an explanation after the translation (only used by keep="first_line")
_RATIONALE = re.compile(r"\s+[(\[]?\**(note|explanation|rationale|erklärung|anmerkung)\**\s*[:：]", re.IGNORECASE)
# words of an explanation ABOUT a translation, absent from FLORES references (0 of 1012 devtest lines in English
# and German each): kept text that contains them still holds (part of) a rationale
RATIONALE_WORDS = re.compile(
    r"\btranslat(e|es|ed|ing|ion|ions)\b|\bübersetz\w*|\boriginal (german|english|text|sentence|phrase)\b"
    r"|\b(the|this) (german|english) (word|phrase|sentence|text|term|expression)\b"
    r"|\b(explanation|erklärung|note|anmerkung|rationale)\s*[:：]|\bin this context\b",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[.!?。！？\"”“»])\s+")
_QUOTES = [('"', '"'), ("“", "”"), ("«", "»"), ("„", "“"), ("「", "」"), ("'", "'")]


def unwrap(text: str, preamble: re.Pattern, label: re.Pattern, label_step: str,
           keep: str) -> tuple[str, list[str]]:
    """Shared first steps of output cleaning: drop a preamble line ("Here is …:"), a leading label
    ("English:"), and with keep='first_paragraph' everything after the first blank line."""
    steps: list[str] = []
    out = text.strip()
    lines = out.split("\n")
    if len(lines) > 1 and preamble.match(lines[0]):
        out = "\n".join(lines[1:]).strip()
        steps.append("drop_preamble")
    found = label.match(out)
    if found and out[found.end():].strip():
        out = out[found.end():].strip()
        steps.append(label_step)
    if keep == "first_paragraph":
        para = re.split(r"\n\s*\n", out, maxsplit=1)[0].strip()
        if para != out:
            out = para
            steps.append("first_paragraph")
    return out, steps


def clean_translation(text: str, tgt_name: str, keep: str = "first_paragraph") -> tuple[str, list[str]]:
    label = re.compile(rf"^\s*(\*\*)?{re.escape(tgt_name)}(\*\*)?\s*[:：]\s*")
    out, steps = unwrap(text, _PREAMBLE, label, "drop_target_label", keep)
    if keep == "first_line":  # RaDis: a rationale may follow after one newline or on the same line
        line = out.split("\n", 1)[0].strip()
        if line != out:
            out = line
            steps.append("first_line")
        cut = _RATIONALE.search(out)
        if cut and out[:cut.start()].strip():
            out = out[:cut.start()].strip()
            steps.append("cut_rationale_marker")
        # an unmarked explanation on the same line ("X. The original German sentence translates to …"): cut
        # before the first sentence after the first one that has words of an explanation
        for gap in _SENTENCE_END.finditer(out):
            if has_rationale_words(out[gap.end():]):
                nxt = _SENTENCE_END.search(out, gap.end())
                if has_rationale_words(out[gap.end():nxt.start() if nxt else len(out)]):
                    out = out[:gap.start()].strip()
                    steps.append("cut_rationale_sentence")
                    break
            else:
                break
    for a, b in _QUOTES:
        inner = out[len(a):-len(b)]
        if len(out) >= 2 and out.startswith(a) and out.endswith(b) and a not in inner and b not in inner:
            out = inner.strip()
            steps.append("strip_quotes")
            break
    return out, steps


def has_rationale_words(text: str) -> bool:
    """True when `text` (a kept translation) contains words that explain a translation (RATIONALE_WORDS)."""
    return bool(RATIONALE_WORDS.search(text))
