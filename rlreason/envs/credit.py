"""VinePPO's credit per turn: Monte-Carlo values of mid-episode states of a multi-turn episode.

An episode's states are the start of every turn (after the previous observation's tokens) and the
step boundaries inside each action by the task's step rule (data.steps, rlreason/segment.py). V(s) is the
mean return-to-go of K continuations from s: each rebuilds the environment from a fresh instance,
replays the recorded actions up to s (checking the observations it gets back against the recorded ones:
a mismatch ends that continuation as an `error`, counted in mc/replay_mismatch), then plays on (the
engine writes, the environment steps) until done, the turn cap or the episode's token budget. Every
turn of every continuation goes to the engine in one batched call (rlreason/envs/rollout.py).

Return-to-go: the rewards of the turns stepped from s on (a turn's reward belongs to the step holding
its action's last token); V(terminal) = 0, and step k's advantage A_k = r_k + V(s_{k+1}) - V(s_k) is
given to every action token of step k (gamma = 1, as single-turn VinePPO). States are never shared
between episodes: each episode's environment has its own seed, so equal tokens are not equal states.
algo.mc.v0=group takes V(s_0) from the group's other returns; data.steps.max_value_steps caps the
estimated states (later ones take the trajectory's own return-to-go); skip_uniform_groups is honoured.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

from rlreason.algo.vineppo import group_loo_values, uniform_group_members
from rlreason.envs.rollout import Play
from rlreason.envs.transcript import Transcript
from rlreason.segment import step_token_ends, token_char_offsets

TURN_METRICS = 8  # mc/turn_value/<t> and mc/turn_advantage/<t> for the first turns


@dataclass
class State:
    position: int  # response tokens before it
    turn: int  # the action it is in or starts (0-based)
    chars: int  # characters of that action already written (0 at a turn's start)


def states_of(ep, tokenizer, task: str, steps) -> list[State]:
    """The episode's states in order: each turn's start, then its steps' ends inside the action; a last
    action cut by the token budget starts a state too. s_0 (position 0) is always the first."""
    t = ep.env
    out = []
    for turn, ((s, e), action) in enumerate(zip(t.spans, t.actions)):
        out.append(State(s, turn, 0))
        offsets = token_char_offsets(tokenizer, ep.response_ids[s:e])
        for end in step_token_ends(action, offsets, task, steps)[:-1]:
            out.append(State(s + end, turn, offsets[end - 1][1]))
    if t.cut_start is not None and t.cut_start > (out[-1].position if out else -1):
        out.append(State(t.cut_start, len(t.spans), 0))
    return out or [State(0, 0, 0)]


def step_rewards(ep, states: list[State]) -> list[float]:
    """r_k: the rewards of the turns whose action's last token lies in step k (tokens [p_k, p_{k+1}))."""
    positions = [s.position for s in states]
    out = [0.0] * len(states)
    for (_, end), r in zip(ep.env.spans, ep.env.turn_totals()):
        out[bisect_right(positions, end - 1) - 1] += r
    return out


def continuation(ep, state: State) -> Play:
    """A Play resumed at `state`: the recorded turns before it, its action begun (mid-turn), and a replay
    from a fresh instance on its first step."""
    t = ep.env
    turns = state.turn
    transcript = Transcript(t.seed, list(t.observations[:turns + 1]), list(t.actions[:turns]),
                            list(t.rewards[:turns]), list(t.spans[:turns]), reset_tokens=t.reset_tokens)
    p = state.position
    play = Play(ep.question.row(), list(ep.prompt_ids), transcript, list(ep.response_ids[:p]), list(ep.logprobs[:p]),
                list(ep.action_mask[:p]), fresh=True)
    if state.chars:
        play.partial, play.partial_start = t.actions[turns][:state.chars], t.spans[turns][0]
    return play


