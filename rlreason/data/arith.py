"""Synthetic multi-step arithmetic: the task every CPU run, test and benchmark uses.

Chains of 1-8 single-digit `+ - *` operations mod 10. Each operand in the prompt carries the letter of
its step, so a tiny model can find the operand of step t by copying what follows that letter:

    prompt   Q:3a+5b*3c-7
    solution 3a+5=8
             8b*3=4
             4c-7=7
             #### 7

Multipliers are units mod 10 (1, 3, 7, 9) by default, so every step is a bijection of the running
value: one wrong step always gives a wrong final answer (two can still cancel). With any multiplier a
wrong chain often ends right by luck (x0, x5, x even collapse values): measured on the first tiny model,
half the responses graded correct had a wrong step, and outcome-reward RL learned from that noise.

The number of steps is the difficulty knob: a partly trained model solves short chains always, long
ones rarely, and the middle sometimes -- the spread RL and the learnability curriculum need. Steps are
lines, so VinePPO's credit assignment has real multi-step structure to work on.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass

from rlreason.data.record import Question

LETTERS = "abcdefghijklmnopqrstuvwxyz"
OPS = "+-*"


@dataclass(frozen=True)
class ArithSpec:
    min_steps: int = 1
    max_steps: int = 8
    modulus: int = 10
    ops: str = OPS
    invertible: bool = True  # multiply only by numbers coprime to the modulus (see the module doc)

    def __post_init__(self) -> None:
        if not 1 <= self.min_steps <= self.max_steps <= len(LETTERS) - 1:
            raise ValueError(f"arith: need 1 <= min_steps <= max_steps <= 25, got {self.min_steps}..{self.max_steps}")
        if not 2 <= self.modulus <= 10:
            raise ValueError(f"arith: modulus must be in 2..10 (single-digit operands), got {self.modulus}")
        if not self.ops or set(self.ops) - set(OPS):
            raise ValueError(f"arith: ops must be a non-empty subset of {OPS!r}, got {self.ops!r}")


def units(modulus: int) -> list[int]:
    return [u for u in range(1, modulus) if math.gcd(u, modulus) == 1] or [1]


def apply(op: str, a: int, b: int, modulus: int) -> int:
    if op == "+":
        return (a + b) % modulus
    if op == "-":
        return (a - b) % modulus
    return (a * b) % modulus


def make_question(operands: list[int], ops: list[str], modulus: int = 10) -> Question:
    """Build the question (prompt, gold solution, answer) for one chain."""
    assert len(operands) == len(ops) + 1
    prompt = f"Q:{operands[0]}" + "".join(
        f"{LETTERS[i]}{op}{b}" for i, (op, b) in enumerate(zip(ops, operands[1:]))
    )
    lines, acc = [], operands[0]
    for i, (op, b) in enumerate(zip(ops, operands[1:])):
        new = apply(op, acc, b, modulus)
        lines.append(f"{acc}{LETTERS[i]}{op}{b}={new}")
        acc = new
    lines.append(f"#### {acc}")
    key = hashlib.sha1(prompt.encode()).hexdigest()[:12]
    return Question(
        id=f"arith-{key}",
        problem=prompt,
        answer=str(acc),
        solution="\n".join(lines),
        level=len(ops),
        source="arith",
    )


def _draw(rng: random.Random, spec: ArithSpec) -> Question:
    n = rng.randint(spec.min_steps, spec.max_steps)
    ops = [rng.choice(spec.ops) for _ in range(n)]
    mult = units(spec.modulus) if spec.invertible else list(range(spec.modulus))
    operands = [rng.randrange(spec.modulus)] + [rng.choice(mult) if op == "*" else rng.randrange(spec.modulus)
                                                for op in ops]
    return make_question(operands, ops, spec.modulus)


def generate_splits(
    n_train: int, n_test: int, spec: ArithSpec = ArithSpec(), seed: int = 0
) -> tuple[list[Question], list[Question]]:
    """Disjoint train/test splits, deterministic in (sizes, spec, seed).

    The test split is drawn first, so growing `n_train` never changes the test set.
    """
    rng = random.Random(f"arith-{seed}-{spec}")
    seen: set[str] = set()

    def draw_unique(count: int) -> list[Question]:
        out: list[Question] = []
        tries = 0
        while len(out) < count:
            q = _draw(rng, spec)
            tries += 1
            if tries > 50 * count + 1000:
                raise ValueError(f"arith: cannot draw {count} distinct questions from {spec}; widen the spec")
            if q.id not in seen:
                seen.add(q.id)
                out.append(q)
        return out

    test = draw_unique(n_test)
    train = draw_unique(n_train)
    return train, test
