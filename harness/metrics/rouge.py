"""Multilingual ROUGE through Google's `rouge-score`, with a language-aware tokenizer.

rouge-score's default tokenizer lowercases, replaces everything outside [a-z0-9] with spaces and
splits: every non-Latin text becomes empty and scores 0, and accented Latin words are broken
("réponse" → "r ponse"). Here the scorer keeps `RougeScorer`'s LCS/n-gram code and swaps only
the tokenizer (the same approach as the XL-Sum authors' multilingual ROUGE):

* en: rouge-score's own DefaultTokenizer (optional Porter stemmer), so English scores equal
  plain `rouge_score.rouge_scorer.RougeScorer`;
* zh: jieba word segmentation (accurate mode); ja: MeCab + IPADIC through sacrebleu's ja-mecab
  tokenizer (the one used for Japanese BLEU); th: PyThaiNLP `newmm`;
* every other language: lowercased runs of Unicode letters, combining marks and digits
  (`[\\p{L}\\p{M}\\p{N}]+`), which keeps Bengali/Devanagari vowel signs inside their words.

Punctuation-only tokens are dropped in every language. No stemming outside English.
"""

from __future__ import annotations

from functools import lru_cache

import regex
from rouge_score import rouge_scorer, tokenizers

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
_WORD = regex.compile(r"[\p{L}\p{M}\p{N}]+")
_HAS_WORD = regex.compile(r"[\p{L}\p{N}]")
SEGMENTERS = {"en": "rouge-score default ([a-z0-9]+, lowercase)", "zh": "jieba (accurate mode)",
              "ja": "MeCab + IPADIC (sacrebleu ja-mecab)", "th": "pythainlp newmm"}
DEFAULT_SEGMENTER = r"unicode words [\p{L}\p{M}\p{N}]+, lowercase"


class MultilingualTokenizer(tokenizers.Tokenizer):
    """A rouge-score Tokenizer for one language (ISO 639-1 code)."""

    def __init__(self, lang: str, use_stemmer: bool = False):
        self.lang = lang
        self._default = tokenizers.DefaultTokenizer(use_stemmer=use_stemmer) if lang == "en" else None

    def tokenize(self, text: str) -> list[str]:
        if self._default is not None:
            return self._default.tokenize(text)
        if self.lang == "zh":
            import jieba

            words = jieba.lcut(text)
        elif self.lang == "ja":
            words = _mecab()(text).split()
        elif self.lang == "th":
            from pythainlp.tokenize import word_tokenize

            words = word_tokenize(text, engine="newmm", keep_whitespace=False)
        else:
            return [w.lower() for w in _WORD.findall(text)]
        return [w.lower() for w in (w.strip() for w in words) if w and _HAS_WORD.search(w)]


@lru_cache(maxsize=1)
def _mecab():
    from sacrebleu.tokenizers.tokenizer_ja_mecab import TokenizerJaMecab

    return TokenizerJaMecab()


@lru_cache(maxsize=None)
def scorer(lang: str, use_stemmer: bool = False) -> rouge_scorer.RougeScorer:
    if lang == "zh":
        import logging

        import jieba

        jieba.setLogLevel(logging.WARNING)
    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), tokenizer=MultilingualTokenizer(lang, use_stemmer))


def rouge(prediction: str, reference: str, lang: str, use_stemmer: bool = False) -> dict[str, float]:
    """F-measures (0-100) of rouge1/rouge2/rougeL for one pair."""
    scores = scorer(lang, use_stemmer).score(reference, prediction)  # rouge-score: score(target, prediction)
    return {k: 100.0 * scores[k].fmeasure for k in ROUGE_TYPES}


def settings(lang: str, use_stemmer: bool = False) -> dict:
    from importlib.metadata import version

    return {"library": f"rouge-score {version('rouge-score')}",
            "tokenizer": SEGMENTERS.get(lang, DEFAULT_SEGMENTER), "stemmer": "porter" if use_stemmer and lang == "en"
            else None, "score": "F-measure x100, mean over documents", "types": list(ROUGE_TYPES)}
