"""Shared set-up of the env tests: a Roller that plays a test environment on the session's engine."""

from pathlib import Path

from rlreason.data.record import Question
from rlreason.envs.load import inspect_env
from rlreason.envs.rollout import Renderer, Turns
from rlreason.envs.setup import Env
from rlreason.envs.worker import EnvPool
from rlreason.reward.meter import GradeMeter
from rlreason.rollout import Roller

ENVS = Path(__file__).with_name("envs.py")
QUESTIONS = [Question(f"q{i}", f"{i}+{i}", str(2 * i)) for i in range(2)]


def env_roller(engine, tokenizer, name: str, *, budget: int = 120, max_turns: int | None = None,
               timeout_s: float = 5.0, chat: bool = False) -> Roller:
    spec = f"{ENVS}:{name}"
    info = inspect_env(spec)
    caps = [c for c in (info["max_turns"], max_turns) if c is not None]
    pool = EnvPool(spec, timeout_s=timeout_s, workers=2)
    turns = Turns(engine, pool, Renderer(tokenizer, chat), info["stop"], min(caps) if caps else None, budget,
                  (tokenizer.eos_token_id,))
    roller = Roller(engine, tokenizer, GradeMeter(None, say=lambda _: None), task="fn", template="{problem}\n",
                    use_chat_template=chat, temperature=1.0, top_p=1.0, max_new_tokens=budget)
    roller.env = Env(turns, pool, 1.0)
    return roller
