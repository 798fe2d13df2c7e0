"""Reward benchmark: grading seconds per 1,000 of VinePPO's Monte-Carlo continuations, a user's reward
function (reward.fn, in the grader's worker processes) against the built-in checker (in-process), on
the same continuations, in one run.

    python -m bench.run reward        (or via `make bench`)

The continuations are real: the default config (tiny model, data=arith, vLLM) rolls out a batch of
train questions and runs the MC phase, and every grading call of that phase is recorded. Each grader
then grades the recorded calls, the graders interleaved over ROUNDS rounds (this machine is noisy);
the medians and their ratio are reported. The user function checks exactly what the built-in arith
checker checks (`#### N` against the record's answer), so the difference is the cost of the path:
dedup + a pipe round trip per distinct response + process isolation, against in-process comparison.
`batched` sends chunks of 64 distinct responses per round trip (reward.batched=true).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.iteration import compose_cfg, start_engine

ROUNDS = 5


def same_as_builtin(response: str, record: dict) -> float:
    """What data=arith's checker does (the last `####` line's number), as a user would write it."""
    i = response.rfind("####")
    answer = response[i + 4:].split("\n", 1)[0].strip() if i >= 0 else ""
    return float(answer.isascii() and answer.isdigit() and int(answer) == int(record["answer"]))


def same_as_builtin_batched(responses: list[str], records: list[dict]) -> list[float]:
    return [same_as_builtin(r, rec) for r, rec in zip(responses, records)]


class Recorder:
    """The run's grader, keeping every call's arguments."""

    def __init__(self, grader):
        self.grader, self.calls = grader, []

    def grade(self, responses, golds, truncated=None):
        self.calls.append((list(responses), list(golds), list(truncated or [False] * len(responses))))
        return self.grader.grade(responses, golds, truncated)


def run() -> dict[str, Any]:
    from rlreason.algo import assign_vineppo_advantages
    from rlreason.reward import FunctionGrader, Grader
    from rlreason.seeds import SeedStream
    from rlreason.trainer.build import build

    cfg = compose_cfg("algo=vineppo")
    engine, _ = start_engine(cfg)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-reward-") as tmp:
            r = build(cfg, Path(tmp) / "run", engine)
            try:
                r.roller.seeds = SeedStream(cfg.seed, 1)
                groups = r.roller(r.train[: cfg.trainer.questions_per_iteration], cfg.rollout.samples_per_question)
                recorder = Recorder(r.grader)
                assign_vineppo_advantages(
                    [ep for g in groups for ep in g], r.engine, recorder, r.tokenizer, task=r.roller.task,
                    k=cfg.algo.mc_rollouts, temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p,
                    max_new_tokens=cfg.rollout.max_new_tokens, steps=cfg.data.steps, seeds=r.roller.seeds,
                    version=r.learner.version, mc=cfg.algo.mc)
            finally:
                r.close(close_engine=False)
    finally:
        engine.close()
    calls = recorder.calls
    n = sum(len(c[0]) for c in calls)
    distinct = sum(len({(q.id, t) for t, q, cut in zip(*c) if not cut}) for c in calls)
    graders = {
        "builtin": Grader("arith", timeout_s=cfg.reward.timeout_s, workers=cfg.reward.workers),
        "user_fn": FunctionGrader("bench.reward:same_as_builtin", timeout_s=cfg.reward.timeout_s,
                                  workers=cfg.reward.workers),
        "user_fn_batched": FunctionGrader("bench.reward:same_as_builtin_batched", timeout_s=cfg.reward.timeout_s,
                                          workers=cfg.reward.workers, batched=True),
    }
    seconds: dict[str, list[float]] = {name: [] for name in graders}
    verdicts: dict[str, list] = {}
    try:
        for g in graders.values():  # start the workers outside the timing (a run pays it once)
            g.grade(["#### 1"], [r.train[0]])
        for _ in range(ROUNDS):
            for name, g in graders.items():
                t = time.perf_counter()
                verdicts[name] = [v.reward for c in calls for v in g.grade(*c)]
                seconds[name].append(time.perf_counter() - t)
    finally:
        for g in graders.values():
            g.close()
    agree = statistics.fmean(a == b == c for a, b, c in zip(*(verdicts[k] for k in graders)))
    per_1000 = {name: 1000 * statistics.median(s) / n for name, s in seconds.items()}
    return {
        "continuations": n,
        "distinct_responses": distinct,
        "grading_calls": len(calls),
        **{f"{name}_s_per_1000": v for name, v in per_1000.items()},
        "user_fn_over_builtin": per_1000["user_fn"] / per_1000["builtin"],
        "user_fn_batched_over_builtin": per_1000["user_fn_batched"] / per_1000["builtin"],
        "rewards_agree": agree,  # the three graders' rewards on the same continuations
        "rounds": ROUNDS,
    }
