"""Play an environment's episodes with an engine, turn by turn: a model's success rate on a game.

Each turn, every unfinished episode goes to the engine in one batched call, the turn ending at one of the
environment's stop strings; the action's sampled tokens and then the observation's tokens are appended to
the episode's ids (never re-tokenising the transcript), and the episode ends when the environment says
done or the turn or token budget runs out. This is the evaluation the tiny models' builder and the tests
use (model=tiny_guess's success band); RL's rollouts are rlreason's multi-turn loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rlreason.engine.base import SamplingParams
from rlreason.envs.base import Step


@dataclass
class Episode:
    env: Any
    ids: list[int]  # prompt, then each action's and observation's tokens
    actions: list[str] = field(default_factory=list)
    observations: list[str] = field(default_factory=list)
    rewards: list[float | dict[str, float]] = field(default_factory=list)
    done: bool = False

    @property
    def success(self) -> bool:
        """The contract's success: a reward dict's `correct` component summed over turns, else the return."""
        total = 0.0
        for r in self.rewards:
            total += r.get("correct", 0.0) if isinstance(r, dict) else r
        return total >= 1.0


def as_step(result: Step | tuple) -> Step:
    return result if isinstance(result, Step) else Step(*result)


def play(engine, tokenizer, env_cls, records: Sequence[dict], prompts: Sequence[list[int]], *,
         samples: int = 1, temperature: float = 1.0, seed: int = 0, max_turns: int = 16,
         max_turn_tokens: int = 16, max_len: int = 256) -> list[list[Episode]]:
    """`samples` episodes per record (prompt ids given), each turn sampled at `temperature` (0: greedy),
    seeded by (seed, episode, turn) so a game replays exactly. Returns the episodes per record."""
    episodes = [[Episode(env_cls(rec, seed + j), list(ids)) for j in range(samples)]
                for rec, ids in zip(records, prompts)]
    flat = [e for group in episodes for e in group]
    for e in flat:
        e.ids += tokenizer(e.env.reset(), add_special_tokens=False).input_ids
    stop = tuple(getattr(env_cls, "stop", ("\n",)))
    for turn in range(max_turns):
        active = [(k, e) for k, e in enumerate(flat) if not e.done and len(e.ids) < max_len]
        if not active:
            break
        params = [SamplingParams(n=1, temperature=temperature, max_tokens=min(max_turn_tokens, max_len - len(e.ids)),
                                 stop=stop, seed=seed * 1_000_003 + k * 64 + turn) for k, e in active]
        outs = engine.generate([e.ids for _, e in active], params)
        for (_, e), [completion] in zip(active, outs):
            step = as_step(e.env.step(completion.text))
            e.ids += list(completion.token_ids) + tokenizer(step.observation, add_special_tokens=False).input_ids
            e.actions.append(completion.text)
            e.observations.append(step.observation)
            e.rewards.append(step.reward)
            e.done = step.done
    return episodes


def success_figures(greedy: list[list[Episode]], sampled: list[list[Episode]]) -> dict[str, float]:
    """Greedy success, mean sampled success and pass@k (k = samples per record), as fractions of records."""
    n, k = len(sampled), len(sampled[0]) if sampled else 0
    rates = [sum(e.success for e in group) / k for group in sampled]
    return {"n_games": n, "greedy_success": round(sum(g[0].success for g in greedy) / max(1, len(greedy)), 4),
            "sampled_success": round(sum(rates) / max(1, n), 4),
            f"pass_at_{k}": round(sum(r > 0 for r in rates) / max(1, n), 4),
            "frac_partial": round(sum(0 < r < 1 for r in rates) / max(1, n), 4)}
