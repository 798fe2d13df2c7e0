"""Final-answer extraction from untrusted model text.

Everything here is linear in the text: `rfind` and single forward scans, and the one regex has only
literals and bounded repeats, so a megabyte of adversarial output cannot make it backtrack.
"""

from __future__ import annotations

import re

BOX_COMMANDS = ("\\boxed", "\\fbox")
_BRACE = re.compile(r"[{}]")
_BARE_ARG = re.compile(r"[^\s$]+")
_PHRASE = re.compile(r"(?:final answer|the answer)\s{0,8}(?:is|:)\s{0,8}:?", re.IGNORECASE)


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` / `\\fbox{...}` (balanced braces), or None.

    An unclosed last box (the response was cut mid-answer) gives None rather than an earlier box: the
    model's final word is the last one.
    """
    start, command = max((text.rfind(c), c) for c in BOX_COMMANDS)
    if start < 0:
        return None
    i = start + len(command)
    while i < len(text) and text[i] == " ":
        i += 1
    if i == len(text):
        return None
    if text[i] != "{":  # `\boxed 5`: the argument runs to the next space or `$`
        m = _BARE_ARG.match(text, i)
        return m.group(0) if m else None
    depth = 0
    for m in _BRACE.finditer(text, i):
        depth += 1 if m.group(0) == "{" else -1
        if depth == 0:
            return text[i + 1 : m.start()].strip() or None
    return None


def after_hashes(text: str) -> str | None:
    """What follows the last `####` on its line (GSM8K's and arith's final-answer marker)."""
    i = text.rfind("####")
    if i < 0:
        return None
    end = text.find("\n", i)
    return _clean(text[i + 4 : end if end >= 0 else len(text)])


def after_phrase(text: str) -> str | None:
    """X in the last "the answer is X" / "final answer: X", up to the end of its line or sentence."""
    last = None
    for m in _PHRASE.finditer(text):
        last = m
    if last is None:
        return None
    end = text.find("\n", last.end())
    line = text[last.end() : end if end >= 0 else len(text)]
    stop = line.find(". ")  # a sentence end; "3.5" has no space after its dot
    return _clean(line if stop < 0 else line[:stop])


def _clean(answer: str) -> str | None:
    answer = answer.strip().rstrip(".").strip()
    if len(answer) >= 2 and answer[0] == answer[-1] == "$":
        answer = answer.strip("$").strip()
    return answer or None


def whole(text: str) -> str | None:
    """The whole response, stripped (reward.checker=exact)."""
    return text.strip() or None


# Which marker a task's model is trained to write comes first; the others are fallbacks.
# hash and exact are data=jsonl's strict checkers (reward.checker): one marker, no fallback.
ORDER = {
    "math": (last_boxed, after_hashes, after_phrase),
    "gsm8k": (after_hashes, last_boxed, after_phrase),
    "arith": (after_hashes, last_boxed, after_phrase),
    "hash": (after_hashes,),
    "exact": (whole,),
}


def extract_answer(text: str, task: str) -> str | None:
    """The model's final answer in `text`, or None when it gave none."""
    for find in ORDER[task]:
        answer = find(text)
        if answer is not None:
            return answer
    return None
