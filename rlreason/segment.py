"""Reasoning steps: the unit of VinePPO's credit assignment.

A response is cut into steps (exact char spans that cover it); every step boundary is a state whose
value VinePPO estimates with Monte-Carlo continuations. So boundaries must be meaningful (never inside
a formula) and few enough to afford: tiny fragments are merged, and over-long steps split.

GSM8K and arith write one step per line. MATH solutions are cut at line and sentence ends outside
maths mode (`$..$`, `$$..$$`, `\\[..\\]`, `\\(..\\)`, `\\begin{..}..\\end{..}`) or an `[asy]` figure.
"""

from __future__ import annotations

import re
from bisect import bisect_left

MIN_CHARS = 10  # math: a shorter step ("Thus,", "Step 2:") joins the next one
MAX_CHARS = 500  # math: a longer step is split at a space, outside maths mode where there is one
LINE_TASKS = ("gsm8k", "arith", "hash", "exact")  # hash/exact: data=jsonl checkers, one step a line


def segment(text: str, task: str) -> list[tuple[int, int]]:
    """Steps of `text` as (start, end) char spans: contiguous, non-empty, covering the whole text."""
    if not text:
        return []
    if task in LINE_TASKS:
        cuts, outside = [m.end() for m in re.finditer("\n", text)], None
    elif task == "math":
        outside = _outside_math(text)
        cuts = _math_cuts(text, outside)
    else:
        raise ValueError(f"unknown task {task!r}: expected math, {', '.join(LINE_TASKS)}")
    bounds = [0] + [c for c in cuts if 0 < c < len(text)] + [len(text)]
    spans = _merge(text, list(zip(bounds, bounds[1:])), MIN_CHARS if outside is not None else 0)
    if outside is None:
        return spans
    return [piece for span in spans for piece in _split_long(text, span, outside)]


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
    """Cut after every newline, and after every sentence end (`.?!`, maybe inside a closing `$` or `)`) plus
    its spaces, wherever the cut falls outside maths mode."""
    cuts = []
    for i, c in enumerate(text):
        if c == "\n" and outside[i + 1]:
            cuts.append(i + 1)
        elif c in " \t" and outside[i] and i > 0 and text[i - 1] not in " \t":
            k = i - 1
            while k > 0 and text[k] in "$)" and i - k <= 2:  # `$x=3.$` and `(..3.)` end sentences too
                k -= 1
            if text[k] in ".?!":
                j = i
                while j < len(text) and text[j] in " \t":
                    j += 1
                if j < len(text) and text[j] != "\n" and outside[j]:
                    cuts.append(j)
    return cuts


def _merge(text: str, spans: list[tuple[int, int]], min_chars: int) -> list[tuple[int, int]]:
    """Whitespace-only spans join the step before (the blank line ends it). Shorter ones than
    `min_chars` gather with what follows (a header belongs to what it introduces) until the gathered
    text is long enough; a short tail joins the last step."""
    out: list[tuple[int, int]] = []
    start, has_text = None, False  # the pending short spans
    for a, b in spans:
        blank = text[a:b].isspace()
        if blank and out and start is None:
            out[-1] = (out[-1][0], b)
            continue
        start, has_text = (a if start is None else start), has_text or not blank
        if has_text and b - start >= min_chars:
            out.append((start, b))
            start, has_text = None, False
    if start is not None:
        out[-1:] = [(out[-1][0] if out else start, len(text))]
    return out


def _split_long(text: str, span: tuple[int, int], outside: bytearray) -> list[tuple[int, int]]:
    """Split a step over MAX_CHARS after the last space in reach, preferring one outside maths mode;
    a hard cut only when there is no space at all. Each piece keeps at least MIN_CHARS."""
    a, b = span
    pieces = []
    while b - a > MAX_CHARS:
        lo, hi = a + MIN_CHARS, min(a + MAX_CHARS, b - MIN_CHARS)
        spaces = [j for j in range(hi, lo, -1) if text[j - 1].isspace()]
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


def step_token_ends(text: str, offsets: list[tuple[int, int]], task: str) -> list[int]:
    """For each step of `text`, the exclusive index of the token where it ends.

    A step boundary inside a token moves to the end of that token; steps that end up empty of tokens
    are dropped. The last entry is always len(offsets): the state after step t is
    prompt + response_ids[:ends[t]].
    """
    token_ends = [e for _, e in offsets]
    ends: list[int] = []
    for _, b in segment(text, task)[:-1]:
        k = bisect_left(token_ends, b) + 1  # fewest tokens whose text reaches char b
        if k < len(offsets) and (not ends or k > ends[-1]):
            ends.append(k)
    return ends + [len(offsets)]
