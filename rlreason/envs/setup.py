"""env.* for a run: the checks before compute (torch-free: validation imports them), the Env a Roller
plays with, and the env/* metrics."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rlreason.envs.load import EnvError, inspect_env

if TYPE_CHECKING:
    from rlreason.envs.rollout import Turns
    from rlreason.envs.worker import EnvPool


@dataclass
class Env:
    """What a Roller plays episodes with (Roller.env)."""

    turns: Turns
    pool: EnvPool
    success_threshold: float

    def close(self) -> None:
        self.pool.close()


def turn_stops(info: dict[str, Any], rollout_stop) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*info["stop"], *rollout_stop]))


def turn_cap(info: dict[str, Any], max_turns: int | None) -> int | None:
    caps = [c for c in (info["max_turns"], max_turns) if c is not None]
    return min(caps) if caps else None


def make_env(cfg, engine, tokenizer, budget: int | None = None, stop=None) -> Env | None:
    """The Env env.cls asks for (None without one); the class was checked by validation. `budget` and
    `stop`: the response budget and extra stop strings, rollout.*'s unless given (the eval's own)."""
    if not getattr(cfg, "env", None) or not cfg.env.cls:
        return None
    budget = cfg.rollout.max_new_tokens if budget is None else budget
    stop = cfg.rollout.stop if stop is None else stop
    from rlreason.envs.rollout import Renderer, Turns  # the engine's side (torch): not for validation
    from rlreason.envs.worker import EnvPool

    r = cfg.reward
    info = inspect_env(cfg.env.cls, r.startup_timeout_s)
    pool = EnvPool(cfg.env.cls, timeout_s=r.timeout_s, workers=r.workers, startup_timeout_s=r.startup_timeout_s)
    eos = tokenizer.eos_token_id
    turns = Turns(engine, pool, Renderer(tokenizer, cfg.data.use_chat_template), turn_stops(info, stop),
                  turn_cap(info, cfg.env.max_turns), budget, (eos,) if eos is not None else ())
    return Env(turns, pool, r.success_threshold)


def env_problems(cfg) -> list[str]:
    """What env.* cannot run with, one line each, before any compute (validate() adds them to its list);
    env.cls is imported and checked in a spawned child (rlreason/envs/load.py)."""
    e = cfg.env
    if e.max_turns is not None and e.max_turns < 1:
        return [f"env.max_turns={e.max_turns} must be >= 1, or null (until done or the token budget)"]
    if not e.cls:
        return []
    problems = []
    algo = getattr(cfg, "algo", None)
    if algo is not None and algo.name == "vineppo":
        if algo.mc.tree:
            problems.append("algo.mc.tree=true is not supported with env.cls (continuations are played "
                            "episodes, not single responses): set algo.mc.tree=false")
        if algo.mc.max_rollouts is not None:
            problems.append("algo.mc.max_rollouts (adaptive K) is not supported with env.cls yet: set "
                            "algo.mc.max_rollouts=null")
    if cfg.reward.fn:
        problems.append("reward.fn is not used with env.cls (the environment's step() gives the rewards): "
                        "set reward.fn=null")
    if cfg.reward.overlong.penalty:
        problems.append("reward.overlong is not supported with env.cls: set reward.overlong.penalty=0")
    trainer = getattr(cfg, "trainer", None)
    if trainer is not None and trainer.async_level:
        problems.append("trainer.async_level=1 is not supported with env.cls yet: set trainer.async_level=0")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        problems.append("env.cls runs in a single process: torchrun (WORLD_SIZE>1) is not supported with it yet")
    if problems:
        return problems
    try:
        inspect_env(e.cls, cfg.reward.startup_timeout_s)
    except EnvError as err:
        problems.append(str(err))
    return problems


def env_metrics(episodes) -> dict[str, float]:
    """env/*: turns per episode, observation tokens, and how episodes ended (shares)."""
    played = [ep for ep in episodes if ep.env is not None]
    if not played:
        return {}
    n = len(played)
    out = {"env/turns": sum(ep.env.turns for ep in played) / n,
           "env/observation_tokens": sum(len(ep.response_ids) - ep.action_tokens for ep in played) / n}
    for end in ("done", "max_turns", "budget", "timeout", "error", "mismatch"):
        out[f"env/end_{end}"] = sum(ep.env.end == end for ep in played) / n
    return out