def assign_env_vineppo_advantages(episodes, turns, tokenizer, *, task: str, k: int, temperature: float,
                                  top_p: float, steps, seeds, version, mc, grader=None,
                                  success_threshold: float = 1.0) -> dict[str, float]:
    """Fill `ep.advantages` of played episodes with MC step advantages at turn boundaries and inside
    turns; return mc/* metrics. `turns`: the Roller's Turns (engine, environment workers, limits)."""
    skipped = uniform_group_members(episodes) if mc.skip_uniform_groups else set()
    active = [i for i in range(len(episodes)) if i not in skipped]
    valued = [episodes[i] for i in active]
    v0 = group_loo_values(valued) if mc.v0 == "group" and valued else None
    plans = [states_of(ep, tokenizer, task, steps) for ep in valued]
    cap = steps.max_value_steps if steps is not None else None
    wanted = []  # (episode, state index) estimated by MC
    for e, states in enumerate(plans):
        last = len(states) if cap is None else min(len(states), cap + 1)
        wanted += [(e, j) for j in range(1 if v0 is not None else 0, last)]
    plays = [continuation(valued[e], plans[e][j]) for e, j in wanted for _ in range(k)]
    starts = [len(p.transcript.rewards) for p in plays]
    if plays:
        turns.play(plays, temperature=temperature, top_p=top_p, version=version, seeds=seeds, phase="mc")
    verdicts = [p.transcript.verdict(success_threshold) for p in plays]
    if grader is not None and (record := getattr(grader, "record", None)) is not None:
        record(verdicts)
    returns = [sum(p.transcript.turn_totals()[s:]) for p, s in zip(plays, starts)]
    mc_values = {key: sum(returns[i * k:(i + 1) * k]) / k for i, key in enumerate(wanted)}

    for i in skipped:
        episodes[i].advantages = [0.0] * len(episodes[i].response_ids)
    turn_values: dict[int, list[float]] = {}  # V at each turn's start, over the episodes that reached it
    turn_advs: dict[int, list[float]] = {}  # each turn's advantage: the sum of its steps'
    n_capped = 0
    for e, (ep, states) in enumerate(zip(valued, plans)):
        r = step_rewards(ep, states)
        to_go = [sum(r[j:]) for j in range(len(states))]  # the trajectory's own, for capped states
        values = [mc_values.get((e, j), to_go[j]) for j in range(len(states))]
        if v0 is not None:
            values[0] = v0[e]
        n_capped += sum((e, j) not in mc_values for j in range(1 if v0 is not None else 0, len(states)))
        adv = [r[j] + (values[j + 1] if j + 1 < len(states) else 0.0) - values[j] for j in range(len(states))]
        bounds = [s.position for s in states] + [len(ep.response_ids)]
        ep.advantages = [0.0] * len(ep.response_ids)
        for j, a in enumerate(adv):
            ep.advantages[bounds[j]:bounds[j + 1]] = [a] * (bounds[j + 1] - bounds[j])
        sums: dict[int, float] = {}
        for j, s in enumerate(states):
            if s.chars == 0:
                turn_values.setdefault(s.turn, []).append(values[j])
            sums[s.turn] = sums.get(s.turn, 0.0) + adv[j]
        for t, a in sums.items():
            turn_advs.setdefault(t, []).append(a)

    metrics = {"mc/states": float(sum(len(s) for s in plans)), "mc/unique_states": float(len(wanted)),
               "mc/continuations": float(len(plays)),
               "mc/tokens": float(sum(len(p.response_ids) for p in plays) - k * sum(plans[e][j].position
                                                                                     for e, j in wanted)),
               "mc/value_mean": sum(mc_values.values()) / max(len(mc_values), 1),
               "mc/steps_per_episode": sum(len(s) for s in plans) / max(len(valued), 1),
               "mc/capped_states": float(n_capped), "mc/skipped_episodes": float(len(skipped)),
               "mc/replay_mismatch": float(sum(p.transcript.end == "mismatch" for p in plays)),
               "mc/env_failures": float(sum(p.transcript.end in ("timeout", "error") for p in plays))}
    for t in range(TURN_METRICS):
        if t in turn_values:
            metrics[f"mc/turn_value/{t}"] = sum(turn_values[t]) / len(turn_values[t])
    for t in range(TURN_METRICS):
        if t in turn_advs:
            metrics[f"mc/turn_advantage/{t}"] = sum(turn_advs[t]) / len(turn_advs[t])
    return metrics
