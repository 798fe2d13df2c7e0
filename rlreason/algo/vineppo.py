"""VinePPO: Monte-Carlo value estimates at every reasoning-step boundary (Kazemnejad et al., 2024).

For each trajectory, split the response into steps; the state s_t is the prompt plus the first t steps.
V(s_t) is the mean reward of K continuations sampled from s_t with the current policy, V(terminal) = 0,
and step t's advantage A_t = r_t + V(s_{t+1}) - V(s_t) (gamma = 1, r_t = outcome reward on the last step)
is given to every token of step t. No critic is trained.

Cost is where VinePPO lives or dies, so: identical states across the batch (the N samples of a question
all share s_0, and often their first steps) are estimated once, every continuation of the iteration
goes to the engine in one batched call, so the engine's prefix cache sees the shared prefixes, and each
state asks for only the tokens the trajectory's budget has left (`max_new_tokens` minus the tokens
already in the state): a longer continuation would be graded truncated anyway.

As in the reference (McGill-NLP/VinePPO math_episode_generator_with_mc_advantages.py
`_create_value_estimation_requests` / `_compute_step_advantages`), `data.steps.max_value_steps` = M caps
the estimated states at s_0..s_M; the later states take the trajectory's own return (the reward), so
their steps get advantage 0 and step M gets reward - V(s_M).

The options that cut the MC cost (algo.mc, each documented with its bias where it has one): V(s_0) from
the group's other rollouts (v0=group, unbiased unless the curriculum chose the group by its rewards:
group_loo_values), adaptive K (rlreason/algo/mc.py, biased towards 0/1), no MC for groups whose rollouts
all agree (skip_uniform_groups, biased: drops their step credit), and training on the continuations
(tree, a reweighted gradient: rlreason/algo/vine_tree.py).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rlreason.algo.advantages import rloo_advantages
from rlreason.algo.mc import adaptive_continuation_rewards, continuation_rewards
from rlreason.algo.vine_tree import tree_episodes
from rlreason.config import MCConfig, StepsConfig
from rlreason.engine.base import Engine
from rlreason.rollout import Episode
from rlreason.seeds import SeedStream
from rlreason.segment import step_token_ends, token_char_offsets

if TYPE_CHECKING:
    from rlreason.reward import Grader
    from rlreason.reward.overlong import Overlong


@dataclass
class StepPlan:
    """Where one episode's steps start and end (token indices into response_ids)."""

    starts: list[int]
    ends: list[int]
    char_starts: list[int]  # response text offset where each step starts (for grading continuations)
    estimated: int  # the states s_0..s_{estimated-1} get MC values; later ones the trajectory's return


def plan_steps(ep: Episode, tokenizer, task: str, steps: StepsConfig | None = None) -> StepPlan:
    offsets = token_char_offsets(tokenizer, ep.response_ids)
    ends = step_token_ends(ep.text, offsets, task, steps) if ep.response_ids else [0]
    starts = [0] + ends[:-1]
    char_starts = [offsets[s - 1][1] if s > 0 else 0 for s in starts]
    cap = steps.max_value_steps if steps is not None else None
    return StepPlan(starts, ends, char_starts, len(starts) if cap is None else min(len(starts), cap + 1))


def dedup_states(episodes: list[Episode], plans: list[StepPlan], first_step: int = 0
                 ) -> tuple[list[list[int]], list[tuple[int, int]], list[list[int]]]:
    """Unique states by exact token prefix (same prefix, same value), of the estimated steps from
    `first_step` on (1: s_0 is valued otherwise).

    Returns the unique prefixes, the (episode, step) that first produced each, and for every episode
    the state index of each of its estimated steps from `first_step` on.
    """
    index: dict[tuple[int, ...], int] = {}
    states: list[list[int]] = []
    first: list[tuple[int, int]] = []
    per_episode: list[list[int]] = []
    for e, (ep, plan) in enumerate(zip(episodes, plans)):
        ids = []
        for t, start in enumerate(plan.starts[:plan.estimated]):
            if t < first_step:
                continue
            key = tuple(ep.prompt_ids) + tuple(ep.response_ids[:start])
            if key not in index:
                index[key] = len(states)
                states.append(list(key))
                first.append((e, t))
            ids.append(index[key])
        per_episode.append(ids)
    return states, first, per_episode


