import json
import os
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlreason.config import StepsConfig
from rlreason.segment import MAX_CHARS, MIN_CHARS, segment, step_token_ends, token_char_offsets

SENTENCES = StepsConfig(rule="sentences")

DATA = Path(os.environ.get("RLREASON_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real data folder {DATA} is absent")
TASKS = ("math", "gsm8k", "arith")
RULES = ("vineppo", "lines", "sentences")
CORPUS = [
    "We have $x = 3.5$ so $2x = 7.$  Then \\[y = 1. \\quad z = 2.\\]Hence $$a\n\nb$$ and done!",
    "Let \\begin{align*} a &= 1. \\\\\n b &= 2. \\end{align*} So costs $5 and $6.\n\nThe answer is 11. ",
    "Janet sells 16 - 3 - 4 = 9 duck eggs a day.\nShe makes 9 * 2 = $18.\n#### 18",
    "héllo wörld π ≤ 3 日本語 🎉 \\(x. y\\) (done.) end",
]
# Texts built from the pieces segmentation reacts to: delimiters, escapes, sentence ends, newlines.
texts = st.lists(st.sampled_from(
    ["$", "$$", "\\[", "\\]", "\\(", "\\)", "\\begin{a}", "\\end{a}", "\\$", ". ", "! ", "\n", "\n\n", " ",
     "x", "abc def", "1.5", "é", "日本", "🎉", "(", ")", "\\"]), max_size=60).map("".join)
big_texts = st.builds(lambda a, n, b: a + "word " * n + b, texts, st.integers(0, 300), texts)


def check_cover(text: str, spans: list[tuple[int, int]]) -> None:
    assert "".join(text[a:b] for a, b in spans) == text
    assert all(b > a for a, b in spans)
    assert all(s[1] == t[0] for s, t in zip(spans, spans[1:]))


@settings(max_examples=300, deadline=None)
@given(st.one_of(texts, big_texts), st.sampled_from(TASKS), st.sampled_from(("auto",) + RULES))
def test_segment_covers_text_exactly(text, task, rule):
    check_cover(text, segment(text, task, StepsConfig(rule=rule)))


def test_lines_rule_is_vineppos_gsm8k_rule():
    # The newline opens the next step; the answer line stays in the last step (tasks/gsm8k.py).
    text = "3a+5=8\n8b*2=6\n\n6c-7=9\n#### 9"
    assert [text[a:b] for a, b in segment(text, "arith")] == ["3a+5=8", "\n8b*2=6", "\n\n6c-7=9\n#### 9"]
    assert [text[a:b] for a, b in segment(text, "gsm8k", StepsConfig(answer_prefix=None))] == [
        "3a+5=8", "\n8b*2=6", "\n\n6c-7=9", "\n#### 9"]
    assert segment("\n\nab\n", "gsm8k") == [(0, 5)]  # leading and trailing blank lines join the only step
    assert segment("a\n\n\n#### 1", "gsm8k") == [(0, 10)]  # ... as do blank lines before the answer
    assert segment("", "math") == []
    with pytest.raises(ValueError, match="unknown task"):
        segment("x", "chess")


def test_sentences_rule_never_cuts_inside_maths():
    text = CORPUS[0]
    steps = [text[a:b] for a, b in segment(text, "math", SENTENCES)]
    assert steps == ["We have $x = 3.5$ so $2x = 7.$",
                     "  Then \\[y = 1. \\quad z = 2.\\]Hence $$a\n\nb$$ and done!"]
    text = CORPUS[1]
    steps = [text[a:b] for a, b in segment(text, "math", SENTENCES)]
    # the align block stays whole; `$5 and $6.` are dollars, closed at the blank line
    assert steps[0].startswith("Let \\begin{align*}") and steps[0].endswith("\\end{align*} So costs $5 and $6.")
    assert steps[1:] == ["\n\nThe answer is 11. "]


def test_sentences_rule_merges_tiny_and_splits_long():
    text = "Thus,\nx is 3.\nStep 2:\nwe get $y=4$ and so on.\n\n"
    steps = [text[a:b] for a, b in segment(text, "math", SENTENCES)]
    assert steps == ["Thus,\nx is 3.", "\nStep 2:\nwe get $y=4$ and so on.\n\n"]
    # a formula with spaces straddles the 1500th char; then a run with no space at all
    long = "word " * 250 + "$" + "a + " * 100 + "b$ " + "word " * 60 + "x" * 1200
    spans = segment(long, "math", SENTENCES)
    check_cover(long, spans)
    assert all(b - a <= MAX_CHARS for a, b in spans) and all(b - a >= MIN_CHARS for a, b in spans)
    inside = range(long.index("$") + 1, long.rindex("$"))
    assert not any(b in inside for _, b in spans)  # the space before `$` wins over those inside it
    assert long.index("$") - 1 in [b for _, b in spans]


# --- tokens ---


def gold_solutions() -> dict[str, list[str]]:
    rows = {"math": [json.loads(line)["solution"] for line in open(DATA / "math500_test.jsonl")], "gsm8k": []}
    for split in ("train", "test"):
        rows["gsm8k"] += [json.loads(line)["answer"] for line in open(DATA / f"gsm8k_{split}.jsonl")]
    return rows


@cache
def training_lines() -> list[str]:
    """A few hundred lines of real MATH and GSM8K solutions when the data is here, else the CORPUS."""
    if not DATA.is_dir():
        return CORPUS * 20
    gold = gold_solutions()
    return CORPUS + [line for text in gold["math"][:150] + gold["gsm8k"][:150] for line in text.split("\n")]


@cache
def tokenizers() -> dict:
    """Three real tokenizer families, trained in-memory in a second (no hub): byte-level BPE (GPT-2/Llama-3/
    Qwen/DeepSeek), SentencePiece-style Metaspace BPE (Llama-2), and the tiny model's per-character one."""
    from tokenizers import SentencePieceBPETokenizer, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from rlreason.model.tiny import make_tokenizer

    corpus = training_lines()
    byte = Tokenizer(models.BPE())
    byte.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    byte.decoder = decoders.ByteLevel()
    byte.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=1000, special_tokens=["</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    sp = SentencePieceBPETokenizer()
    sp.train_from_iterator(corpus, vocab_size=1000, special_tokens=["<unk>", "</s>"])
    return {
        "bytelevel": PreTrainedTokenizerFast(tokenizer_object=byte, eos_token="</s>"),
        "metaspace": PreTrainedTokenizerFast(tokenizer_object=sp._tokenizer, eos_token="</s>", unk_token="<unk>"),
        "char": make_tokenizer(),
    }


def check_offsets(tok, ids: list[int]) -> tuple[str, list[tuple[int, int]]]:
    offsets = token_char_offsets(tok, ids)
    text = tok.decode(ids, skip_special_tokens=True)
    assert len(offsets) == len(ids)
    assert "".join(text[a:b] for a, b in offsets) == text
    assert all(a <= b for a, b in offsets) and all(s[1] == t[0] for s, t in zip(offsets, offsets[1:]))
    return text, offsets


def check_ends(text: str, offsets, task: str, steps: StepsConfig | None = None) -> list[int]:
    """Each state ends where the reference puts it: a token belongs to the step holding its first char
    (math_episode_generator_with_mc_advantages.py `_compute_token_advantages`), so a boundary inside a
    token moves to that token's end. Returns the state ends."""
    ends = step_token_ends(text, offsets, task, steps)
    assert ends[-1] == len(offsets) and all(a < b for a, b in zip(ends, ends[1:])) and ends[0] >= min(1, len(offsets))
    starts = [a for a, b in offsets]
    for _, b in segment(text, task, steps)[:-1]:
        owner = max([k for k, a in enumerate(starts) if a < b and offsets[k][1] > a], default=None)
        if owner is not None and owner + 1 < len(offsets) and offsets[owner][1] > 0:
            assert owner + 1 in ends, (text[:b], b, offsets[owner])
    return ends


@settings(max_examples=150, deadline=None)
@given(texts, st.sampled_from(["bytelevel", "metaspace"]), st.sampled_from(TASKS), st.sampled_from(("auto",) + RULES),
       st.booleans())
def test_offsets_and_ends(text, name, task, rule, eos):
    tok = tokenizers()[name]
    ids = tok.encode(text, add_special_tokens=False) + ([tok.eos_token_id] if eos else [])
    decoded, offsets = check_offsets(tok, ids)
    check_ends(decoded, offsets, task, StepsConfig(rule=rule))


@needs_data
@pytest.mark.parametrize("name", ["bytelevel", "metaspace"])
@pytest.mark.parametrize("task", ["math", "gsm8k"])
def test_boundaries_before_a_space_are_token_boundaries(name, task):
    """Steps cut before whitespace, so the state never swallows the next sentence's first word: SentencePiece
    `▁The` and byte-level `ĠThe` start *at* the space. Checked on real gold solutions (other than those
    the tokenizers were trained on), for the default rule and the `sentences` option."""
    tok = tokenizers()[name]
    texts = gold_solutions()[task][200:300]
    checked = 0
    for steps in (None, SENTENCES if task == "math" else None):
        for text in texts:
            ids = tok.encode(text, add_special_tokens=False)
            decoded, offsets = check_offsets(tok, ids)
            if decoded != text:  # a char the small vocabulary lacks (<unk>): not a text it could generate
                continue
            ends = check_ends(decoded, offsets, task, steps)
            token_starts = {a: k for k, (a, _) in enumerate(offsets)}
            for _, b in segment(text, task, steps)[:-1]:
                if text[b] == " ":
                    assert b in token_starts and token_starts[b] in ends, (name, text[max(0, b - 30):b + 10])
                    checked += 1
    assert checked > 20 if task == "math" else True  # GSM8K cuts at newlines only


def test_a_cut_after_the_space_would_swallow_the_next_word():
    """What the rule fixes: the boundary after `. ` lands inside `▁Then` and moves one token late."""
    tok = tokenizers()["metaspace"]
    text = "So x is 3. Then y is 4."
    ids = tok.encode(text, add_special_tokens=False)
    _, offsets = check_offsets(tok, ids)
    ends = step_token_ends(text, offsets, "math", SENTENCES)
    assert tok.decode(ids[:ends[0]]) == "So x is 3."
    late = [k + 1 for k, (a, b) in enumerate(offsets) if a < text.index("Then") <= b - 1][0]
    assert tok.decode(ids[:late]).endswith("Then")  # where a cut after the space would have put the state


def test_multibyte_characters_split_across_tokens():
    tok = tokenizers()["bytelevel"]
    ids = tok.encode("🎉日本", add_special_tokens=False)
    text, offsets = check_offsets(tok, ids)
    assert text == "🎉日本" and len(ids) > len(text)  # a character's bytes spread over several tokens
    assert any(a == b for a, b in offsets)  # ...so some tokens have no text of their own


def test_arith_states_end_before_lines():
    tok = tokenizers()["char"]
    text = "3a+5=8\n8b*2=6\n#### 6"
    ids = tok.encode(text, add_special_tokens=False) + [tok.eos_token_id]
    _, offsets = check_offsets(tok, ids)
    ends = step_token_ends(text, offsets, "arith")
    # the answer line joins the last step: 2 states, not 3
    assert [tok.decode(ids[:k], skip_special_tokens=True) for k in ends[:-1]] == ["3a+5=8"]
    assert ends[-1] == len(ids) and step_token_ends("", [], "arith") == [0]


def test_boundary_inside_a_token_moves_to_its_end():
    offsets = [(0, 3), (3, 5), (5, 12)]  # "ab\n" "cd" " ef\ngh.": both newlines fall inside tokens
    assert step_token_ends("ab\ncd ef\ngh.", offsets, "gsm8k") == [1, 3]
