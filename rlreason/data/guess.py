"""The hidden-number game's records (data=guess): a range, a hidden number in it, a turn budget.

    record   {"lo": 12, "hi": 47, "target": 30, "turns": 6}
    prompt   guess 12-47 in 6 turns
    episode  guess 29            (the model's turn, ended by "\\n")
             higher 30-47        (the environment's reply: rlreason.envs.guess.GuessNumber)
             guess 38
             lower 30-37
             ...

The budget is ceil(log2(size + 1)) turns (+ `slack`): exactly what binary search needs in the worst
case, so a perfect bisection always wins and one wasted or badly placed turn usually loses. The level is
the budget. Generated and seeded like arith and countdown: train and test are disjoint instances (range
and hidden number), the test split drawn first so growing n_train never changes it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

MAX_NUM = 999  # numbers of at most 3 digits: the game parses at most that many (rlreason.envs.guess)


@dataclass(frozen=True)
class GuessSpec:
    min_size: int = 8  # the range holds size = hi - lo + 1 numbers, drawn uniformly in min_size..max_size
    max_size: int = 50
    max_num: int = 99  # ranges lie within 1..max_num
    slack: int = 0  # turns beyond binary search's worst case

    def __post_init__(self) -> None:
        if not 2 <= self.min_size <= self.max_size <= self.max_num <= MAX_NUM:
            raise ValueError(f"guess: need 2 <= min_size <= max_size <= max_num <= {MAX_NUM}, "
                             f"got {self.min_size}..{self.max_size}, max_num {self.max_num}")
        if self.slack < 0:
            raise ValueError(f"guess: slack must be >= 0, got {self.slack}")


def budget(size: int, slack: int = 0) -> int:
    """Binary search's worst case on `size` numbers (plus `slack`): every size gets it exactly."""
    return math.ceil(math.log2(size + 1)) + slack


def problem_text(record: dict[str, Any]) -> str:
    return f"guess {record['lo']}-{record['hi']} in {record['turns']} turns"


def record_error(record: Any) -> str | None:
    """Why `record` is not a game record, or None: what GuessNumber checks before it plays."""
    if not isinstance(record, dict):
        return f"expected a dict, got {type(record).__name__}"
    for key in ("lo", "hi", "target", "turns"):
        value = record.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            return f"{key} must be an int, got {value!r}"
    lo, hi, target, turns = (record[k] for k in ("lo", "hi", "target", "turns"))
    if not 0 <= lo <= target <= hi <= MAX_NUM:
        return f"need 0 <= lo <= target <= hi <= {MAX_NUM}, got lo={lo} target={target} hi={hi}"
    if turns < 1:
        return f"turns must be >= 1, got {turns}"
    return None


def _draw(rng: random.Random, spec: GuessSpec) -> dict[str, int]:
    size = rng.randint(spec.min_size, spec.max_size)
    lo = rng.randint(1, spec.max_num - size + 1)
    hi = lo + size - 1
    return {"lo": lo, "hi": hi, "target": rng.randint(lo, hi), "turns": budget(size, spec.slack)}


def generate_splits(n_train: int, n_test: int, spec: GuessSpec = GuessSpec(),
                    seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Disjoint (by range and hidden number) train/test records, deterministic in (sizes, spec, seed)."""
    rng = random.Random(f"guess-{seed}-{spec}")
    seen: set[tuple[int, int, int]] = set()

    def draw_unique(count: int) -> list[dict]:
        out: list[dict] = []
        tries = 0
        while len(out) < count:
            tries += 1
            if tries > 50 * count + 1000:
                raise ValueError(f"guess: cannot draw {count} distinct instances from {spec}; widen the spec")
            rec = _draw(rng, spec)
            key = (rec["lo"], rec["hi"], rec["target"])
            if key not in seen:
                seen.add(key)
                out.append(rec)
        return out

    test = draw_unique(n_test)
    train = draw_unique(n_train)
    return train, test
