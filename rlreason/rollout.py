"""Rollouts: questions -> prompts -> engine samples -> graded episodes.

An Episode is one sampled response with everything the later rooms need (advantages, the update, the
stats store). A group is the list of episodes for one question.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rlreason.data.prompts import encode_prompts, format_prompt
from rlreason.data.record import Question
from rlreason.engine.base import SamplingParams
from rlreason.reward.overlong import Overlong
from rlreason.seeds import SeedStream


@dataclass
class Episode:
    question: Question
    prompt_ids: list[int]
    response_ids: list[int]
    logprobs: list[float]  # engine's log-probs of response_ids at the sampling temperature
    text: str
    finish_reason: str
    reward: float = 0.0
    reason: str = ""  # grader verdict: correct / wrong / no_answer / truncated / timeout / error
    extracted: str | None = None  # the answer the grader read from the text (for maj@n)
    components: dict[str, float] | None = None  # a reward function's named parts (reward.fn), unweighted
    advantages: list[float] = field(default_factory=list)  # per response token, filled by the algo
    returns: list[float] = field(default_factory=list)  # ppo: per-token value targets
    # env.cls (rlreason/envs/): 1 on the response tokens the policy sampled, 0 on the observations' tokens
    # between its turns (out of the loss, the KL and the entropy); None: all sampled (one turn).
    action_mask: list[int] | None = None
    env: Any = None  # env.cls: the episode's rlreason.envs.transcript.Transcript (turns, rewards, spans)

    @property
    def solved(self) -> bool:
        """Success, what accuracy and the curriculum count: the grader's `correct` verdict; an episode
        made without one (tests, tools) counts when its reward reaches 1, as the 0/1 checkers give."""
        return self.reason == "correct" if self.reason else self.reward >= 1.0

    @property
    def action_tokens(self) -> int:
        """Response tokens the policy sampled (what the loss is averaged over)."""
        return len(self.response_ids) if self.action_mask is None else sum(self.action_mask)


Group = list[Episode]


class Roller:
    """Questions -> graded groups through the engine. Also the `rollout_fn` the curriculum calls."""

    def __init__(self, engine, tokenizer, grader, *, task: str, template: str, use_chat_template: bool,
                 temperature: float, top_p: float, max_new_tokens: int, stop: tuple[str, ...] = (),
                 overlong: Overlong | None = None):
        """`overlong`: reward.overlong's penalty, added to the rewards of every phase but the eval's."""
        self.engine, self.tokenizer, self.grader, self.task = engine, tokenizer, grader, task
        self.template, self.use_chat_template = template, use_chat_template
        self.env = None  # env.cls: the rlreason.envs.Env that plays multi-turn episodes instead (build.py)
        self._encode = lambda q: encode_prompts([format_prompt(q, template, tokenizer, use_chat_template)], tokenizer,
                                                use_chat_template, batch=False)[0]
        self.temperature, self.top_p, self.max_new_tokens = temperature, top_p, max_new_tokens
        self.stop = tuple(stop)  # stop strings (rollout.stop)
        self.overlong = overlong
        self.version = 0  # policy version the engine must hold; the loop bumps it after each sync
        # The loop sets a fresh stream per iteration; each call reserves len(questions) x n seeds of its
        # phase (rlreason/seeds.py). None: the engine's own unseeded stream (tests, benchmarks).
        self.seeds: SeedStream | None = None
        self._prompt_ids: dict[str, list[int]] = {}

    def prompt_ids(self, q: Question) -> list[int]:
        if q.id not in self._prompt_ids:
            self._prompt_ids[q.id] = self._encode(q)
        return self._prompt_ids[q.id]

    def __call__(self, questions: list[Question], n: int, temperature: float | None = None,
                 top_p: float | None = None, phase: str = "rollout") -> list[Group]:
        """`phase` names the seed block the samples come from (a key of rlreason.seeds.PHASES)."""
        temperature = self.temperature if temperature is None else temperature
        top_p = self.top_p if top_p is None else top_p
        if self.env is not None:
            from rlreason.envs.rollout import env_rollout

            return env_rollout(self, questions, n, temperature, top_p, phase)
        seed = self.seeds.take(phase, len(questions) * n) if self.seeds is not None else None
        params = SamplingParams(n=n, temperature=temperature, top_p=top_p if temperature > 0 else 1.0,
                                max_tokens=self.max_new_tokens, stop=self.stop, seed=seed)
        prompts = [self.prompt_ids(q) for q in questions]
        outs = self.engine.generate(prompts, params, version=self.version)
        flat = [(q, p, c) for q, p, cs in zip(questions, prompts, outs) for c in cs]
        verdicts = self.grader.grade([c.text for _, _, c in flat], [q for q, _, _ in flat],
                                     [c.finish_reason == "length" for _, _, c in flat])
        if self.overlong is not None and not phase.startswith("eval"):
            verdicts = self.overlong.apply(verdicts, [len(c.token_ids) for _, _, c in flat])
        episodes = [Episode(q, p, list(c.token_ids), list(c.logprobs), c.text, c.finish_reason, v.reward, v.reason,
                            extracted=v.extracted, components=v.components) for (q, p, c), v in zip(flat, verdicts)]
        return [episodes[i * n:(i + 1) * n] for i in range(len(questions))]
