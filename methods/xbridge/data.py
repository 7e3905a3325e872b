"""XBridge training data: trilingual tuples, token features, batching and the three-term objective.

A tuple is (x_lang, x, en, y_lang, y, q_prompt): the NMT encoder reads x, the LLM learns to write en
(after the stage-2/3 prompt when q_prompt is set), the NMT decoder learns to write y from the LLM's
states. Every side is checked against the evaluation sets by the shared contamination guard.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

import torch

from harness.data import DataSource, load_hub_dataset, read_lines
from harness.errors import HarnessError
from harness.languages import flores_code, short_code
from harness.training.contamination import guard
from harness.training.data import Example

FLORES_DEV_HUB = "openlanguagedata/flores_plus"
OPUS100_HUB = "Helsinki-NLP/opus-100"


@dataclass
class Tuple:
    x_lang: str
    x: str
    en: str
    y_lang: str
    y: str
    query: str | None  # stage 2/3: the query q shown in the prompt (None = stage-1 input, no prompt)
    origin: str


# -- sources -----------------------------------------------------------------------------------
def flores_dev(lang: str, data: DataSource) -> list[str]:
    code = flores_code(lang)
    for parts in (("flores", "flores200_dev_from_alma", f"{code}.dev"),
                  ("flores", "flores200_dataset", "dev", f"{code}.dev")):
        path = data.local(*parts)
        if path is not None:
            return read_lines(path)
    if data.root is not None and not data.allow_hub:
        raise HarnessError(f"xbridge training data: FLORES-200 dev for {lang} ({code}.dev) is not under "
                           f"{data.root}/flores/flores200_dev_from_alma; pick stage1.languages among those present")
    rows = load_hub_dataset(FLORES_DEV_HUB, f"xbridge training data flores dev ({lang})", name=code, split="dev")
    return [r["text"] for r in rows]


def _sample(n: int, cap: int | None, key: str) -> list[int]:
    idx = list(range(n))
    return sorted(random.Random(key).sample(idx, cap)) if cap is not None and n > cap else idx


def stage1_tuples(cfg, data: DataSource, seed: int) -> list[Tuple]:
    langs = [short_code(x) for x in cfg.languages]
    dirs = cfg.directions or ([f"{a}-{b}" for a in langs for b in langs if a != b]
                              + [f"{a}-en" for a in langs] + [f"en-{a}" for a in langs])
    out: list[Tuple] = []
    if cfg.source == "flores_dev":
        cache: dict[str, list[str]] = {}

        def lines(lang: str) -> list[str]:
            if lang not in cache:
                cache[lang] = flores_dev(lang, data)
            return cache[lang]
        for d in dirs:
            x, _, y = d.partition("-")
            xs, es, ys = lines(x), lines("en"), lines(y)
            if not len(xs) == len(es) == len(ys):
                raise HarnessError(f"xbridge training data: FLORES dev files of {x}, en, {y} are not line-aligned")
            for i in _sample(len(es), cfg.max_per_direction, f"{seed}/{d}"):
                out.append(Tuple(x, xs[i], es[i], y, ys[i], None, f"flores dev {x}/en/{y}:{i + 1}"))
        return out
    for lang in langs:  # opus100: (x, en, x) and (en, en, x) per language pair
        pair = "-".join(sorted(["en", lang]))
        rows = load_hub_dataset(OPUS100_HUB, f"xbridge training data opus-100 ({pair})", name=pair, split="train")
        tr = [r["translation"] for r in rows]
        for i in _sample(len(tr), cfg.max_per_direction, f"{seed}/{lang}"):
            x, en = tr[i][lang], tr[i]["en"]
            out.append(Tuple(lang, x, en, lang, x, None, f"{OPUS100_HUB} {pair}:{i}"))
            out.append(Tuple("en", en, en, lang, x, None, f"{OPUS100_HUB} {pair}:{i}"))
    return out


def stage23_tuples(cfg, data: DataSource, seed: int) -> list[Tuple]:
    out: list[Tuple] = []
    if cfg.source == "flores_dev":
        en = flores_dev("en", data)
        for lang in (short_code(x) for x in cfg.languages):
            r_lang = short_code(cfg.response_language or lang)
            qs, rs = flores_dev(lang, data), flores_dev(r_lang, data)
            for i in _sample(len(en), cfg.max_per_language, f"{seed}/instr/{lang}"):
                out.append(Tuple(lang, qs[i], en[i], r_lang, rs[i], qs[i], f"flores dev {lang}/en/{r_lang}:{i + 1}"))
        return out
    rows = load_hub_dataset(cfg.hub_id, f"xbridge stage-2/3 data {cfg.hub_id}", name=cfg.hub_config, split=cfg.split)
    wanted = {flores_code(x) for x in cfg.languages}
    by_lang: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        try:
            code = flores_code(str(r[cfg.language_field]))
        except (KeyError, HarnessError):
            continue
        if code in wanted:
            by_lang.setdefault(code, []).append(i)
    for code, idx in by_lang.items():
        for j in _sample(len(idx), cfg.max_per_language, f"{seed}/instr/{code}"):
            r = rows[idx[j]]
            try:
                q, en, y = r[cfg.query_field], r[cfg.response_en_field], r[cfg.response_field]
            except KeyError as e:
                raise HarnessError(f"{cfg.hub_id}: row {idx[j]} has no field {e.args[0]!r}; "
                                   f"set stage23.*_field") from None
            lang = short_code(code)
            out.append(Tuple(lang, q, en, lang, y, q, f"{cfg.hub_id}:{idx[j]}"))
    if not out:
        raise HarnessError(f"{cfg.hub_id}: no rows for languages {cfg.languages} (field {cfg.language_field!r})")
    return out


def check_overlap(tuples: list[Tuple], eval_tasks: list, drop: bool) -> tuple[list[Tuple], dict]:
    """The shared guard on every side of every tuple (x and y as one pair, en as another)."""
    probes = []
    for k, t in enumerate(tuples):
        probes.append(Example(t.x_lang, t.y_lang, t.x, t.y, f"{t.origin.rsplit(':', 1)[0]}:{k}"))
        probes.append(Example("en", "en", t.en, t.en, f"{t.origin.rsplit(':', 1)[0]}:{k}"))
    kept, report = guard(probes, eval_tasks, drop)
    alive = Counter(int(e.origin.rsplit(":", 1)[1]) for e in kept)
    keep = [t for k, t in enumerate(tuples) if alive[k] == 2]
    return keep, {**report, "tuples": len(tuples), "tuples_dropped": len(tuples) - len(keep)}


# -- token features ----------------------------------------------------------------------------
class Codes:
    """Language tokens of the NMT tokenizer: deu_Latn (NLLB-200) or __de__ (M2M100)."""

    def __init__(self, tok, style: str):
        self.tok, self.style = tok, style
        self.vocab = tok.get_vocab()

    def token(self, lang: str) -> str:
        return flores_code(lang) if self.style == "nllb" else f"__{short_code(lang)}__"

    def id(self, lang: str) -> int:
        t = self.token(lang)
        if t not in self.vocab:
            raise HarnessError(f"xbridge: the NMT tokenizer has no language token {t!r} for {lang!r}; the NMT "
                               f"model cannot read or write this language (or set language_codes)")
        return self.vocab[t]

    def encode(self, text: str, lang: str, max_len: int) -> list[int]:
        """[lang token] + text + [</s>] (NLLB's non-legacy layout), cut to max_len."""
        ids = self.tok(text, add_special_tokens=False)["input_ids"][: max(0, max_len - 2)]
        return [self.id(lang)] + ids + [self.tok.eos_token_id]


def llm_prompt(tok, template: str, query: str | None) -> list[int]:
    return [] if query is None else tok(template.format(q=query), add_special_tokens=False)["input_ids"]


def llm_target(tok, text: str, after_prompt: bool, max_len: int) -> list[int]:
    ids = tok((" " + text) if after_prompt else text, add_special_tokens=False)["input_ids"][: max_len - 1]
    return ids + [tok.eos_token_id]


def features(t: Tuple, codes: Codes, llm_tok, cfg) -> dict:
    prompt = llm_prompt(llm_tok, cfg.prompt, t.query)
    z = llm_target(llm_tok, t.en, t.query is not None, cfg.max_dec_tokens)
    y = codes.encode(t.y, t.y_lang, cfg.max_dec_tokens)
    return {"src_ids": codes.encode(t.x, t.x_lang, cfg.max_src_tokens), "prompt_ids": prompt, "z_ids": z,
            "zn_ids": codes.encode(t.en, "en", cfg.max_src_tokens), "y_ids": y,
            "dec_in": [codes.tok.eos_token_id] + y[:-1],  # decoder starts from </s> [CODE]
            "input_ids": prompt + z}  # the LLM tokens: what the shared loop sorts by length


def pad_rows(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max((len(r) for r in rows), default=0)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)], mask[i, :len(r)] = torch.tensor(r, dtype=torch.long), 1
    return ids, mask


