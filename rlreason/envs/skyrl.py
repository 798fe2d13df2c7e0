"""SkyRL-gym environments through env.cls: `adapt(cls)` wraps a skyrl_gym `BaseTextEnv` subclass (its
`init(prompt)` / `step(action)` contract) into rlreason's environment contract (ENV_INTERFACE.md:
`__init__(record, seed)`, `reset() -> str`, `step(action) -> (observation, reward, done)`).
An optional extra: `pip install 'rlreason[skyrl]'`.

    env.cls=skyrl_gym.envs.gsm8k.env:GSM8kEnv                          # the loader calls adapt() on it
    env.cls=skyrl_gym.envs.gsm8k.multi_turn_env:GSM8kMultiTurnEnv      # per-turn rewards, up to 5 turns

What the wrapper does, and how it reads SkyRL's own conventions:

- extras: SkyRL builds an environment as `cls(env_config, extras)`, extras being the dataset row without
  its `prompt` and `env_class` columns. The record (Question.row()) is that row: a SkyRL parquet row's
  `reward_spec`, `extra_info`, `max_turns`, `data_source` ... go through as they are. What SkyRL's
  preprocessing would have added is filled in when absent: `reward_spec` = {"method": "rule",
  "ground_truth": G} (and `reward_model`, verl's name for it, which AIMEEnv reads), G being the record's
  `answer` (a GSM8K answer's text after its last `####`, commas dropped, as SkyRL's gsm8k preprocessing
  does); `extra_info` = {}.
- init: called by reset() with the prompt as chat messages (the record's `prompt` when it is a list of
  messages, SkyRL's format; else one user message holding the question's text). rlreason has already
  rendered the prompt from the question (data.prompt_template / the chat template): messages that init
  appends after it become reset()'s text; an init that rewrites the prompt is refused (ValueError).
- observations: SkyRL's step returns chat messages. For a plain-text model they become text: each message's
  content on its own line, `"\\n" + "\\n".join(contents) + "\\n"` (the role is dropped), so the next action
  starts on a fresh line; none is "". `self.messages` keeps the last observation's messages as they were,
  for a loop that renders them with a chat template.
- rewards: each step's `reward` as a float; the episode's return is their sum (the loop's rule).
- done: the environment's own; on done its close() is called.
- max_turns: the instance's `max_turns` after construction (BaseTextEnv's default is 1: an environment that
  never sets it is single-turn, as in SkyRL). `stop`: the class's own `stop` when it has one, else none (a
  turn ends where the model's message ends, as in SkyRL, whose stop strings are a sampling setting:
  adapt(cls, stop=("</sql>",)) sets them).
- seed: SkyRL environments take none; it is kept as `self.seed`. Determinism in (record, actions) is the
  environment's own: SkyRL's built-in gsm8k, gsm8k_multi_turn and aime are pure functions of them.
- Not carried over: `postprocessed_action` (rlreason trains on the sampled tokens as they were; an
  environment that rewrites the action is told nothing), `metadata` (kept as `self.metadata`, not logged),
  tool groups (they run inside the environment's own step, as in SkyRL).
"""

from __future__ import annotations

import math
from typing import Any

_NOT_EXTRAS = ("prompt", "env_class")  # the columns SkyRL's PromptDataset takes out of a row


