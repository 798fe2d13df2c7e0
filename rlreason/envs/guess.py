"""The hidden-number game: find the record's number within its turn budget, told higher or lower each turn.

    env.cls=rlreason.envs.guess:GuessNumber     (data=guess makes its records: rlreason/data/guess.py)

The transcript of a won game of {"lo": 12, "hi": 47, "target": 30, "turns": 6}, the model's lines marked >:

    guess 12-47 in 6 turns          the prompt
  > guess 29
    higher 30-47
  > guess 38
    lower 30-37
  > guess 33
    lower 30-32
  > guess 31
    lower 30-30
  > guess 30
    correct

A turn is one line, `guess N` (stop "\\n"). The reply names the direction and the range still possible
given every answer so far: the model must read it to place its next guess, but does not have to
reconstruct the range from the whole history (a ~1M-parameter model could not, and the game is about
using feedback, not about memory). Any other line (no number, more than 3 digits, trailing text) is a
wasted turn, answered `invalid LO-HI`. A guess outside the range is answered truthfully and narrows
nothing. The budget is binary search's worst case, so early turns decide the outcome: a wasted or badly
placed guess usually loses.

Reward: `{"correct": 1.0}` on the turn that names the number, `{"correct": 0.0}` on every other turn.
A dict with a `correct` component makes success exactly "found it" for the curriculum and the success
metrics whatever reward.success_threshold is, and the episode's return (the sum over turns) is 1 or 0.

Deterministic in (record, actions): `seed` is accepted, as the contract requires, and not used (the
hidden number is the record's).
"""

from __future__ import annotations

import re

from rlreason.data.guess import record_error
from rlreason.envs.base import Environment, Step

GUESS = re.compile(r"[ \t]*guess ([0-9]{1,3})[ \t]*\n?")  # one line: `guess N`, N of at most 3 ASCII digits


class GuessNumber(Environment):
    stop: tuple[str, ...] = ("\n",)
    max_turns: int | None = None  # the record's own budget ends every game (its `turns`)

    def __init__(self, record: dict, seed: int):
        if problem := record_error(record):
            raise ValueError(f"GuessNumber: not a hidden-number record ({problem}); data=guess makes them")
        self.target, self.turns = record["target"], record["turns"]
        self.lo, self.hi = record["lo"], record["hi"]
        self.turn = 0
        self.done = False

    def reset(self) -> str:
        return ""  # the prompt states the range and the budget: the model opens

    def step(self, action: str) -> Step:
        if self.done:
            raise RuntimeError("GuessNumber.step after the game ended")
        self.turn += 1
        match = GUESS.fullmatch(action) if isinstance(action, str) else None
        guess = int(match.group(1)) if match else None
        if guess == self.target:
            self.done = True
            return Step("correct\n", {"correct": 1.0}, True)
        if guess is None:
            reply = "invalid"
        elif guess < self.target:
            reply, self.lo = "higher", max(self.lo, guess + 1)
        else:
            reply, self.hi = "lower", min(self.hi, guess - 1)
        self.done = self.turn >= self.turns
        return Step(f"{reply} {self.lo}-{self.hi}\n", {"correct": 0.0}, self.done)
