import json
import os
import statistics
from collections import Counter
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlreason.segment import MAX_CHARS, MIN_CHARS, segment, step_token_ends, token_char_offsets

DATA = Path(os.environ.get("RLREASON_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real data folder {DATA} is absent")
TASKS = ("math", "gsm8k", "arith")
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
@given(st.one_of(texts, big_texts), st.sampled_from(TASKS))
def test_segment_covers_text_exactly(text, task):
    check_cover(text, segment(text, task))


def test_line_tasks():
    text = "3a+5=8\n8b*2=6\n\n6c-7=9\n#### 9"
    assert [text[a:b] for a, b in segment(text, "arith")] == ["3a+5=8\n", "8b*2=6\n\n", "6c-7=9\n", "#### 9"]
    assert segment("\n\nab\n", "gsm8k") == [(0, 5)]
    assert segment("", "math") == []


def test_math_never_cuts_inside_maths():
    text = CORPUS[0]
    steps = [text[a:b] for a, b in segment(text, "math")]
    assert steps == ["We have $x = 3.5$ so $2x = 7.$  ",
                     "Then \\[y = 1. \\quad z = 2.\\]Hence $$a\n\nb$$ and done!"]
    text = CORPUS[1]
    steps = [text[a:b] for a, b in segment(text, "math")]
    # the align block stays whole; `$5 and $6.` are dollars, closed at the blank line
    assert steps[0].startswith("Let \\begin{align*}") and steps[0].endswith("\\end{align*} So costs $5 and $6.\n\n")
    assert steps[1:] == ["The answer is 11. "]


def test_math_merges_tiny_and_splits_long():
    text = "Thus,\nx is 3.\nStep 2:\nwe get $y=4$ and so on.\n\n"
    steps = [text[a:b] for a, b in segment(text, "math")]
    assert steps == ["Thus,\nx is 3.\n", "Step 2:\nwe get $y=4$ and so on.\n\n"]
    # a formula with spaces straddles the 1500th char; then a run with no space at all
    long = "word " * 250 + "$" + "a + " * 100 + "b$ " + "word " * 60 + "x" * 1200
    spans = segment(long, "math")
    check_cover(long, spans)
    assert all(b - a <= MAX_CHARS for a, b in spans) and all(b - a >= MIN_CHARS for a, b in spans)
    inside = range(long.index("$") + 1, long.rindex("$"))
    assert not any(b in inside for _, b in spans)  # the space before `$` wins over those inside it
    assert long.index("$") in [b for _, b in spans]


# --- tokens ---


@cache
def tokenizers() -> dict:
    """Three real tokenizer families, trained in-memory (no hub): byte-level BPE (GPT-2/Llama-3/Qwen),
    SentencePiece-style Metaspace BPE (Llama-2/DeepSeekMath), and the tiny model's per-character one."""
    from tokenizers import SentencePieceBPETokenizer, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from rlreason.model.tiny import make_tokenizer

    corpus = CORPUS * 20
    byte = Tokenizer(models.BPE())
    byte.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    byte.decoder = decoders.ByteLevel()
    byte.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=400, special_tokens=["</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    sp = SentencePieceBPETokenizer()
    sp.train_from_iterator(corpus, vocab_size=300, special_tokens=["<unk>", "</s>"])
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


def check_ends(text: str, offsets, task: str) -> list[int]:
    ends = step_token_ends(text, offsets, task)
    assert ends[-1] == len(offsets) and all(a < b for a, b in zip(ends, ends[1:])) and ends[0] >= min(1, len(offsets))
    boundaries = {b for _, b in segment(text, task)}
    for k in ends[:-1]:  # each state ends on the token that contains (or ends at) a step boundary
        start, end = offsets[k - 1]
        assert any(start < b <= end for b in boundaries) or end in boundaries
    return ends


@settings(max_examples=150, deadline=None)
@given(texts, st.sampled_from(["bytelevel", "metaspace"]), st.sampled_from(TASKS), st.booleans())
def test_offsets_and_ends(text, name, task, eos):
    tok = tokenizers()[name]
    ids = tok.encode(text, add_special_tokens=False) + ([tok.eos_token_id] if eos else [])
    decoded, offsets = check_offsets(tok, ids)
    check_ends(decoded, offsets, task)


def test_multibyte_characters_split_across_tokens():
    tok = tokenizers()["bytelevel"]
    ids = tok.encode("🎉日本", add_special_tokens=False)
    text, offsets = check_offsets(tok, ids)
    assert text == "🎉日本" and len(ids) > len(text)  # a character's bytes spread over several tokens
    assert any(a == b for a, b in offsets)  # ...so some tokens have no text of their own


def test_arith_states_end_at_lines():
    tok = tokenizers()["char"]
    text = "3a+5=8\n8b*2=6\n#### 6"
    ids = tok.encode(text, add_special_tokens=False) + [tok.eos_token_id]
    _, offsets = check_offsets(tok, ids)
    ends = step_token_ends(text, offsets, "arith")
    assert [tok.decode(ids[:k], skip_special_tokens=True) for k in ends[:-1]] == ["3a+5=8\n", "3a+5=8\n8b*2=6\n"]
    assert ends[-1] == len(ids) and step_token_ends("", [], "arith") == [0]


def test_boundary_inside_a_token_moves_to_its_end():
    offsets = [(0, 2), (2, 5), (5, 12)]  # "ab" "\ncd" " ef\ngh.": both newlines fall inside tokens
    assert step_token_ends("ab\ncd ef\ngh.", offsets, "gsm8k") == [2, 3]


# --- every real gold solution ---


def gold_solutions() -> dict[str, list[str]]:
    rows = {"math": [json.loads(line)["solution"] for line in open(DATA / "math500_test.jsonl")], "gsm8k": []}
    for split in ("train", "test"):
        rows["gsm8k"] += [json.loads(line)["answer"] for line in open(DATA / f"gsm8k_{split}.jsonl")]
    return rows


@needs_data
@pytest.mark.parametrize("task", ["math", "gsm8k"])
def test_gold_solutions_step_distribution(task):
    counts, lengths = [], []
    for text in gold_solutions()[task]:
        spans = segment(text, task)
        check_cover(text, spans)
        if task == "math":
            assert all(b - a <= MAX_CHARS for a, b in spans)
        counts.append(len(spans))
        lengths += [b - a for a, b in spans]
    hist = Counter(min(c, 20) for c in counts)
    print(f"\n{task}: {len(counts)} gold solutions, steps min/median/max = {min(counts)}/"
          f"{statistics.median(counts)}/{max(counts)}, step chars median {statistics.median(lengths)} "
          f"max {max(lengths)}")
    for c in sorted(hist):
        print(f"  {c:>3}{'+' if c == 20 else ' '} steps | {'#' * max(1, hist[c] * 60 // max(hist.values()))} {hist[c]}")
