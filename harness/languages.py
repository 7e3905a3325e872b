"""Language codes: short ISO 639-1 style codes used on the CLI ↔ FLORES-200 codes, names, BLEU tokenizers."""

from __future__ import annotations

from harness.errors import HarnessError

# short code: (FLORES-200 code, English name)
LANGUAGES: dict[str, tuple[str, str]] = {
    "ar": ("arb_Arab", "Arabic"), "bn": ("ben_Beng", "Bengali"), "cs": ("ces_Latn", "Czech"),
    "de": ("deu_Latn", "German"), "en": ("eng_Latn", "English"), "es": ("spa_Latn", "Spanish"),
    "fi": ("fin_Latn", "Finnish"), "fr": ("fra_Latn", "French"), "hi": ("hin_Deva", "Hindi"),
    "is": ("isl_Latn", "Icelandic"), "it": ("ita_Latn", "Italian"), "ja": ("jpn_Jpan", "Japanese"),
    "ko": ("kor_Hang", "Korean"), "nl": ("nld_Latn", "Dutch"), "pl": ("pol_Latn", "Polish"),
    "pt": ("por_Latn", "Portuguese"), "ro": ("ron_Latn", "Romanian"), "ru": ("rus_Cyrl", "Russian"),
    "sw": ("swh_Latn", "Swahili"), "te": ("tel_Telu", "Telugu"), "th": ("tha_Thai", "Thai"),
    "tr": ("tur_Latn", "Turkish"), "uk": ("ukr_Cyrl", "Ukrainian"), "vi": ("vie_Latn", "Vietnamese"),
    "zh": ("zho_Hans", "Chinese"),
}

# sacrebleu tokenizer per target language; everything else uses 13a.
# zh: sacrebleu's Chinese tokenizer; ja/ko: MeCab (sacrebleu[ja], sacrebleu[ko]);
# th and other scripts without spaces: characters (sacrebleu has no Thai word tokenizer).
BLEU_TOKENIZERS = {"zh": "zh", "ja": "ja-mecab", "ko": "ko-mecab", "th": "char", "my": "char", "km": "char",
                   "lo": "char"}


def flores_code(code: str) -> str:
    if code in LANGUAGES:
        return LANGUAGES[code][0]
    if "_" in code and len(code.split("_")[0]) == 3:
        return code  # already a FLORES-200 code such as isl_Latn
    raise HarnessError(f"unknown language code {code!r}: use one of {', '.join(LANGUAGES)} or a FLORES-200 code")


def short_code(code: str) -> str:
    for short, (flores, _) in LANGUAGES.items():
        if code in (short, flores):
            return short
    return code


def name(code: str) -> str:
    short = short_code(code)
    return LANGUAGES[short][1] if short in LANGUAGES else code


def bleu_tokenizer(code: str) -> str:
    return BLEU_TOKENIZERS.get(short_code(code), "13a")
