"""Question -> prompt text, the one place the prompt format is decided."""

from __future__ import annotations

from pathlib import Path

from rlreason.data.record import DataError, Question

VINEPPO_TEMPLATE = "[MATH_TASK] Problem:\n{problem}\n\nSolution:"  # the SFT checkpoints were tuned on this
ARITH_TEMPLATE = "{problem}\n"


def format_prompt(question: Question, template: str | None = VINEPPO_TEMPLATE, tokenizer=None,
                  use_chat_template: bool = False) -> str:
    """The prompt for `question`: the template filled in (None: the question's text as is), or the
    tokenizer's chat template around the user message, the template filled in (data.user_template).

    `str.replace` rather than `str.format`: a template may hold literal LaTeX braces.
    """
    text = question.problem if template is None else template.replace("{problem}", question.problem)
    if use_chat_template:
        if tokenizer is None:
            raise ValueError("use_chat_template=True needs a tokenizer")
        messages = [{"role": "user", "content": text}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text


def encode_prompts(texts: list[str], tokenizer, use_chat_template: bool, batch: bool = True) -> list[list[int]]:
    """The token ids of prompt texts (format_prompt's) exactly as the engine gets them
    (rlreason.rollout.Roller): BOS as the tokenizer adds it, except after a chat template, which writes its
    own. `batch=False` encodes one text per call (no tokenizer thread pool: cheaper for a handful)."""
    special = not use_chat_template  # verbose=False: no warning for a prompt over model_max_length (checked apart)
    if not batch:
        return [tokenizer(t, add_special_tokens=special, verbose=False)["input_ids"] for t in texts]
    if not texts:
        return []
    return tokenizer(texts, add_special_tokens=special, return_attention_mask=False, verbose=False)["input_ids"]


def prompt_template(data_cfg) -> str | None:
    """The template a data config asks for: with the chat template, `user_template` (the user message);
    else `prompt_template_file`'s content byte for byte (newlines included) when set, else `prompt_template`
    (None = the question's text as is)."""
    if data_cfg.use_chat_template:
        return getattr(data_cfg, "user_template", None)  # run dirs saved before the key have none
    if data_cfg.prompt_template_file:
        path = Path(data_cfg.prompt_template_file).expanduser()
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"data.prompt_template_file={path}: cannot read it ({e})") from None
    return data_cfg.prompt_template
