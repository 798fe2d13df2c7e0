"""The "vine tree": VinePPO's MC continuations as training data (algo.mc.tree).

Every continuation c_j from a state s is a complete response sampled from pi(. | s) and graded; VinePPO
averages the K rewards into V(s) and used to throw the samples away. Here each becomes an episode of its
own: prompt = s (prompt + the trajectory's first steps, masked out of the loss), response = c_j's tokens,
advantage r_j - mean of its K - 1 siblings on every token (leave-one-out, rlreason.algo.advantages.
rloo_advantages), old log-probs from the engine as for any rollout.

What the combined estimator weights. Write g_t = E[grad log pi(a_t | s_t) A(s_t, a_t)] for the policy
gradient term of the t-th step of a response, so that grad J = sum_t g_t.
- The trajectories (VinePPO's own advantages) estimate sum_t g_t: each step once.
- The K continuations of one state s estimate K * grad_theta V(s) with s held fixed (leave-one-out
  baseline: unbiased for any K >= 2; tests/algo/test_vine_tree.py checks it against the exact gradient of
  a problem small enough to enumerate). grad V(s) is the sum of the g terms of the steps taken from s on,
  so a continuation from the state after t steps adds weight to steps t, t + 1, ... only.
- Every valued state of a trajectory adds its K samples, so (before the cap) the step that starts at the
  t-th valued state is weighted 1 + K * (t + 1) in expectation: later steps count more. The sum is an
  unbiased estimate of that reweighted gradient, not of grad J itself; it is a different, still
  improving, direction (every term is a policy gradient of the same return from a state the policy
  reaches). A state shared by several trajectories (identical prefixes, deduplicated) is valued once, so
  it adds K samples once: shared prefixes are not trained twice.
- Continuations with advantage 0 (all siblings agree) carry no gradient and are dropped for free; past
  `tree_max` eligible ones a uniform subset is kept, which scales the tree term by tree_max / eligible
  for that iteration (the same factor for all of them: the direction is unchanged).
- With algo.mc.v0=group the prompt state is not continued, so the tree adds nothing at s_0 (the
  trajectories themselves are that state's K samples, trained with VinePPO's advantages).
"""

from __future__ import annotations

import random

from rlreason.algo.advantages import rloo_advantages
from rlreason.engine.base import Completion
from rlreason.rollout import Episode


def tree_episodes(sources: list[Episode], prefixes: list[list[int]],
                  rewards: list[list[float]], outs: list[list[Completion]], *, limit: int,
                  rng: random.Random) -> tuple[list[Episode], dict[str, float]]:
    """Episodes for the continuations of every state: state i was reached by `sources[i]` (its question),
    its prefix `prefixes[i]` (prompt + response so far) becomes the episode's prompt. Keeps the continuations with a
    non-zero leave-one-out advantage, at most `limit` (a uniform subset drawn with `rng`)."""
    eligible: list[Episode] = []
    for src, prefix, rs, cs in zip(sources, prefixes, rewards, outs, strict=True):
        if len(rs) < 2:
            continue
        for r, a, c in zip(rs, rloo_advantages(rs), cs):
            if a == 0.0 or not c.token_ids:
                continue
            eligible.append(Episode(src.question, list(prefix), list(c.token_ids), list(c.logprobs), c.text,
                                    c.finish_reason, r, advantages=[a] * len(c.token_ids)))
    kept = eligible if len(eligible) <= limit else [eligible[i] for i in sorted(rng.sample(range(len(eligible)), limit))]
    return kept, {"tree/eligible": float(len(eligible)), "tree/episodes": float(len(kept)),
                  "tree/tokens": float(sum(len(e.response_ids) for e in kept))}
