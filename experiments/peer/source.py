"""Where the comparison's questions come from, and how both frameworks read and grade them.

Built in (the default): rlreason's arith generator at task.ARITH (`data=arith`), prompt "{problem}\\n",
graded by the arith checker. Files (`--train F --test F`): JSONL rows (`data=jsonl`), the
`problem_field` text is the prompt as it is (no template), the `answer_field` is the gold answer, and
`checker` grades (`hash`: the response's "#### N" equals the gold as a number or a stripped string;
`exact`: the whole stripped response equals it; `math`: math-verify).

Both sides take their questions from rlreason's own loader on one composed Hydra config (`load`), so
TRL's dataset holds exactly the rows, ids, order and prompt text that rlreason's run reads, and both
grade with rlreason's Grader on the same checker. A missing file or field fails in `load`, before any
model is loaded.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from peer import task

from rlreason.data.record import Question

CONF = Path(__file__).resolve().parents[2] / "conf"
CHECKERS = ("hash", "exact", "math")


@dataclass(frozen=True)
class Source:
    train: str | None = None  # None: the built-in arith task
    test: str | None = None
    problem_field: str = "prompt"
    answer_field: str = "answer"
    checker: str = "hash"
    chat: bool = False  # the model's chat template on both sides (a chat model: --model of model=tiny_chat's kind)

    def __post_init__(self) -> None:
        if (self.train is None) != (self.test is None):
            raise ValueError("--train and --test go together (or neither, for the built-in task)")
        if self.checker not in CHECKERS:
            raise ValueError(f"checker {self.checker!r}: expected one of {', '.join(CHECKERS)}")

    @property
    def builtin(self) -> bool:
        return self.train is None

    def overrides(self) -> list[str]:
        """The data and reward overrides of rlreason's run (and of `load`)."""
        chat = f"data.use_chat_template={str(self.chat).lower()}"
        if self.builtin:
            return ["data=arith", *(f"data.arith.{k}={v}" for k, v in task.ARITH.items()), chat]
        return ["data=jsonl", "data.source=local", f"data.train_path={_quote(str(Path(self.train).resolve()))}",
                f"data.test_path={_quote(str(Path(self.test).resolve()))}",
                f"data.fields.problem={_quote(self.problem_field)}", f"data.fields.answer={_quote(self.answer_field)}",
                "data.prompt_template=null", chat, f"reward.checker={self.checker}"]

    def grader_task(self) -> str:
        return "arith" if self.builtin else self.checker

    def load(self) -> tuple[list[Question], list[Question], str | None]:
        """(train, test, prompt template) exactly as rlreason's run with `overrides()` loads them.
        Raises rlreason's DataError (file:line and what is wrong) on a bad file or a missing field."""
        from hydra import compose, initialize_config_dir

        from rlreason.config import register_configs
        from rlreason.data import load_questions, prompt_template

        register_configs()
        with initialize_config_dir(config_dir=str(CONF), version_base=None):
            cfg = compose("config", overrides=self.overrides())
        train, test = load_questions(cfg.data)
        return train, test, prompt_template(cfg.data)

    def record(self) -> dict[str, Any]:
        if self.builtin:
            return {"source": "builtin", **task.settings_record(), **({"chat": True} if self.chat else {})}
        return {"source": asdict(self)}


def prompt(q: Question, template: str | None, chat: bool = False) -> str | list[dict[str, str]]:
    """What TRL is given for `q`: rlreason's prompt text (format_prompt without a chat template), or with
    `chat` the conversation rlreason's chat prompt renders (TRL applies the same tokenizer's template to
    it, with the generation prompt)."""
    from rlreason.data.prompts import format_prompt

    # with `chat` the template is data.user_template (prompt_template's answer in chat mode): the user's turn
    return [{"role": "user", "content": format_prompt(q, template)}] if chat else format_prompt(q, template)


def _quote(value: str) -> str:
    """A Hydra override value: as is when plain, else single-quoted (Hydra's grammar escapes \\ and ')."""
    if re.fullmatch(r"[\w./+-]+", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
