"""rlreason/data/fit.py: prompts longer than the context leaves, characters the tokenizer cannot encode."""

from __future__ import annotations

import logging
import time

import pytest

from rlreason.config import ConfigError
from rlreason.data import Question
from rlreason.data.arith import ArithSpec, generate_splits
from rlreason.data.fit import check_prompts, measure_prompts, tiny_hint
from rlreason.data.prompts import ARITH_TEMPLATE, VINEPPO_TEMPLATE
from rlreason.model.tiny import make_tokenizer
from rlreason.rollout import Roller


@pytest.fixture(scope="module")
def tok():
    return make_tokenizer()  # the tiny model's: one token per arith character, <unk> for the rest


def q(i: int, problem: str) -> Question:
    return Question(id=f"q{i}", problem=problem, answer="0")


def check(stats, context=64, max_new_tokens=16, hint=None):
    check_prompts(stats, context=context, max_new_tokens=max_new_tokens, lower="rollout.max_new_tokens",
                  budget=f"rollout.max_new_tokens={max_new_tokens} for the response", hint=hint)


def test_lengths_are_the_rollers(tok):
    """The lengths checked are those of the ids the engine gets (template, BOS), chat template or not."""
    qs = [q(0, "3a+4b"), q(1, "7c*2=" * 5)]
    chat_tok = make_tokenizer()
    chat_tok.chat_template = "{% for m in messages %}<s>Q:{{ m.content }}\n{% endfor %}"  # writes its own BOS
    for template, chat in ((ARITH_TEMPLATE, False), (None, False), (VINEPPO_TEMPLATE, True)):
        t = chat_tok if chat else tok
        roller = Roller(None, t, None, task="arith", template=template, use_chat_template=chat, temperature=1.0,
                        top_p=1.0, max_new_tokens=8)
        assert measure_prompts("train", qs, t, template, chat).lengths == [len(roller.prompt_ids(x)) for x in qs]
    assert measure_prompts("train", qs, tok, ARITH_TEMPLATE, False).lengths == [1 + 6, 1 + 26]  # BOS + chars


def test_too_long(tok):
    train = measure_prompts("train", [q(i, "3a+4b" * n) for i, n in enumerate((1, 12, 20))], tok, None, False)
    test = measure_prompts("test", [q(9, "1+2")], tok, None, False)
    check([train, test], context=128, max_new_tokens=16)  # the longest: 101 tokens of 112
    with pytest.raises(ConfigError) as info:
        check([train, test], context=64, max_new_tokens=16)
    msg = str(info.value)
    assert msg.startswith("prompts too long: the model's context of 64 tokens leaves 48 for a prompt after "
                          "rollout.max_new_tokens=16 for the response, and train has 2 of 3 longer (the longest 101 "
                          "tokens)."), msg
    assert "test has" not in msg and "cannot encode" not in msg
    assert "Lower rollout.max_new_tokens, raise model.max_model_len" in msg
    # exactly the room is fine: 61 + 3 = 64
    check([measure_prompts("train", [q(0, "3a+4b" * 12)], tok, None, False)], context=64, max_new_tokens=3)


def test_unknown_characters(tok, caplog):
    latex = [q(i, f"Find $\\frac{{{i}}}{{2}}$ of 3a") for i in range(3)]
    fine = [q(10 + i, "3a+4b") for i in range(500)]
    stats = measure_prompts("train", latex + fine, tok, None, False)
    assert stats.unknown_prompts == 3 and set(stats.unknown_chars) == set("F$\\{}")
    assert stats.unknown_chars["$"] == 3
    with pytest.raises(ConfigError) as info:  # 3 of 5 prompts: the model cannot read the task
        check([measure_prompts("train", latex + fine[:2], tok, None, False)], hint="use another model")
    msg = str(info.value)
    assert msg.startswith("3 of 5 train prompts hold characters the tokenizer cannot encode (it reads them as its "
                          "unknown token): '$' 'F' '\\\\' '{' '}' in the questions. use another model"), msg
    # The template's own are told apart (here the template is the only problem).
    templated = measure_prompts("train", fine[:4], tok, "Q: {problem} ?", False)
    assert templated.unknown_prompts == 4 and not templated.unknown_chars and templated.template_chars == {"?"}
    with pytest.raises(ConfigError, match=r"4 of 4 train prompts hold .*unknown token\): '\?' in the prompt template\. "):
        check([templated])
    with caplog.at_level(logging.WARNING):  # 3 of 503: under 1%, a warning
        check([stats])
    assert "3 of 503 train prompts hold characters the tokenizer cannot encode" in caplog.text


def test_tiny_hint():
    hint = tiny_hint("tiny", "math", 256)
    assert hint and "model=hf model.path=" in hint and "model=rho1b_sft_math" in hint
    assert "model=deepseekmath7b_sft_math" in hint and "a 256-token context" in hint
    assert "model=rho1b_sft_gsm8k" in (tiny_hint("tiny", "gsm8k", 256) or "")
    assert "preset" not in (tiny_hint("tiny", "jsonl", 256) or "")
    assert tiny_hint("tiny", "arith", 256) is None and tiny_hint("rho1b_sft_math", "math", 2048) is None


def test_cheap_on_the_arith_train_split(tok):
    """`make run`'s 20,000 arith questions: a second or so (one batched tokenizer call)."""
    train, _ = generate_splits(20_000, 0, ArithSpec(), seed=0)
    start = time.perf_counter()
    stats = measure_prompts("train", train, tok, ARITH_TEMPLATE, False)
    check([stats], context=256, max_new_tokens=80)
    elapsed = time.perf_counter() - start
    assert stats.unknown_prompts == 0 and stats.longest < 40
    assert elapsed < 5, elapsed  # ~0.4 s on one idle core
