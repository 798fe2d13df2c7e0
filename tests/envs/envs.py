"""Small deterministic environments for the tests (loaded by path, as a user's env.cls is)."""

import os
import random
import time

from rlreason.envs.base import Step


class Counter:
    """Turn t's observation is "n<t>\\n"; reward 1 for an action holding a "1"; done after 3 turns."""

    stop = ("\n",)
    max_turns = 5

    def __init__(self, record, seed):
        self.seed, self.turn = seed, 0

    def reset(self):
        return "go\n"

    def step(self, action):
        self.turn += 1
        return Step(f"n{self.turn}\n", float("1" in action), self.turn >= 3)


class Echo:
    """Observes its last action back (as a tuple), never done: episodes end by env.max_turns or budget."""

    stop = ("\n",)

    def __init__(self, record, seed):
        pass

    def reset(self):
        return ""

    def step(self, action):
        return "ok\n", {"correct": float(action.startswith("1")), "len": len(action) / 100}, False


class Hang(Counter):
    def step(self, action):
        if self.turn == 1:
            time.sleep(60)
        return super().step(action)


class Slow(Counter):
    """Counter whose every step takes 50 ms: what a worker spends replaying is measurable."""

    def step(self, action):
        time.sleep(0.05)
        return super().step(action)


class Crash(Counter):
    def step(self, action):
        if self.turn == 1:
            raise RuntimeError("boom")
        return super().step(action)


class Flaky(Counter):
    """Not deterministic: its first observation differs per instance (a replay cannot reproduce it)."""

    def reset(self):
        return f"go{random.Random(os.urandom(8)).randint(0, 10**9)}\n"


class NoReset:
    def __init__(self, record, seed):
        pass

    def step(self, action):
        return "", 0.0, True


class BadInit:
    def __init__(self):
        pass

    def reset(self):
        return ""

    def step(self, action):
        return "", 0.0, True


class BadStep(Counter):
    def step(self):
        return "", 0.0, True


class Dice(Counter):
    """Counter whose observations and rewards come from its seed: a run resumed after a kill must give
    every episode the seed it had (the kill harness's --env dice)."""

    def reset(self):
        self.rng = random.Random(self.seed)
        return f"go{self.rng.randint(0, 9)}\n"

    def step(self, action):
        self.turn += 1
        roll = self.rng.randint(0, 9)
        return Step(f"n{roll}\n", float(str(roll) in action), self.turn >= 3)
