"""VinePPO's MATH step rule (Kazemnejad et al., 2024), rlreason's implementation.

The rule of McGill-NLP/VinePPO src/treetune/tasks/math_extract_steps_inplace.py `split_solution_inplace`
(the MATH task of the paper's configs: tasks/math_inplace_no_answer_prefix.jsonnet), in four passes over
the text with its maths masked (every `$..$`, `$$..$$`, `\\(..\\)`, `\\[..\\]`, `\\begin{x}..\\end{x}`,
tabular and `[asy]` block stands for one opaque 60-char placeholder, as in the reference, so lengths
measured on the masked text are the reference's):

1. `naive_split_by_newline_and_period`: cut before the whitespace after a sentence-ending `.` that is
   followed by a capital letter (not after a one- or two-letter abbreviation), and before every newline.
   A piece that is just "\\n", or shorter than `min_chars` and not ending in `.`, joins the next one.
2. `split_tailing_periods_in_placeholders`: also cut after maths that ends a sentence (`.$`, `.$$`, `.\\)`,
   `.\\]`); then a piece shorter than `min_chars` (unmasked) that does not end that way joins the next
   one (the last piece joins the one before).
3. `split_newline_in_placeholders`: cut before every newline inside display maths; a piece that is only
   an opening delimiter, or shorter than 3 chars, joins the next one (the last: the one before).
4. `try_to_break_very_long_parts`: a piece over `max_chars` is halved at the `,` / ` and ` / `:` / ` to `
   outside maths nearest its middle (both halves >= 40 chars), else inside maths at `,$` `,\\)` `,\\]` `=`
   `\\equiv` `+` `\\cancelto` (both halves >= 20 chars), again and again while a half is too long.

Every cut falls before whitespace, so the whitespace opens the next step: SentencePiece (`▁The`) and
byte-level BPE (`ĠThe`) glue a leading space to the next word, and a cut after the space would fall
inside that token. The reference fails on text whose masked maths nest (and then drops the trajectory);
here such maths is simply one masked span.
"""

from __future__ import annotations

import re

PLACEHOLDER_LEN = 60  # the reference's `<|PLACEHOLDER_{md5}_PLACEHOLDER|>`: lengths below count it so
# Masked in this order, each over the text with the earlier ones already masked (reference's order).
MATH_PATTERNS = [re.compile(p, re.DOTALL) for p in (
    r"\[asy\].*?\[/asy\]",
    r"\$\\begin\{tabular\}.*?\\end\{tabular\}\$",
    r"\\begin\{tabular\}.*?\\end\{tabular\}",
    r"\\\((.*?)\\\)",
    r"\\\[.*?\\\]",
    r"\$\$(.*?)\$\$",
    r"(?<!\\)\$(.*?[^\\])\$(?!\$)",
    r"\\begin\{([^}]*)\}.*?\\end\{\1\}",
)]
SENTENCE_END = re.compile(r"(?<!\b[A-Za-z]\.)(?<!\s[A-Za-z]\.)(?<!\s[A-Za-z][A-Za-z]\.)(?<=\.)(?=\s+[A-Z])")
MATH_SENTENCE_ENDS = (".$", ".$$", ".\\)", ".\\]")
OPENING = re.compile(r"\$|\$\$|\\\(|\\\[|\\begin\{[^}]*\}|\[asy\]")
LANGUAGE_BREAKS = ((re.compile(r","), 1), (re.compile(r"\sand\s"), 4), (re.compile(r":"), 1),
                   (re.compile(r"\sto\s"), 3))
MATH_BREAKS = ((re.compile(r",\$"), 2), (re.compile(r",\\\)"), 3), (re.compile(r",\\\]"), 3), (re.compile("="), 1),
               (re.compile(r"\\equiv"), 6), (re.compile(r"\+"), 1), (re.compile(r"\\cancelto"), 9))
MIN_LANGUAGE_HALF, MIN_MATH_HALF, MIN_DISPLAY_PIECE = 40, 20, 3
# A placeholder char must be no word char, space, capital, `.`, `,`, `:` or delimiter, so that it is inert
# in every pattern as the reference's `<|PLACEHOLDER_..|>` is; the first one absent from the text is used.
MASK_CHARS = "\x01\x02\x03\x04\x05\x06\x07"


class Masked:
    """`text` with its maths masked: each maths span becomes PLACEHOLDER_LEN mask chars. `starts[j]` /
    `ends[j]` are the original span of masked char j (a placeholder's chars all carry their maths')."""

    def __init__(self, text: str):
        self.text = text
        self.mark = next(c for c in MASK_CHARS if c not in text)
        masked, starts, ends = text, list(range(len(text))), list(range(1, len(text) + 1))
        for pattern in MATH_PATTERNS:
            found = list(pattern.finditer(masked))
            if not found:
                continue
            parts, new_starts, new_ends, pos = [], [], [], 0
            for m in found:
                a, b = m.span()
                parts += [masked[pos:a], self.mark * PLACEHOLDER_LEN]
                new_starts += starts[pos:a] + [starts[a]] * PLACEHOLDER_LEN
                new_ends += ends[pos:a] + [ends[b - 1]] * PLACEHOLDER_LEN
                pos = b
            parts.append(masked[pos:])
            masked, starts, ends = "".join(parts), new_starts + starts[pos:], new_ends + ends[pos:]
        self.masked, self.starts, self.ends = masked, starts, ends

    def orig(self, j: int) -> int:
        """Original index of a cut before masked char j (never inside a placeholder)."""
        return self.starts[j] if j < len(self.masked) else len(self.text)

    def maths(self, a: int, b: int) -> list[tuple[int, int]]:
        """Original (start, end) of every masked maths span within masked [a, b), in order."""
        out, j = [], a
        while j < b:
            if self.masked[j] == self.mark:
                out.append((self.starts[j], self.ends[j]))
                j += PLACEHOLDER_LEN
            else:
                j += 1
        return out