class XBridgeObjective:
    """The shared trainer's Objective for one stage: lambda_llm L_LLM + lambda_dec L_Dec + lambda_ot L_OT.

    L_LLM and L_Dec are means over the step's target tokens (z + eos; lang tag + y + </s>), L_OT a mean
    over the step's examples with at least one y token [CODE]. A weight of 0 switches a term off."""

    parts = ("llm", "dec", "ot")

    def __init__(self, weights: dict[str, float], nmt_pad: int):
        self.w, self.nmt_pad = weights, nmt_pad

    def collate(self, feats: list[dict], pad_id: int) -> dict:
        out = {}
        for key, pad in (("src", self.nmt_pad), ("prompt", pad_id), ("z", pad_id), ("zn", self.nmt_pad)):
            out[f"{key}_ids"], out[f"{key}_mask"] = pad_rows([f[f"{key}_ids"] for f in feats], pad)
        out["y_ids"], out["y_mask"] = pad_rows([f["y_ids"] for f in feats], self.nmt_pad)
        out["dec_in"], _ = pad_rows([f["dec_in"] for f in feats], self.nmt_pad)
        return out

    def counts(self, batch: dict) -> torch.Tensor:
        return torch.stack([batch["z_mask"].sum() * (self.w["llm"] > 0), batch["y_mask"].sum() * (self.w["dec"] > 0),
                            (batch["y_mask"].sum(-1) > 0).sum() * (self.w["ot"] > 0)])

    def loss(self, model, batch: dict, denom: dict):
        out = model(batch, need_llm=self.w["llm"] > 0, need_dec=self.w["dec"] > 0, need_ot=self.w["ot"] > 0)
        parts = {k: out[k] / denom[k] for k in self.parts}
        loss = sum(self.w[k] * parts[k] for k in self.parts)
        return loss, {k: float(v.detach()) for k, v in parts.items()}