def step_advantages(values: list[float], reward: float) -> list[float]:
    """A_t = r_t + V(s_{t+1}) - V(s_t) with V(s_T) = 0 and the reward on the last step."""
    n = len(values)
    return [(reward if t == n - 1 else 0.0) + (values[t + 1] if t + 1 < n else 0.0) - values[t] for t in range(n)]


def group_loo_values(episodes: list[Episode]) -> list[float]:
    """V(s_0) per episode from its question's other rollouts: the mean reward of the other N - 1 (the
    RLOO baseline). Episodes of one question share s_0; a trajectory never sees its own reward.

    Unbiased when the N rollouts are i.i.d. given the question: the others' mean is then independent of
    this trajectory (E = V(s_0) whatever its outcome). Not when the group was kept for its own rewards and
    trained on (curriculum=filter_groups; learnability with n_select = samples_per_question, the default
    8 = 8): in a kept 4-of-8 group a right trajectory's baseline is 3/7 and a wrong one's 4/7, and over
    all mixed groups at p = 0.2 it is 0.200 against 0.253, so the baseline term no longer has expectation
    0. GRPO's and RLOO's baselines share it (GRPO's r - mean is (N - 1)/N times RLOO's advantage);
    algo.mc.v0=mc's fresh continuations do not. tests/algo/test_vineppo.py enumerates it exactly."""
    by_question: dict[str, list[int]] = {}
    for i, ep in enumerate(episodes):
        by_question.setdefault(ep.question.id, []).append(i)
    out = [0.0] * len(episodes)
    for idx in by_question.values():
        if len(idx) < 2:
            raise ValueError("algo.mc.v0=group needs at least 2 rollouts per question")
        rewards = [episodes[i].reward for i in idx]
        for i, a, r in zip(idx, rloo_advantages(rewards), rewards):
            out[i] = r - a  # r - (r - baseline)
    return out


def uniform_group_members(episodes: list[Episode]) -> set[int]:
    """Indices of the episodes whose question's rollouts all got the same reward."""
    rewards: dict[str, set[float]] = {}
    for ep in episodes:
        rewards.setdefault(ep.question.id, set()).add(ep.reward)
    return {i for i, ep in enumerate(episodes) if len(rewards[ep.question.id]) == 1}


