"""Reasoning steps: the unit of VinePPO's credit assignment.

A response is cut into steps (exact char spans that cover it); every step boundary is a state whose
value VinePPO estimates with Monte-Carlo continuations. Rules (`data.steps.rule`):

- vineppo (MATH's default): the reference's MATH rule, see rlreason/segment_vineppo.py.
- lines (GSM8K's and arith's default): VinePPO's GSM8K rule (tasks/gsm8k.py
  `split_solution_into_intermediate_steps`): one step per line, and the answer line (`\n#### N`) stays in
  the last step, as do the blank lines before it.
- sentences (rlreason's earlier MATH rule, an option): cut at line and sentence ends outside maths mode
  (`$..$`, `$$..$$`, `\\[..\\]`, `\\(..\\)`, `\\begin{..}..\\end{..}`, `[asy]`), merge steps under
  MIN_CHARS, split steps over MAX_CHARS at a space.

Every rule cuts *before* whitespace, so a boundary's whitespace opens the next step, as in the reference:
SentencePiece (`▁The`) and byte-level BPE (`ĠThe`) glue the space to the next word's token, and a cut
after the space would land inside that token (and move the state one token late).
"""

from __future__ import annotations

import re
from bisect import bisect_left

from rlreason.config import StepsConfig
from rlreason.segment_vineppo import split_math_steps

MIN_CHARS = 10  # sentences: a shorter step ("Thus,", "Step 2:") joins the next one
MAX_CHARS = 500  # sentences: a longer step is split at a space, outside maths mode where there is one
RULES = ("vineppo", "lines", "sentences")
# hash/exact: data=jsonl checkers (`#### N` or a bare answer), one step a line;
# fn: a user's reward function (reward.fn) with no step rule of its data: one step a line;
# env: an environment's actions (env.cls), the states inside a turn one a line (turn boundaries are states anyway)
DEFAULT_RULE = {"math": "vineppo", "gsm8k": "lines", "arith": "lines", "hash": "lines", "exact": "lines",
                "fn": "lines", "env": "lines"}


def resolve_rule(task: str, steps: StepsConfig | None) -> str:
    rule = steps.rule if steps is not None else "auto"
    if rule == "auto":
        if task not in DEFAULT_RULE:
            raise ValueError(f"unknown task {task!r}: expected {', '.join(DEFAULT_RULE)}")
        return DEFAULT_RULE[task]
    if rule not in RULES:
        raise ValueError(f"unknown step rule {rule!r}: expected auto, {', '.join(RULES)}")
    return rule


def segment(text: str, task: str, steps: StepsConfig | None = None) -> list[tuple[int, int]]:
    """Steps of `text` as (start, end) char spans: contiguous, non-empty, covering the whole text."""
    if not text:
        return []
    steps = steps or StepsConfig()
    rule = resolve_rule(task, steps)
    if rule == "vineppo":
        starts = split_math_steps(text, steps.min_chars, steps.max_chars)
        return list(zip(starts, starts[1:]))
    if rule == "lines":
        return _lines(text, steps.answer_prefix)
    outside = _outside_math(text)
    bounds = [0] + [c for c in _math_cuts(text, outside) if 0 < c < len(text)] + [len(text)]
    spans = _merge(text, list(zip(bounds, bounds[1:])), MIN_CHARS)
    return [piece for span in spans for piece in _split_long(text, span, outside)]


def _lines(text: str, answer_prefix: str | None) -> list[tuple[int, int]]:
    """One step per line, the newline opening the next step. Blank lines join the next step (the
    reference keeps a lone "\n" as a step of its own: a state that teaches nothing); the answer line and
    the blank lines before it join the last step."""
    body = text.find(answer_prefix) if answer_prefix else -1
    body = len(text) if body < 0 else body
    cuts = [0]
    for m in re.finditer("\n", text[:body]):
        if text[cuts[-1]:m.start()].strip():  # the step before has text: a step ends here
            cuts.append(m.start())
    while len(cuts) > 1 and not text[cuts[-1]:body].strip():  # trailing blank lines join the last step
        cuts.pop()
    cuts.append(len(text))
    return list(zip(cuts, cuts[1:]))


def _outside_math(text: str) -> bytearray:
    """outside[i] = 1 when a cut just before char i would not fall inside maths mode (one linear scan)."""
    n = len(text)
    outside = bytearray(n + 1)
    closer = ""  # the delimiter that ends the open inline/display maths, "" when none is open
    envs = 0  # open \begin{..} environments
    i = 0
    while i < n:
        outside[i] = not closer and envs == 0
        c = text[i]
        step = 1
        if c == "\\" and i + 1 < n:
            nxt = text[i + 1]
            if text.startswith("begin{", i + 1):
                envs += 1
            elif text.startswith("end{", i + 1):
                envs = max(envs - 1, 0)
            elif not closer and nxt in "[(":
                closer = "\\]" if nxt == "[" else "\\)"
            elif closer == "\\" + nxt:
                closer = ""
            step = 2  # `\$`, `\\`, `\{`: an escaped char is never a delimiter
        elif c == "[" and text.startswith("[asy]", i):  # MATH's Asymptote figures: code, not sentences
            envs += 1
        elif c == "[" and text.startswith("[/asy]", i):
            envs = max(envs - 1, 0)
        elif c == "$":
            double = text.startswith("$$", i) and closer != "$"
            step = 2 if double else 1
            mark = "$$" if double else "$"
            closer = "" if closer == mark else (closer or mark)
        elif c == "\n" and closer in ("$", "\\)") and text.startswith("\n\n", i):
            closer = ""  # inline maths never spans a paragraph: this `$` was a dollar sign
        for j in range(i + 1, min(i + step, n)):
            outside[j] = 0
        i += step
    outside[n] = 1
    return outside


