"""A scripted, noisy player of the hidden-number game: the transcripts model=tiny_guess is fine-tuned on.

Each turn it bisects the range the last reply names, or with probability `p_wander` guesses uniformly
in that range (a deviation), or with probability `p_ignore` ignores every reply and guesses uniformly
in the whole range (feedback ignored: usually a wasted turn). The noise is what the fine-tuned model
inherits: sampled games succeed sometimes, so RL has something to sharpen; the replies are the environment's own
(rlreason.envs.guess.GuessNumber), so the transcripts are exactly what RL's episodes look like.
"""

from __future__ import annotations

import random

from rlreason.envs.guess import GuessNumber

Segment = tuple[str, bool]  # (text, is it the policy's: trained on in SFT)


def scripted_game(record: dict, rng: random.Random, p_wander: float = 0.3,
                  p_ignore: float = 0.3) -> tuple[list[Segment], bool]:
    """One game's transcript after the prompt, as (text, policy's) segments, and whether it was won."""
    env = GuessNumber(record, seed=0)
    segments: list[Segment] = []
    if first := env.reset():
        segments.append((first, False))
    lo, hi = record["lo"], record["hi"]
    while True:
        draw = rng.random()
        if draw < p_ignore:
            guess = rng.randint(record["lo"], record["hi"])
        elif draw < p_ignore + p_wander:
            guess = rng.randint(lo, hi)
        else:
            guess = (lo + hi) // 2
        action = f"guess {guess}\n"
        step = env.step(action)
        segments += [(action, True), (step.observation, False)]
        if step.done:
            return segments, step.reward == {"correct": 1.0}
        lo, hi = env.lo, env.hi