def assign_vineppo_advantages(
    episodes: list[Episode], engine: Engine, grader: Grader, tokenizer, *, task: str, k: int,
    temperature: float, top_p: float, max_new_tokens: int, steps: StepsConfig | None, seeds: SeedStream | None,
    version: int | None, stop: tuple[str, ...] = (), per_state_budget: bool = True, mc: MCConfig | None = None,
    tree_out: list[Episode] | None = None, overlong: Overlong | None = None,
) -> dict[str, float]:
    """Fill `ep.advantages` for every episode with MC step advantages; return MC metrics.

    `seeds`: the iteration's stream; the continuations take their own block of it (phase "mc"), so
    none shares a seed with a training sample (whose continuation from s_0 would otherwise be that
    very sample, biasing V(s_0) towards its own return). None: the engine's unseeded stream.
    `per_state_budget=False` asks every state for the full `max_new_tokens`, as rlreason did before
    (only `make bench` uses it, to measure what the per-state budget saves).
    `mc`: the cost options (algo.mc); `tree_out`: with mc.tree, the continuation episodes to train on
    are appended to it. `overlong` (reward.overlong) penalises each continuation by its full response's
    length, as the trajectories' rewards are (rlreason/reward/overlong.py).
    """
    mc = mc or MCConfig()
    skipped = uniform_group_members(episodes) if mc.skip_uniform_groups else set()
    active = [i for i in range(len(episodes)) if i not in skipped]
    valued = [episodes[i] for i in active]
    plans = [plan_steps(ep, tokenizer, task, steps) for ep in valued]
    v0_group = mc.v0 == "group"
    v0 = group_loo_values(valued) if v0_group and valued else []

    states, state_meta, episode_states = dedup_states(valued, plans, first_step=1 if v0_group else 0)

    starts = [plans[e].starts[t] for e, t in state_meta]
    budgets = [max_new_tokens - st if per_state_budget else max_new_tokens for st in starts]
    texts = [valued[e].text[: plans[e].char_starts[t]] for e, t in state_meta]
    answers = [valued[e].question for e, _ in state_meta]  # graded as the question (its record, for reward.fn)
    sample = dict(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, stop=stop, version=version,
                  overlong=overlong)
    rounds = 1
    if mc.max_rollouts is not None:
        rewards, outs, rounds = adaptive_continuation_rewards(
            engine, grader, states, texts, answers, starts, budgets, k0=k, max_rollouts=mc.max_rollouts,
            new_rollouts=mc.new_rollouts, ci_threshold=mc.ci_length, seeds=seeds,
            cap_last_round=mc.cap_last_round, **sample)
    else:
        seed = seeds.take("mc", len(states) * k) if seeds is not None else None
        rewards, outs = continuation_rewards(engine, grader, states, texts, answers, starts, budgets, k=k,
                                             seed=seed, **sample) if states else ([], [])
    values = [sum(r) / len(r) for r in rewards]

    n_steps = n_capped = 0
    for i in skipped:  # no MC: every token 0, as GRPO / RLOO give a group whose rewards all agree
        episodes[i].advantages = [0.0] * len(episodes[i].response_ids)
    for e, (ep, plan, ids) in enumerate(zip(valued, plans, episode_states)):
        own = ([v0[e]] if v0_group and plan.estimated else []) + [values[i] for i in ids]
        # States past the cap take the trajectory's return (reference: values filled from the end).
        capped = len(plan.starts) - len(own)
        step_adv = step_advantages(own + [ep.reward] * capped, ep.reward)
        ep.advantages = [0.0] * len(ep.response_ids)
        for a, start, end in zip(step_adv, plan.starts, plan.ends):
            ep.advantages[start:end] = [a] * (end - start)
        n_steps += len(own)
        n_capped += capped

    # What skip_uniform_groups would drop (or dropped: then 0): the share of the advantage mass in groups
    # whose rollouts all agree, the bias of that shortcut in one number.
    uniform = uniform_group_members(episodes)
    mass = [sum(abs(a) for a in ep.advantages) for ep in episodes]
    metrics: dict[str, float] = {"mc/uniform_group_abs_adv_share": sum(mass[i] for i in uniform) / (sum(mass) or 1.0),
                                 "mc/uniform_groups": len({episodes[i].question.id for i in uniform})
                                 / max(len({ep.question.id for ep in episodes}), 1)}
    if mc.tree and tree_out is not None:
        rng = random.Random(f"{seeds.run_seed}/{seeds.iteration}/vine_tree" if seeds is not None else "vine_tree")
        extra, tree_metrics = tree_episodes([valued[e] for e, _ in state_meta], states, rewards, outs,
                                       limit=mc.tree_max, rng=rng)
        tree_out += extra
        metrics |= tree_metrics

    continuations = sum(len(r) for r in rewards)
    mc_tokens = sum(len(c.token_ids) for conts in outs for c in conts)
    return metrics | {
        "mc/states": float(n_steps),
        "mc/unique_states": float(len(states)),
        "mc/dedup_ratio": n_steps / max(len(states), 1),
        "mc/continuations": float(continuations),
        "mc/continuations_per_state": continuations / max(len(states), 1),
        "mc/rounds": float(rounds),
        "mc/tokens": float(mc_tokens),
        "mc/value_mean": sum(values) / max(len(values), 1),
        "mc/steps_per_episode": (n_steps + n_capped) / max(len(valued), 1),
        "mc/capped_states": float(n_capped),
        "mc/skipped_episodes": float(len(skipped)),
        "mc/requested_tokens": float(sum(b * len(r) for b, r in zip(budgets, rewards))),
    }
