"""VinePPO's Monte-Carlo sampling: K graded continuations per state, fixed or adaptive.

`continuation_rewards` is the one place continuations are sampled and graded (VinePPO's MC phase and
experiments/value_analysis.py both call it). `adaptive_continuation_rewards` is the reference's
confidence-interval-aware expander (McGill-NLP/VinePPO src/treetune/inference_strategies/tree_inference/
expansion.py `ConfidenceIntervalAwareEfficientIIDExpander`, configs/episode_generators/
ciAwre_10ir_4nr_ci0.05.jsonnet: start 10, add 4, at most 30, CI length 0.05), batched: every round is one
engine call over all the states still open.

The rule: after n continuations, the state's interval length is 2 * 1.96 * sqrt(s^2 / n) (Wald), s^2
the population variance (ddof = 0) of its rewards; while it exceeds `ci_length` and n < `max_rollouts`,
sample `new_rollouts` more. The reference writes p (1 - p) for the mean p, which is s^2 exactly when the
rewards are 0/1, so for 0/1 rewards this is its rule (the unbiased n/(n - 1) s^2 would not be: it would
lengthen every interval, so states could stop later). p (1 - p) is no variance for other rewards: it
reads 0 for a state with rewards -1 and 1 (stopping it after one round), 0.09 for rewards all 0.1
(sampling it to the cap), and is negative for rewards all 1.1; s^2 is 1, 0 and 0. A state whose first K0
continuations all agree has length 0 and stops at once; for 0/1 rewards at the sizes used (n <= 33,
threshold 0.05) every state with mixed results runs to the cap, so the rule reads: "K0 if unanimous, else
the cap".

One difference, an option: the reference checks n >= max_num_rollouts before a round and then samples a
full `num_new_rollouts`, so a state can end past the cap. Here the last round stops at the cap
(algo.mc.cap_last_round: true, the default: `max_rollouts` bounds the cost); cap_last_round: false is
the reference's rule. They agree when new_rollouts divides max_rollouts - K0 (the reference's config:
10, +4, up to 30); at K0 = 2, 4 new, cap 4, a mixed state ends at 4 continuations here, at 6 there.

Bias of stopping early (the mean of a sample whose size depends on its own values is not unbiased), for
0/1 rewards (what `expected_adaptive_value` enumerates; s^2 = p (1 - p) there, so the figures are the
reference's): with K0 = 2 and every mixed state ending at n continuations,
E[V] - p = -p (1 - p) (1 - 2p) (1 - 2/n). Values are pulled towards 0 and 1, most at p = 0.21 and 0.79,
by (1 - 2/n) / (6 sqrt 3) = (1 - 2/n) x 0.0962. So at K0 = 2 a larger cap grows the bias, it does not
shrink it: 0.048 at n = 4 (e.g. 0.152 at p = 0.2), 0.064 at 6, 0.077 at 10, 0.090 at 30, towards 0.096. A larger K0 lowers it at a given cap
(cap 30: 0.070 at K0 = 4, 0.023 at K0 = 10). `expected_adaptive_value` computes it exactly;
tests/algo/test_mc.py checks the sampler and these figures against it. Off by default
(algo.mc.max_rollouts = null).
"""

from __future__ import annotations

import math
import statistics
from functools import cache
from itertools import accumulate
from typing import TYPE_CHECKING, Any

from rlreason.engine.base import Completion, Engine, SamplingParams

if TYPE_CHECKING:
    from rlreason.reward import Grader
    from rlreason.reward.overlong import Overlong
    from rlreason.seeds import SeedStream


def continuation_rewards(engine: Engine, grader: Grader, prefixes: list[list[int]], texts: list[str],
                         answers: list[Any], starts: list[int], budgets: list[int], *, k: int | list[int],
                         temperature: float, top_p: float, max_new_tokens: int, stop: tuple[str, ...],
                         seed: int | None, version: int | None, overlong: Overlong | None = None,
                         ) -> tuple[list[list[float]], list[list[Completion]]]:
    """k[i] graded continuations of every prefix (prompt + response tokens, the first `starts[i]` of them
    response; `answers[i]` the question graded, or its gold answer string), in one engine call: one request per prefix with its own token budget; prefix i's samples
    take seeds seed + sum(k[:i]) + j (seed + i * k + j for one k). Each continuation is graded as a full
    response, the prefix's response text + the continuation; one that reaches the trajectory's token
    budget (`max_new_tokens` response tokens) counts as truncated. `overlong` (reward.overlong) penalises
    it by that full response's length, the prefix's response tokens included. Returns the rewards per
    prefix and the completions."""
    ks = [k] * len(prefixes) if isinstance(k, int) else list(k)
    offsets = [0, *accumulate(ks)]
    params = [SamplingParams(n=n, temperature=temperature, top_p=top_p, max_tokens=b, stop=tuple(stop),
                             seed=None if seed is None else seed + offsets[i]) for i, (n, b) in enumerate(zip(ks, budgets))]
    outs = engine.continue_from(prefixes, params, version=version)
    graded, golds, truncated, lengths = [], [], [], []
    for text, answer, start, conts in zip(texts, answers, starts, outs, strict=True):
        for c in conts:
            graded.append(text + c.text)
            golds.append(answer)
            truncated.append(c.finish_reason == "length" or start + len(c.token_ids) > max_new_tokens)
            lengths.append(start + len(c.token_ids))
    verdicts = grader.grade(graded, golds, truncated)
    if overlong is not None:
        verdicts = overlong.apply(verdicts, lengths)
    return [[v.reward for v in verdicts[offsets[i]:offsets[i + 1]]] for i in range(len(prefixes))], outs


