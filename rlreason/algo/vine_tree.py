"""The "vine tree": VinePPO's MC continuations as training data (algo.mc.tree).

Every continuation c_j from a state s is a complete response sampled from pi(. | s) and graded; VinePPO
averages the K rewards into V(s) and used to throw the samples away. Here each becomes an episode of its
own: prompt = s (prompt + the trajectory's first steps, masked out of the loss), response = c_j's tokens,
advantage r_j - mean of its K - 1 siblings on every token (leave-one-out, rlreason.algo.advantages.
rloo_advantages), old log-probs from the engine as for any rollout.

What the combined estimator weights. Write g_t = E[grad log pi(a_t | s_t) A(s_t, a_t)] for the policy
gradient term of the t-th step of a response, so that grad J = sum_t g_t.
- The trajectories (VinePPO's own advantages) estimate sum_t g_t: each step once.
- The continuations of one state s estimate c * grad_theta V(s), s held fixed. For 0/1 rewards
  E[grad log pi(c_j) | r_j] = grad V (r_j - V) / (V (1 - V)), and the number n of continuations depends
  on their rewards only, so continuation j's term A_j grad log pi(c_j) (A_j its leave-one-out advantage)
  puts weight A_j (r_j - V) / (V (1 - V)) on grad V(s), and c is the expected sum of these weights over
  the n: c = E[sum_{j <= n} A_j (r_j - V)] / (V (1 - V)) = E[S (n - S) / (n - 1)] / (V (1 - V)), S the
  successes among the n. Fixed K: c = K, for any reward (the baseline is unbiased for any K >= 2).
  Adaptive K (algo.mc.max_rollouts): c depends on V(s). Unanimous states stop at K0 and add nothing, so
  at K0 = 2 with mixed states ending at n, c = 2 + 2 (n - 2) (n - 3) V (1 - V) / (n - 1): cap 4 gives
  2.16 / 2.21 / 2.29 / 2.33 at V = 0.14 / 0.2 / 0.33 / 0.5, well under the 4 continuations a mixed state
  gets (the reference's last round, n = 6: 2.58 / 2.77 / 3.06 / 3.2). `tree_weight` computes c exactly;
  tests/algo/test_vine_tree.py checks c * grad V against the exact gradient of a problem small enough to
  enumerate, fixed and adaptive. grad V(s) is the sum of the g terms of the steps taken from s on, so a
  continuation from the state after t steps adds weight to steps t, t + 1, ... only.
- Every valued state of a trajectory adds its continuations, so (before `tree_max`) the step that starts
  at its t-th valued state s_t is weighted 1 + sum_{u <= t} c(V(s_u)) in expectation (fixed K:
  1 + K (t + 1)): later steps count more, and with adaptive K the weight also depends on the states'
  values. A state shared by several trajectories (identical prefixes, deduplicated) is valued once, so
  it adds its continuations once: shared prefixes are not trained twice.
- How the learner mixes the two (rlreason/learner/learner.py `_step`): one token-level loss over the
  trajectories and the tree episodes of a minibatch, divided by T, the tokens of both. An episode's term
  is the sum over its tokens, so neither side is weighted by its own length, but the tree's tokens enter
  T and shrink the whole step, trajectories included, by T_traj / (T_traj + T_tree). With
  whiten_advantages (vineppo's default) the advantages' mean and std are taken over the tokens of both,
  so each tree episode weighs in them by its length, and the tree's advantages enter the std that divides
  the trajectories' step advantages too. (kl_reduction: sequence_sum averages the KL over the sequences
  of both.)
- So, without whitening, T times a minibatch's policy gradient at the sampling weights (no clipping yet)
  is an unbiased estimate of the reweighted gradient above; the update follows it scaled by 1 / T (and,
  whitened, by 1 / std, with the mean shifted), both set by the data, the tree's tokens included. That is
  a different direction from grad J, not an estimate of grad J or of a fixed multiple of it. Every term
  is still a policy gradient of the same return from a state the policy reaches, so it is a plausible
  ascent direction, not a proven one (positive weights on the g_t need not keep a positive inner
  product with their plain sum).
- Continuations with advantage 0 (all siblings agree) carry no gradient and are dropped for free; past
  `tree_max` eligible ones a uniform subset is kept, which scales the tree term by tree_max / eligible
  for that iteration (the same factor for all of them: the tree's direction is unchanged).
- With algo.mc.v0=group the prompt state is not continued, so the tree adds nothing at s_0 (the
  trajectories themselves are that state's K samples, trained with VinePPO's advantages).
"""

from __future__ import annotations

import random

from rlreason.algo.advantages import rloo_advantages
from rlreason.algo.mc import adaptive_outcomes
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


def tree_weight(v: float, k0: int, max_rollouts: int | None = None, new_rollouts: int = 4,
                ci_threshold: float = 0.05, cap_last_round: bool = True) -> float:
    """c: the tree term of a state with value v (0/1 rewards) is c * grad V in expectation. Fixed K
    (max_rollouts None): k0. Adaptive K: E[S (n - S) / (n - 1)] / (v (1 - v)) over the adaptive rule's
    final (successes S, size n), exactly."""
    if max_rollouts is None:
        return float(k0)
    if not 0 < v < 1:
        raise ValueError(f"tree_weight needs 0 < v < 1 (got {v}): at 0 or 1 grad V is 0 and c undefined")
    final = adaptive_outcomes(v, k0, max_rollouts, new_rollouts, ci_threshold, cap_last_round)
    return sum(pr * s * (n - s) / (n - 1) for (s, n), pr in final.items()) / (v * (1 - v))