def adapt(cls: type, *, env_config: Any = None, stop: tuple[str, ...] | None = None) -> type:
    """A class following rlreason's environment contract around the SkyRL-gym environment class `cls`.
    `env_config`: what SkyRL passes as `env_config` (its `environment.skyrl_gym.<name>` node; the built-in
    gsm8k and aime ignore it). `stop`: end-of-turn stop strings (default: the class's `stop`, else none)."""
    if not (callable(getattr(cls, "init", None)) and callable(getattr(cls, "step", None))):
        raise TypeError(f"{cls!r} is not a SkyRL-gym environment: it needs init(prompt) and step(action) methods")
    own_stop = tuple(stop if stop is not None else getattr(cls, "stop", ()) or ())

    class SkyRLEnv:
        stop = own_stop
        max_turns: int | None = None  # known only once built: the instance's attribute
        skyrl_class = cls

        def __init__(self, record: dict, seed: int):
            self.record, self.seed = record, seed
            self.env = cls(env_config=env_config, extras=extras(record))
            turns = getattr(self.env, "max_turns", None)
            self.max_turns = turns if isinstance(turns, int) and turns > 0 else None
            self.messages: list[dict] = []
            self.metadata: dict = {}

        def reset(self) -> str:
            prompt = prompt_messages(self.record)
            out = self.env.init([dict(m) for m in prompt])
            messages, self.metadata = (out if isinstance(out, tuple) and len(out) == 2 else (out, {}))
            messages = list(messages or [])
            if messages[: len(prompt)] != prompt:
                raise ValueError(f"{cls.__name__}.init rewrote the prompt; rlreason renders the prompt from the "
                                 "question (data.prompt_template or the chat template), so only messages init "
                                 "appends after it can be used")
            self.messages = messages[len(prompt):]
            return render(self.messages)

        def step(self, action: str) -> tuple[str, float, bool]:
            out = self.env.step(action)
            if not isinstance(out, dict) or not {"observations", "reward", "done"} <= out.keys():
                raise TypeError(f"{cls.__name__}.step returned {type(out).__name__}: expected a "
                                "BaseTextEnvStepOutput (observations, reward, done, metadata)")
            reward = _reward(out["reward"], cls.__name__)
            self.messages, self.metadata = list(out["observations"] or []), out.get("metadata") or {}
            done = bool(out["done"])
            if done:
                self.env.close()
            return render(self.messages), reward, done

    SkyRLEnv.__name__ = SkyRLEnv.__qualname__ = f"SkyRL_{cls.__name__}"
    return SkyRLEnv


def extras(record: dict) -> dict:
    """SkyRL's `extras` for a row: every column but prompt and env_class, with reward_spec / reward_model
    and extra_info filled in when the row has none (see the module docstring)."""
    out = {k: v for k, v in record.items() if k not in _NOT_EXTRAS}
    truth = ground_truth(record)
    if truth is not None:
        out.setdefault("reward_spec", {"method": "rule", "ground_truth": truth})
        out.setdefault("reward_model", {"style": "rule", "ground_truth": truth})
    out.setdefault("extra_info", {})
    return out


def ground_truth(record: dict) -> str | None:
    """The record's gold answer as SkyRL's preprocessing writes ground_truth: GSM8K's `#### N` tail (commas
    out), a number as its text, else the answer string as it is; None without an `answer`."""
    answer = record.get("answer")
    if isinstance(answer, bool) or answer is None:
        return None
    if isinstance(answer, int | float):
        return str(answer)
    if isinstance(answer, str):
        return answer.rsplit("####", 1)[1].strip().replace(",", "") if "####" in answer else answer.strip()
    return None


def prompt_messages(record: dict) -> list[dict]:
    """The prompt as chat messages: the record's own `prompt` (SkyRL's format), else the question's text."""
    prompt = record.get("prompt")
    if isinstance(prompt, list | tuple) and all(isinstance(m, dict) and "content" in m for m in prompt):
        return [dict(m) for m in prompt]
    text = next((record[k] for k in ("problem", "question", "prompt") if isinstance(record.get(k), str)), "")
    return [{"role": "user", "content": text}]


def render(messages: list[dict]) -> str:
    """Observation messages as plain text: their contents, one after another on lines of their own."""
    if not messages:
        return ""
    return "\n" + "\n".join(str(m.get("content", "")) for m in messages) + "\n"


def _reward(value: Any, name: str) -> float:
    try:
        reward = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name}.step returned reward {value!r}: expected a number") from None
    if not math.isfinite(reward):
        raise ValueError(f"{name}.step returned reward {reward}: expected a finite number")
    return reward