def ci_length(rewards: list[float], z: float = 1.96) -> float:
    """The Wald interval length of the mean of `rewards`: 2 z sqrt(s^2 / n), s^2 their population variance
    (ddof = 0: for 0/1 rewards with mean p it is p (1 - p), the reference's formula, exactly; the module
    docstring says why not the unbiased one). statistics.pvariance is exact (0 for equal rewards, never
    negative)."""
    return 2 * z * math.sqrt(statistics.pvariance(rewards) / len(rewards))


def adaptive_continuation_rewards(engine: Engine, grader: Grader, prefixes: list[list[int]], texts: list[str],
                                  answers: list[Any], starts: list[int], budgets: list[int], *, k0: int,
                                  max_rollouts: int, new_rollouts: int, ci_threshold: float, seeds: SeedStream | None,
                                  cap_last_round: bool = True,
                                  **sample) -> tuple[list[list[float]], list[list[Completion]], int]:
    """K0 continuations of every prefix, then rounds of `new_rollouts` more for the prefixes whose
    interval is still longer than `ci_threshold` and that have fewer than `max_rollouts` (one engine call
    per round); `cap_last_round` stops the last round at `max_rollouts`, else it is a full round (the
    reference's). Seeds come from the iteration's "mc" block, each round its own fresh ones. Returns the
    rewards and completions per prefix (each list as long as that prefix's sample) and the number of
    rounds."""
    rewards: list[list[float]] = [[] for _ in prefixes]
    outs: list[list[Completion]] = [[] for _ in prefixes]
    open_, want, rounds = list(range(len(prefixes))), [k0] * len(prefixes), 0
    while open_:
        ks = [want[i] for i in open_]
        seed = seeds.take("mc", sum(ks)) if seeds is not None else None
        r, o = continuation_rewards(engine, grader, [prefixes[i] for i in open_], [texts[i] for i in open_],
                                    [answers[i] for i in open_], [starts[i] for i in open_],
                                    [budgets[i] for i in open_], k=ks, seed=seed, **sample)
        for i, ri, oi in zip(open_, r, o):
            rewards[i] += ri
            outs[i] += oi
        rounds += 1
        open_ = [i for i in open_ if len(rewards[i]) < max_rollouts and ci_length(rewards[i]) > ci_threshold]
        want = {i: next_round(len(rewards[i]), max_rollouts, new_rollouts, cap_last_round) for i in open_}
    return rewards, outs, rounds


def next_round(n: int, max_rollouts: int, new_rollouts: int, cap_last_round: bool) -> int:
    """How many continuations an open state with n < max_rollouts samples next."""
    return min(new_rollouts, max_rollouts - n) if cap_last_round else new_rollouts


def adaptive_outcomes(p: float, k0: int, max_rollouts: int, new_rollouts: int, ci_threshold: float,
                      cap_last_round: bool = True) -> dict[tuple[int, int], float]:
    """The distribution of a state's final (successes, n) under the adaptive rule, its continuations
    succeeding with probability p, by exact enumeration over the success counts."""
    from math import comb

    # dist maps (successes, n) of a still-open state to its probability
    dist = {(s, k0): comb(k0, s) * p ** s * (1 - p) ** (k0 - s) for s in range(k0 + 1)}
    final: dict[tuple[int, int], float] = {}
    while dist:
        nxt: dict[tuple[int, int], float] = {}
        for (s, n), pr in dist.items():
            if n >= max_rollouts or _ci_length_01(s, n) <= ci_threshold:
                final[(s, n)] = final.get((s, n), 0.0) + pr
                continue
            m = next_round(n, max_rollouts, new_rollouts, cap_last_round)
            for j in range(m + 1):
                key = (s + j, n + m)
                nxt[key] = nxt.get(key, 0.0) + pr * comb(m, j) * p ** j * (1 - p) ** (m - j)
        dist = nxt
    return final


@cache
def _ci_length_01(successes: int, n: int) -> float:
    """ci_length of `successes` 1s and n - successes 0s (the enumeration asks for the same few often)."""
    return ci_length([1.0] * successes + [0.0] * (n - successes))


def expected_adaptive_value(p: float, k0: int, max_rollouts: int, new_rollouts: int, ci_threshold: float,
                            cap_last_round: bool = True) -> float:
    """E[mean of the adaptive sample] for a state whose continuations succeed with probability p, exact
    (the bias of stopping early is this minus p)."""
    final = adaptive_outcomes(p, k0, max_rollouts, new_rollouts, ci_threshold, cap_last_round)
    return sum(pr * s / n for (s, n), pr in final.items())
