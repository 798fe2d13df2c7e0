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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rlreason.config import StepsConfig
from rlreason.engine.base import Completion, Engine, SamplingParams
from rlreason.rollout import Episode
from rlreason.seeds import SeedStream
from rlreason.segment import step_token_ends, token_char_offsets

if TYPE_CHECKING:
    from rlreason.reward import Grader


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


def dedup_states(episodes: list[Episode], plans: list[StepPlan]
                 ) -> tuple[list[list[int]], list[tuple[int, int]], list[list[int]]]:
    """Unique states by exact token prefix (same prefix, same value), of the estimated steps only.

    Returns the unique prefixes, the (episode, step) that first produced each, and for every episode
    the state index of each of its estimated steps.
    """
    index: dict[tuple[int, ...], int] = {}
    states: list[list[int]] = []
    first: list[tuple[int, int]] = []
    per_episode: list[list[int]] = []
    for e, (ep, plan) in enumerate(zip(episodes, plans)):
        ids = []
        for t, start in enumerate(plan.starts[:plan.estimated]):
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


def continuation_rewards(engine: Engine, grader: Grader, prefixes: list[list[int]], texts: list[str],
                         answers: list[str], starts: list[int], budgets: list[int], *, k: int, temperature: float,
                         top_p: float, max_new_tokens: int, stop: tuple[str, ...], seed: int | None,
                         version: int | None) -> tuple[list[list[float]], list[list[Completion]]]:
    """K graded continuations of every prefix (prompt + response tokens, the first `starts[i]` of them
    response), in one engine call: one request per prefix with its own token budget; prefix i's samples
    take seeds seed + i * k + j. Each continuation is graded as a full response, the prefix's response
    text + the continuation; one that reaches the trajectory's token budget (`max_new_tokens` response
    tokens) counts as truncated. Returns the rewards per prefix and the completions."""
    params = [SamplingParams(n=k, temperature=temperature, top_p=top_p, max_tokens=b, stop=tuple(stop),
                             seed=None if seed is None else seed + i * k) for i, b in enumerate(budgets)]
    outs = engine.continue_from(prefixes, params, version=version)
    graded, golds, truncated = [], [], []
    for text, answer, start, conts in zip(texts, answers, starts, outs, strict=True):
        for c in conts:
            graded.append(text + c.text)
            golds.append(answer)
            truncated.append(c.finish_reason == "length" or start + len(c.token_ids) > max_new_tokens)
    verdicts = grader.grade(graded, golds, truncated)
    return [[v.reward for v in verdicts[i * k:(i + 1) * k]] for i in range(len(prefixes))], outs


def assign_vineppo_advantages(
    episodes: list[Episode], engine: Engine, grader: Grader, tokenizer, *, task: str, k: int,
    temperature: float, top_p: float, max_new_tokens: int, steps: StepsConfig | None, seeds: SeedStream | None,
    version: int | None, stop: tuple[str, ...] = (), per_state_budget: bool = True,
) -> dict[str, float]:
    """Fill `ep.advantages` for every episode with MC step advantages; return MC metrics.

    `seeds`: the iteration's stream; the continuations take their own block of it (phase "mc"), so
    none shares a seed with a training sample (whose continuation from s_0 would otherwise be that
    very sample, biasing V(s_0) towards its own return). None: the engine's unseeded stream.
    `per_state_budget=False` asks every state for the full `max_new_tokens`, as rlreason did before
    (only `make bench` uses it, to measure what the per-state budget saves).
    """
    plans = [plan_steps(ep, tokenizer, task, steps) for ep in episodes]

    states, state_meta, episode_states = dedup_states(episodes, plans)

    starts = [plans[e].starts[t] for e, t in state_meta]
    budgets = [max_new_tokens - st if per_state_budget else max_new_tokens for st in starts]
    texts = [episodes[e].text[: plans[e].char_starts[t]] for e, t in state_meta]
    answers = [episodes[e].question.answer for e, _ in state_meta]
    seed = seeds.take("mc", len(states) * k) if seeds is not None else None
    rewards, outs = continuation_rewards(engine, grader, states, texts, answers, starts, budgets, k=k,
                                         temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                                         stop=stop, seed=seed, version=version)
    values = [sum(r) / k for r in rewards]

    n_steps = n_capped = 0
    for ep, plan, ids in zip(episodes, plans, episode_states):
        # States past the cap take the trajectory's return (reference: values filled from the end).
        capped = len(plan.starts) - len(ids)
        step_adv = step_advantages([values[i] for i in ids] + [ep.reward] * capped, ep.reward)
        ep.advantages = [0.0] * len(ep.response_ids)
        for a, start, end in zip(step_adv, plan.starts, plan.ends):
            ep.advantages[start:end] = [a] * (end - start)
        n_steps += len(ids)
        n_capped += capped

    mc_tokens = sum(len(c.token_ids) for conts in outs for c in conts)
    return {
        "mc/states": float(n_steps),
        "mc/unique_states": float(len(states)),
        "mc/dedup_ratio": n_steps / max(len(states), 1),
        "mc/continuations": float(len(states) * k),
        "mc/tokens": float(mc_tokens),
        "mc/value_mean": sum(values) / max(len(values), 1),
        "mc/steps_per_episode": (n_steps + n_capped) / max(len(episodes), 1),
        "mc/capped_states": float(n_capped),
        "mc/requested_tokens": float(sum(budgets) * k),
    }
