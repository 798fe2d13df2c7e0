"""States at step boundaries of the policy's own trajectories, and alternative next steps from them.

A state is a prefix (prompt + the first t steps of a sampled response, 1 <= t < number of steps): the
prompt-only state and the final state are left out, as in the reference's analyzers (McGill-NLP/VinePPO
src/treetune/analyzers/valnet_prediction_analyzer.py `_create_mc_value_requests`: the ends of every
step but the last of a finished response). Steps are VinePPO's own (rlreason.algo.vineppo.plan_steps).

An alternative next step is a continuation sampled from the state with the policy, cut at the first
step boundary after the state, found by segmenting the whole new response with the same rule. A
continuation that is one step (it ends the response) is the final step; its eos token is dropped so that
s + a is text the estimators can continue from, as the reference does (it works on text, where eos does
not appear), and a continuation cut by the token budget is no valid step (nothing could follow it).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from rlreason.algo.vineppo import plan_steps
from rlreason.data.record import Question
from rlreason.engine.base import Completion, SamplingParams
from rlreason.rollout import Episode


@dataclass(frozen=True)
class Prefix:
    """Prompt + partial response: a state whose value is estimated."""

    question: Question
    prompt_ids: tuple[int, ...]
    response_ids: tuple[int, ...]
    text: str  # the response text so far; a continuation's text is appended to it for grading

    @property
    def key(self) -> tuple[int, ...]:
        return self.prompt_ids + self.response_ids


@dataclass
class State:
    prefix: Prefix
    trajectory: Episode  # the sampled response the state was cut from
    boundary: int  # the state is trajectory.response_ids[:boundary]
    actions: tuple[Prefix, Prefix] | None = None  # s + a1, s + a2; None when no distinct pair was drawn
    draws: int = 0  # pairs drawn until a distinct one came (0: none did)


def boundary_states(episodes: list[Episode], tokenizer, task: str, steps) -> list[State]:
    """Every prefix of every trajectory that ends at an intermediate step boundary, identical prefixes
    once (the first trajectory that produced it keeps it)."""
    seen: dict[tuple[int, ...], State] = {}
    for ep in episodes:
        plan = plan_steps(ep, tokenizer, task, steps)
        for b, c in zip(plan.starts[1:], plan.char_starts[1:]):
            p = Prefix(ep.question, tuple(ep.prompt_ids), tuple(ep.response_ids[:b]), ep.text[:c])
            seen.setdefault(p.key, State(p, ep, b))
    return list(seen.values())


def pick_states(pool: list[State], count: int, rng: random.Random) -> list[State]:
    """`count` states uniformly without replacement over the pooled (trajectory, boundary) states."""
    return rng.sample(pool, min(count, len(pool)))


def next_step(state: Prefix, cont: Completion, tokenizer, task: str, steps, max_new_tokens: int) -> Prefix | None:
    """s + (the continuation up to its first step boundary); None when the continuation reached the
    budget before any boundary (nothing could follow it)."""
    ids = list(state.response_ids) + list(cont.token_ids)
    text = tokenizer.decode(ids, skip_special_tokens=True)
    ep = Episode(state.question, list(state.prompt_ids), ids, [], text, cont.finish_reason)
    plan = plan_steps(ep, tokenizer, task, steps)
    n = len(state.response_ids)
    for b, c in zip(plan.starts, plan.char_starts):
        if b > n:
            return Prefix(state.question, state.prompt_ids, tuple(ids[:b]), text[:c])
    if ids and ids[-1] == tokenizer.eos_token_id:
        ids = ids[:-1]
    if cont.finish_reason == "length" or len(ids) >= max_new_tokens:
        return None
    return Prefix(state.question, state.prompt_ids, tuple(ids), text)


def draw_alternatives(engine, states: list[State], tokenizer, *, task: str, steps, temperature: float,
                      top_p: float, max_new_tokens: int, stop: tuple[str, ...], tries: int, seed: int | None,
                      version: int | None) -> int:
    """Set `actions` of every state to its first pair of distinct valid next steps among `tries` pairs
    drawn. The tries are sampled at once (one request of 2 x tries samples per state, one engine
    call) and taken in order: the same as redrawing a pair until it differs, without a call per round.
    Returns the tokens generated."""
    n = 2 * tries
    params = [SamplingParams(n=n, temperature=temperature, top_p=top_p, stop=stop,
                             max_tokens=max_new_tokens - len(s.prefix.response_ids),
                             seed=None if seed is None else seed + i * n) for i, s in enumerate(states)]
    outs = engine.continue_from([list(s.prefix.key) for s in states], params, version=version)
    for s, conts in zip(states, outs):
        cands = [next_step(s.prefix, c, tokenizer, task, steps, max_new_tokens) for c in conts]
        for j in range(0, n, 2):
            a, b = cands[j], cands[j + 1]
            if a is not None and b is not None and a.key != b.key:
                s.actions, s.draws = (a, b), j // 2 + 1
                break
    return sum(len(c.token_ids) for conts in outs for c in conts)
