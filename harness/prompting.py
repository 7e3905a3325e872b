"""Turning chat messages into the exact string a model sees (shared by evaluation and training)."""

from __future__ import annotations

from typing import Literal

from harness.errors import HarnessError

ChatMode = Literal["auto", "on", "off"]


def uses_chat(tokenizer, mode: ChatMode) -> bool:
    has = bool(getattr(tokenizer, "chat_template", None))
    if mode == "on" and not has:
        name = getattr(tokenizer, "name_or_path", "this model")
        raise HarnessError(f"prompt.chat is 'on' but {name} has no chat template; use 'auto' or 'off'")
    return has if mode == "auto" else mode == "on"


def adds_bos(tokenizer) -> bool:
    """Whether the model expects its BOS token first: the tokenizer says so (`add_bos_token`), or its own
    special-token processing puts BOS first (transformers 5 Gemma tokenizers report add_bos_token=False
    but add <bos> in their post-processor; without it Gemma 3 degenerates into repetitions)."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    if getattr(tokenizer, "add_bos_token", False):
        return True
    try:
        return tokenizer("a")["input_ids"][:1] == [bos]
    except Exception:  # noqa: BLE001 - a tokenizer that cannot encode with special tokens adds none
        return False


def render(tokenizer, messages: list[dict], mode: ChatMode, assistant_prefix: str = "") -> str:
    """The prompt string for generation: chat template with the generation prompt, or plain text.

    `assistant_prefix` is forced as the beginning of the assistant's reply (used by RaDis).
    Plain rendering joins turns with blank lines; assistant turns follow their user turn.
    """
    if uses_chat(tokenizer, mode):
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    else:
        parts = [m["content"] for m in messages]
        text = "\n\n".join(parts)
        if messages and messages[-1]["role"] == "user" and assistant_prefix:
            text += " "
    return text + assistant_prefix


def render_training_pair(tokenizer, messages: list[dict], response: str, mode: ChatMode) -> tuple[str, str]:
    """(prompt, completion) strings for supervised training, consistent with `render` at eval time."""
    prompt = render(tokenizer, messages, mode)
    eos = tokenizer.eos_token or ""
    if uses_chat(tokenizer, mode):
        full = tokenizer.apply_chat_template(
            messages + [{"role": "assistant", "content": response}], tokenize=False
        )
        if full.startswith(prompt):
            return prompt, full[len(prompt):]
    return prompt, " " + response + eos if not prompt.endswith((" ", "\n")) else response + eos
