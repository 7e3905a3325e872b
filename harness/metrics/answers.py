"""Final-answer extraction for math word problems (MGSM, GSM8K), in the 11 MGSM languages.

Two extractors, both reported:

* **strict**: the number after an explicit answer marker. Markers are the per-language phrase the
  MGSM native chain-of-thought exemplars end with ("The answer is 11.", "Die Antwort lautet 8.",
  "答案是 11。", "Ответ — 11.", ...), a few close variants ("Die Antwort ist", "答案为", "Answer:"),
  the English phrase in every language (models often switch to English), GSM8K's "#### N" and
  LaTeX "\\boxed{N}". When the output has several markers the last one counts.
* **flexible**: the last number anywhere in the output.

Numbers survive thousands separators ("1,234", "1.234", "1 234" with no-break spaces, or plain
spaces in French/Russian), decimal commas ("3,5"), currency signs, markdown bold, Unicode minus
and native digits (Bengali, Thai, Devanagari, full-width, ...). Values are compared exactly as
decimals after normalisation, so "18.00" matches 18.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, InvalidOperation

# Answer phrases per language (regex fragments, case-insensitive). The first entry of each
# language is the phrase its MGSM exemplars use (mgsm_exemplars.json).
ANSWER_PHRASES: dict[str, list[str]] = {
    "en": [r"the answer is", r"the final answer is", r"answer\s*:"],
    "de": [r"die antwort lautet", r"die antwort ist", r"die endgültige antwort (?:lautet|ist)", r"antwort\s*:"],
    "es": [r"la respuesta es", r"la respuesta final es", r"respuesta\s*:"],
    "fr": [r"la réponse est", r"la réponse finale est", r"réponse\s*:"],
    "ru": [r"ответ\s*(?:—|–|-|:|равен|будет|составляет)"],
    "sw": [r"jibu ni", r"jibu\s*:"],
    "te": [r"సమాధానం\s*:?"],
    "th": [r"คำตอบคือ", r"คำตอบ\s*:"],
    "bn": [r"উত্তর হল", r"উত্তর হলো", r"উত্তর\s*:"],
    "ja": [r"答えは", r"答え\s*[:：]", r"答\s*[:：]"],
    "zh": [r"答案是", r"答案为", r"答案\s*[:：]"],
}
# Markers accepted in every language.
UNIVERSAL_MARKERS = [r"the answer is", r"the final answer is", r"####", r"\\boxed\{"]

# What may sit between a marker and its number: spaces, colons, markdown, currency, "$\\boxed{".
_FILLER = r"(?:[\s:：*_$€£¥₹#=]|\\\(|\\\[|\\boxed\{|\\text\{[^}]{0,20}\}|US\$|de\s)*?"
_SPACE_GROUPING = {"fr", "ru"}  # languages that group thousands with a plain space


def _number_pattern(lang: str) -> str:
    spaces = "\u00a0\u202f\u2009" + (" " if lang in _SPACE_GROUPING else "")
    grouped = rf"\d{{1,3}}(?:[,.{spaces}]\d{{3}})+(?!\d)(?:[.,]\d+)?"
    return rf"(?<![\d.,])[-−–]?(?:{grouped}|\d+(?:[.,]\d+)?)"


def normalize_number(token: str) -> str | None:
    """Canonical decimal string of a number as written ("1,234" → "1234", "3,5" → "3.5"); None if unparsable."""
    s = "".join(str(unicodedata.decimal(c)) if c.isdigit() and unicodedata.decimal(c, None) is not None else c
                for c in token.strip())
    s = s.replace("−", "-").replace("–", "-")
    s = re.sub(r"[\s\u00a0\u202f\u2009]", "", s)
    neg = s.startswith("-")
    s = s.lstrip("-")
    if not s or not s[0].isdigit():
        return None
    if "," in s and "." in s:  # the later one is the decimal separator
        dec = "," if s.rfind(",") > s.rfind(".") else "."
        s = s.replace("." if dec == "," else ",", "").replace(dec, ".")
    elif "," in s or "." in s:
        sep = "," if "," in s else "."
        parts = s.split(sep)
        if len(parts) > 2 or (len(parts[-1]) == 3 and parts[0] != "0" and all(len(p) == 3 for p in parts[1:])):
            s = "".join(parts)  # thousands grouping: 1,234 / 1.234.567
        else:
            s = ".".join(parts)  # decimal: 3,5 / 0.125
    try:
        value = Decimal(s)
    except InvalidOperation:
        return None
    if neg:
        value = -value
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def extract_strict(text: str, lang: str) -> str | None:
    """Number after the last explicit answer marker of `lang` (or a universal marker); None if absent."""
    phrases = ANSWER_PHRASES.get(lang, []) + UNIVERSAL_MARKERS
    pattern = re.compile(rf"(?:{'|'.join(phrases)}){_FILLER}({_number_pattern(lang)})", re.IGNORECASE)
    for m in reversed(list(pattern.finditer(text))):
        value = normalize_number(m.group(1))
        if value is not None:
            return value
    return None


def extract_flexible(text: str, lang: str) -> str | None:
    """The last number anywhere in the output; None if it has none."""
    for m in reversed(list(re.finditer(_number_pattern(lang), text))):
        value = normalize_number(m.group(0))
        if value is not None:
            return value
    return None


def extract(text: str, lang: str) -> dict[str, str | None]:
    return {"strict": extract_strict(text, lang), "flexible": extract_flexible(text, lang)}


def same_number(pred: str | None, gold: str) -> bool:
    if pred is None:
        return False
    gold_norm = normalize_number(gold)
    return gold_norm is not None and Decimal(pred) == Decimal(gold_norm)


def settings() -> dict:
    """Extraction settings recorded in results.json."""
    return {
        "strict": "number after the last answer marker; markers per language: see answer_phrases "
                  "(+ universal: " + ", ".join(UNIVERSAL_MARKERS) + ")",
        "flexible": "last number in the output",
        "numbers": "thousands separators , . and no-break spaces (plain spaces for fr, ru); decimal comma; "
                   "native digits; compared as exact decimals",
        "answer_phrases": ANSWER_PHRASES,
        "module": "harness/metrics/answers.py",
    }
