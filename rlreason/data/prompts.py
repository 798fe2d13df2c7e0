"""Question -> prompt text, the one place the prompt format is decided."""

from __future__ import annotations

from rlreason.data.record import Question

VINEPPO_TEMPLATE = "[MATH_TASK] Problem:\n{problem}\n\nSolution:"  # the SFT checkpoints were tuned on this
ARITH_TEMPLATE = "{problem}\n"


def format_prompt(question: Question, template: str = VINEPPO_TEMPLATE, tokenizer=None,
                  use_chat_template: bool = False) -> str:
    """The prompt for `question`: the template filled in, or the tokenizer's chat template.

    `str.replace` rather than `str.format`: a template may hold literal LaTeX braces.
    """
    if use_chat_template:
        if tokenizer is None:
            raise ValueError("use_chat_template=True needs a tokenizer")
        messages = [{"role": "user", "content": question.problem}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return template.replace("{problem}", question.problem)