def _math_cuts(text: str, outside: bytearray) -> list[int]:
    """Cut before every newline, and before the spaces after every sentence end (`.?!`, maybe inside a
    closing `$` or `)`), wherever the cut falls outside maths mode."""
    cuts = []
    for i, c in enumerate(text):
        if c == "\n" and outside[i]:
            cuts.append(i)
        elif c in " \t" and outside[i] and i > 0 and text[i - 1] not in " \t":
            k = i - 1
            while k > 0 and text[k] in "$)" and i - k <= 2:  # `$x=3.$` and `(..3.)` end sentences too
                k -= 1
            if text[k] in ".?!":
                j = i
                while j < len(text) and text[j] in " \t":
                    j += 1
                if j < len(text) and text[j] != "\n" and outside[j]:
                    cuts.append(i)
    return cuts


def _merge(text: str, spans: list[tuple[int, int]], min_chars: int) -> list[tuple[int, int]]:
    """Whitespace-only spans, and ones shorter than `min_chars`, gather with what follows (a header
    belongs to what it introduces) until the gathered text is long enough; a short tail joins the last
    step."""
    out: list[tuple[int, int]] = []
    start, has_text = None, False  # the pending short spans
    for a, b in spans:
        blank = text[a:b].isspace()
        start, has_text = (a if start is None else start), has_text or not blank
        if has_text and b - start >= min_chars:
            out.append((start, b))
            start, has_text = None, False
    if start is not None:
        out[-1:] = [(out[-1][0] if out else start, len(text))]
    return out


def _split_long(text: str, span: tuple[int, int], outside: bytearray) -> list[tuple[int, int]]:
    """Split a step over MAX_CHARS before the last space in reach, preferring one outside maths mode;
    a hard cut only when there is no space at all. Each piece keeps at least MIN_CHARS."""
    a, b = span
    pieces = []
    while b - a > MAX_CHARS:
        lo, hi = a + MIN_CHARS, min(a + MAX_CHARS, b - MIN_CHARS)
        spaces = [j for j in range(hi, lo - 1, -1) if text[j].isspace()]
        cut = next((j for j in spaces if outside[j]), spaces[0] if spaces else hi)
        pieces.append((a, cut))
        a = cut
    return pieces + [(a, b)]


def token_char_offsets(tokenizer, token_ids: list[int], skip_special_tokens: bool = True) -> list[tuple[int, int]]:
    """(start, end) char span of each token in `decode(token_ids)`, by incremental decoding.

    Each new token is decoded together with the tokens since the last emitted text, as streaming
    detokenisers do, so a token whose text depends on its left neighbour (SentencePiece's leading space)
    decodes as it does in the whole sequence. A token that ends in half a UTF-8 character gets an empty
    span; the character goes to the token that completes it. `skip_special_tokens` must match how the
    engine made the response text (vLLM skips them). Should a tokenizer's clean-up rules make the pieces
    differ from the whole decode, falls back to decoding every prefix (quadratic, but exact).
    """
    def decode(ids: list[int]) -> str:
        return tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

    offsets: list[tuple[int, int]] = []
    pieces: list[str] = []
    prefix = read = length = 0
    for i in range(len(token_ids)):
        before, window = decode(token_ids[prefix:read]), decode(token_ids[prefix : i + 1])
        last = i == len(token_ids) - 1
        if not window.startswith(before):
            return _prefix_offsets(decode, token_ids)
        if window.endswith("\ufffd") and not last:
            offsets.append((length, length))  # incomplete character: wait for the next token
            continue
        pieces.append(window[len(before) :])
        offsets.append((length, length + len(pieces[-1])))
        length += len(pieces[-1])
        prefix, read = read, i + 1
    if "".join(pieces) != decode(token_ids):
        return _prefix_offsets(decode, token_ids)
    return offsets


def _prefix_offsets(decode, token_ids: list[int]) -> list[tuple[int, int]]:
    total = len(decode(token_ids))
    offsets, end = [], 0
    for i in range(len(token_ids)):
        new_end = min(max(end, len(decode(token_ids[: i + 1]))), total)
        offsets.append((end, new_end))
        end = new_end
    return offsets


def step_token_ends(text: str, offsets: list[tuple[int, int]], task: str, steps: StepsConfig | None = None
                    ) -> list[int]:
    """For each step of `text`, the exclusive index of the token where it ends.

    A step boundary inside a token moves to the end of that token; steps that end up empty of tokens
    are dropped. The last entry is always len(offsets): the state after step t is
    prompt + response_ids[:ends[t]].
    """
    token_ends = [e for _, e in offsets]
    ends: list[int] = []
    for _, b in segment(text, task, steps)[:-1]:
        k = bisect_left(token_ends, b) + 1  # fewest tokens whose text reaches char b
        if k < len(offsets) and (not ends or k > ends[-1]):
            ends.append(k)
    return ends + [len(offsets)]