def split_math_steps(text: str, min_chars: int = 20, max_chars: int = 100) -> list[int]:
    """Step starts of `text` by VinePPO's MATH rule: [0, ..., len(text)], strictly increasing."""
    if not text:
        return [0]
    m = Masked(text)
    cuts = _sentences_and_lines(m.masked, min_chars)
    cuts = _maths_sentence_ends(m, cuts, min_chars)
    cuts = _lines_in_display_maths(m, cuts)
    out = [0]
    for a, b in zip(cuts, cuts[1:]):
        out += [a + k for k in _halve_long(text[a:b], max_chars)[1:]] if b - a > max_chars else [b]
    return out


def _merge_short(cuts: list[int], short) -> list[int]:
    """The reference's merge loop: a short piece joins the next one; the last joins the one before."""
    cuts, i = list(cuts), 0
    while i < len(cuts) - 1:
        if short(cuts[i], cuts[i + 1]) and len(cuts) > 2:
            cuts.pop(i if i == len(cuts) - 2 else i + 1)
        else:
            i += 1
    return cuts


def _sentences_and_lines(masked: str, min_chars: int) -> list[int]:
    """Pass 1 on the masked text: cut before the whitespace of a sentence end and before each newline."""
    cuts = sorted({0, len(masked)} | {m.start() for m in SENTENCE_END.finditer(masked)}
                  | {m.start() for m in re.finditer("\n", masked)})
    # A piece that is just "\n", or short and not ending a sentence, joins the next (never the last piece).
    out, i = list(cuts), 0
    while i < len(out) - 2:
        piece = masked[out[i]:out[i + 1]]
        if piece == "\n" or (not piece.endswith(".") and len(piece) < min_chars):
            out.pop(i + 1)
        else:
            i += 1
    return out


def _maths_sentence_ends(m: Masked, cuts: list[int], min_chars: int) -> list[int]:
    """Pass 2: cut after maths ending in a period; merge pieces shorter than min_chars (unmasked)."""
    new = [0]
    for a, b in zip(cuts, cuts[1:]):
        j = a
        while j < b:
            if m.masked[j] == m.mark:
                if m.text[m.starts[j]:m.ends[j]].endswith(MATH_SENTENCE_ENDS):
                    new.append(j + PLACEHOLDER_LEN)
                j += PLACEHOLDER_LEN
            else:
                j += 1
        new.append(b)

    def short(a: int, b: int) -> bool:
        piece = m.text[m.orig(a):m.orig(b)]
        return not piece.endswith(MATH_SENTENCE_ENDS) and len(piece) < min_chars

    return _merge_short(new, short)


def _lines_in_display_maths(m: Masked, cuts: list[int]) -> list[int]:
    """Pass 3, from masked cuts to original ones: cut before each newline inside maths; merge a bare
    opening delimiter or a piece under 3 chars."""
    text, new = m.text, [0]
    for a, b in zip(cuts, cuts[1:]):
        seen = set()
        for s, e in m.maths(a, b):
            if text[s:e] in seen:  # the reference expands all copies of a maths string at once: once
                continue
            seen.add(text[s:e])
            new += [s + k.start() for k in re.finditer("\n", text[s:e])]
        new.append(m.orig(b))

    def short(a: int, b: int) -> bool:
        piece = text[a:b]
        return bool(OPENING.fullmatch(piece.strip())) or len(piece) < MIN_DISPLAY_PIECE or piece == "\n"

    return _merge_short(new, short)


def _best_break(masked: str, breaks, min_half: int, orig=lambda j: j) -> int | None:
    """The first pattern whose match nearest the middle of `masked` leaves both halves >= min_half."""
    for pattern, width in breaks:
        positions = [k.start() + width for k in pattern.finditer(masked)]
        if not positions:
            continue
        pos = min(positions, key=lambda p: abs(p - (len(masked) - p)))  # first of equals, like the reference
        if min(orig(pos) - orig(0), orig(len(masked)) - orig(pos)) >= min_half:
            return pos
    return None


def _halve_long(part: str, max_chars: int) -> list[int]:
    """Pass 4 for one long piece: `break_part_as_much_as_possible`, returning local cut indices."""
    cuts = [0, len(part)]
    maths_range = [-1, 0]  # reference quirk: the span after the last maths break, in its piece's coordinates
    i = 0
    while i < len(cuts) - 1:
        a, b = cuts[i], cuts[i + 1]
        sub = part[a:b]
        if len(sub) <= max_chars:
            i += 1
            continue
        if not maths_range[0] <= a < maths_range[1]:
            sm = Masked(sub)
            pos = _best_break(sm.masked, LANGUAGE_BREAKS, MIN_LANGUAGE_HALF, sm.orig)
            if pos is not None:
                cuts.insert(i + 1, a + sm.orig(pos))
                continue
        pos = _best_break(sub, MATH_BREAKS, MIN_MATH_HALF)
        if pos is not None:
            maths_range[:] = [pos if maths_range[0] == -1 else min(maths_range[0], pos), max(maths_range[1], len(sub))]
            cuts.insert(i + 1, a + pos)
            continue
        i += 1
    return cuts
