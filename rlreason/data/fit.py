"""Do the task's prompts fit the model? Checked before the engine starts, on every prompt a run or an
eval will send, tokenized exactly as the engine gets them (rlreason.data.prompts.encode_prompts).

Two findings: prompts longer than the context leaves after the response (the engine would refuse them,
or cut every response short), and characters the tokenizer cannot encode (it reads them as its unknown
token, so the model never sees them). The first is always an error; the second when more than
UNKNOWN_SHARE of the prompts hold one (a rare symbol in a big dataset is tolerable, a model that cannot
read the task is not), else a warning.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rlreason.config import ConfigError
from rlreason.data.prompts import encode_prompts, format_prompt
from rlreason.data.record import Question

UNKNOWN_SHARE = 0.01
SHOWN = 12  # unknown characters shown in a message
INSPECTED = 200  # prompts whose unknown characters are looked up (all are counted)
MODELS = Path(__file__).resolve().parents[2] / "conf" / "model"
log = logging.getLogger(__name__)


@dataclass
class PromptStats:
    """The prompt lengths of one split, and its prompts' characters the tokenizer cannot encode."""

    split: str
    lengths: list[int]
    unknown_prompts: int = 0
    unknown_chars: Counter = field(default_factory=Counter)  # in the questions: char -> inspected prompts holding it
    template_chars: set[str] = field(default_factory=set)  # in what the template (or chat template) adds

    @property
    def longest(self) -> int:
        return max(self.lengths, default=0)

    def too_long(self, room: int) -> int:
        return sum(n > room for n in self.lengths)


def measure_prompts(split: str, questions: list[Question], tokenizer, template: str | None,
                    use_chat_template: bool) -> PromptStats:
    """One batched tokenizer call over the split (~0.4 s for 20,000 arith prompts on one core)."""
    texts = [format_prompt(q, template, tokenizer, use_chat_template) for q in questions]
    ids = encode_prompts(texts, tokenizer, use_chat_template)
    stats = PromptStats(split, [len(x) for x in ids])
    unk = tokenizer.unk_token_id
    if unk is None:  # byte-level tokenizers encode every character
        return stats
    holding = [(q, t) for q, t, x in zip(questions, texts, ids) if unk in x]
    stats.unknown_prompts = len(holding)
    for q, text in holding[:INSPECTED]:
        start = max(text.find(q.problem), 0)  # the question's own text, inside the template's
        end = start + len(q.problem) if q.problem in text else len(text)
        spans = unknown_spans(text, tokenizer, unk, use_chat_template)
        stats.unknown_chars.update({text[a:b] for a, b in spans if start <= a < end})
        stats.template_chars.update(text[a:b] for a, b in spans if not start <= a < end)
    return stats


def unknown_spans(text: str, tokenizer, unk: int, use_chat_template: bool) -> list[tuple[int, int]]:
    """Where `text` holds what the tokenizer reads as `unk`: from its offsets when it is a fast
    tokenizer, else the characters it cannot encode on their own."""
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, add_special_tokens=not use_chat_template, return_offsets_mapping=True, verbose=False)
        return [(a, b) for i, (a, b) in zip(enc["input_ids"], enc["offset_mapping"]) if i == unk and b > a]
    bad = {c for c in set(text) if unk in tokenizer(c, add_special_tokens=False)["input_ids"]}
    return [(i, i + 1) for i, c in enumerate(text) if c in bad]


def check_prompts(stats: list[PromptStats], *, context: int, max_new_tokens: int, budget: str, lower: str,
                  hint: str | None = None) -> None:
    """ConfigError when a prompt is longer than `context - max_new_tokens` tokens, or when more than
    UNKNOWN_SHARE of the prompts hold characters the tokenizer cannot encode; a warning for fewer.
    `budget` says what asks for `max_new_tokens` ("rollout.max_new_tokens=80 for the response"), `lower` the setting to
    lower; `hint` (tiny_hint's) replaces the generic advice."""
    room = context - max_new_tokens
    long = [f"{s.split} has {s.too_long(room):,} of {len(s.lengths):,} longer (the longest {s.longest:,} tokens)"
            for s in stats if s.too_long(room)]
    total = sum(len(s.lengths) for s in stats)
    unknown = sum(s.unknown_prompts for s in stats)
    unread, template = "", []
    if unknown:
        chars = sum((s.unknown_chars for s in stats), Counter())
        shown = [repr(c) for c, _ in sorted(chars.items(), key=lambda kv: (-kv[1], kv[0]))[:SHOWN]]
        if len(chars) > SHOWN:
            shown.append(f"and {len(chars) - SHOWN} more")
        template = sorted(set().union(*(s.template_chars for s in stats)))
        found = [f"{' '.join(shown)} in the questions"] if shown else []
        if template:
            found.append(f"{' '.join(map(repr, template[:SHOWN]))}{' ...' if len(template) > SHOWN else ''} in the "
                         "prompt template")
        where = ", ".join(f"{s.unknown_prompts:,} of {len(s.lengths):,} {s.split}" for s in stats if s.unknown_prompts)
        unread = (f"{where} prompts hold characters the tokenizer cannot encode (it reads them as its unknown "
                  f"token): {', '.join(found)}")
    problems, advice = [], []
    if long:
        problems.append(f"prompts too long: the model's context of {context:,} tokens leaves {room:,} for a prompt after "
                        f"{budget}, and {', '.join(long)}")
        advice.append(f"lower {lower}, raise model.max_model_len (up to the model's own context) or leave the long "
                      "questions out of the data")
    if unknown > UNKNOWN_SHARE * total:
        problems.append(unread)
        advice.append("use a model whose tokenizer reads them (model=hf model.path=..., model.tokenizer=...)"
                      + (" or another data.prompt_template" if template else ""))
    if problems:
        what = "; or ".join(advice)
        raise ConfigError(". ".join(problems) + ". " + (hint or what[0].upper() + what[1:]))
    if unknown:
        log.warning("%s; the model does not see them", unread)


def tiny_hint(model_name: str, data_name: str, context: int) -> str | None:
    """With the builtin tiny model on another task than arith: use another model (the task's presets)."""
    if model_name != "tiny" or data_name == "arith":
        return None
    presets = sorted(p.stem for p in MODELS.glob(f"*_{data_name}.yaml"))
    named = (f", or a preset for data={data_name} (" + ", ".join(f"model={p}" for p in presets) + "; conf/model/)"
             if presets else "")
    return (f"model=tiny is the builtin arith model (a {context}-token context, a vocabulary of the arith symbols): "
            f"for data={data_name} use another model: model=hf model.path=HUB_ID_OR_DIR{named}")
