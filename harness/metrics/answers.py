"""Final-answer extraction for math word problems (MGSM, GSM8K), in the 11 MGSM languages.

Two extractors, both reported:

* **strict**: the number after an explicit answer marker. Markers are the per-language phrase the
  MGSM native chain-of-thought exemplars end with ("The answer is 11.", "Die Antwort lautet 8.",
  "答案是 11。", "Ответ — 11.", ...), a few close variants ("Die Antwort ist", "答案为", "Answer:"),
  the English phrase in every language (models often switch to English), GSM8K's "#### N" and
  LaTeX "\\boxed{N}". When the output has several markers the last one counts.
* **flexible**: the last number anywhere in the output.

Numbers survive thousands separators ("1,234", "1.234", "1 234" with no-break spaces, or plain
spaces in French/Spanish/Russian), decimal commas ("3,5"), currency signs, markdown bold, Unicode minus
and native digits (Bengali, Thai, Devanagari, full-width, ...). Values are compared exactly as
decimals after normalisation, so "18.00" matches 18.

Separators are read by the output language's convention (`DECIMAL_COMMA`) only where the form is
ambiguous, i.e. one separator followed by exactly three digits after 1–3 digits ("2.125", "1,125"):
in English (decimal point) "2.125" is 2.125 and "1,125" is 1125; in German, Spanish, French,
Russian (decimal comma) "1.125" is 1125 and "2,125" is 2.125. Unambiguous forms read the same
everywhere: "3,5" and "0.125" are decimals, "1.234.567" and "1,234.5" have thousands groups. The
gold is read in the convention it is written in (`same_number(..., gold_lang)`; MGSM's gold column
is English-formatted in every language file, e.g. "2,125", and holds integers only).
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
_SPACE_GROUPING = {"fr", "es", "ru"}  # languages that group thousands with a plain space (MGSM's own texts)
# languages writing a decimal comma (thousands: "." or a space); all others here write a decimal point
DECIMAL_COMMA = {"de", "es", "fr", "ru", "it", "pt", "nl", "pl", "cs", "tr", "uk", "ro", "fi", "id", "vi"}


def _number_pattern(lang: str) -> str:
    spaces = "\u00a0\u202f\u2009" + (" " if lang in _SPACE_GROUPING else "")
    grouped = rf"\d{{1,3}}(?:[,.{spaces}]\d{{3}})+(?!\d)(?:[.,]\d+)?"
    return rf"(?<![\d.,])[-−–]?(?:{grouped}|\d+(?:[.,]\d+)?)"


def normalize_number(token: str, lang: str = "en") -> str | None:
    """Canonical decimal string of a number as written in `lang` ("1,234" → "1234", "3,5" → "3.5");
    None if unparsable. See the module docstring for how ambiguous separators are read."""
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
        if len(parts) > 2:  # 1.234.567: only thousands groups repeat
            if not (1 <= len(parts[0]) <= 3 and all(len(p) == 3 for p in parts[1:])):
                return None
            s = "".join(parts)
        elif 1 <= len(parts[0]) <= 3 and not parts[0].startswith("0") and len(parts[1]) == 3:
            # ambiguous: 1,125 / 2.125 — the language's decimal separator decides
            decimal = "," if lang in DECIMAL_COMMA else "."
            s = ".".join(parts) if sep == decimal else "".join(parts)
        else:
            s = ".".join(parts)  # only a decimal reading exists: 3,5 / 0.125 / 1234.5
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
        value = normalize_number(m.group(1), lang)
        if value is not None:
            return value
    return None


def extract_flexible(text: str, lang: str) -> str | None:
    """The last number anywhere in the output; None if it has none."""
    for m in reversed(list(re.finditer(_number_pattern(lang), text))):
        value = normalize_number(m.group(0), lang)
        if value is not None:
            return value
    return None


def extract(text: str, lang: str) -> dict[str, str | None]:
    return {"strict": extract_strict(text, lang), "flexible": extract_flexible(text, lang)}


def same_number(pred: str | None, gold: str, gold_lang: str = "en") -> bool:
    """`pred` (a normalised extraction) equals `gold` as written in `gold_lang`'s convention (MGSM, GSM8K
    golds are English-formatted integers in every language)."""
    if pred is None:
        return False
    gold_norm = normalize_number(gold, gold_lang)
    return gold_norm is not None and Decimal(pred) == Decimal(gold_norm)


def settings() -> dict:
    """Extraction settings recorded in results.json."""
    return {
        "strict": "number after the last answer marker; markers per language: see answer_phrases "
                  "(+ universal: " + ", ".join(UNIVERSAL_MARKERS) + ")",
        "flexible": "last number in the output",
        "numbers": "thousands separators , . and no-break spaces (plain spaces for "
                   + ", ".join(sorted(_SPACE_GROUPING))
                   + "); one separator before exactly 3 digits is decimal in the language's convention (decimal comma: "
                   + ", ".join(sorted(DECIMAL_COMMA)) + "; else decimal point); native digits; golds read as English; "
                   "compared as exact decimals",
        "answer_phrases": ANSWER_PHRASES,
        "module": "harness/metrics/answers.py",
    }
