"""Rollouts with turns: the engine writes an action up to an end-of-turn stop, the environment answers,
its observation's tokens are appended, until done, the turn cap or the token budget.

Every active episode's next turn goes to the engine in one batched call (`play`), every step to the
environment workers in one pool call. The token budget (rollout.max_new_tokens) is over the whole
episode's response: the actions' tokens and the observations' together, so that prompt + response
always fits the context the run checked (rlreason/data/fit.py); reset()'s tokens, appended to the
prompt, count against it too. Each turn may write what is left.
VinePPO's continuations from a mid-episode state are played by the same loop (rlreason/envs/credit.py).
"""

from __future__ import annotations

import time
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from rlreason.data.prompts import format_prompt
from rlreason.engine.base import SamplingParams
from rlreason.envs.transcript import Transcript
from rlreason.envs.worker import EnvPool, Job

# Turns.timing's (phase, what) -> the metric it is logged as (rlreason/metrics.py has their meanings).
TIMING_METRICS = {
    ("rollout", "engine_s"): "env/engine_s", ("rollout", "env_s"): "env/step_s",
    ("rollout", "worker_s"): "env/worker_s", ("rollout", "replay_s"): "env/replay_s",
    ("rollout", "replayed_steps"): "env/replayed_actions", ("rollout", "steps"): "env/step_jobs",
    ("mc", "engine_s"): "mc/engine_s", ("mc", "env_s"): "mc/env_step_s",
    ("mc", "worker_s"): "mc/env_worker_s", ("mc", "replay_s"): "mc/env_replay_s",
    ("mc", "replayed_steps"): "mc/env_replayed_actions", ("mc", "steps"): "mc/env_step_jobs",
}


class Renderer:
    """Observation text -> the tokens appended to the transcript. Plain-text models: the text verbatim,
    tokenised on its own. Chat-template models: a user turn as the template writes it, followed by the
    next assistant turn's header, and before it whatever closes the assistant's turn that the model did
    not write itself (ChatML: the newline after <|im_end|> when the action ended on eos, the whole
    "<|im_end|>\\n" when it ended on a stop string)."""

    def __init__(self, tokenizer, use_chat_template: bool):
        self.tokenizer, self.chat = tokenizer, use_chat_template
        if use_chat_template:
            probe = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "\x00A"}]
            closed = tokenizer.apply_chat_template(probe, tokenize=False)
            self.close = closed[closed.rindex("\x00A") + 2:]  # what the template writes after an assistant turn
            self._base = len(closed)
            self._probe = probe
            eos = tokenizer.eos_token_id
            self.eos_text = tokenizer.decode([eos], skip_special_tokens=False) if eos is not None else None

    def ids(self, observation: str, ended_on_eos: bool) -> list[int]:
        if not self.chat:
            return self.tokenizer(observation, add_special_tokens=False)["input_ids"]
        full = self.tokenizer.apply_chat_template(self._probe + [{"role": "user", "content": observation}],
                                                  tokenize=False, add_generation_prompt=True)
        glue = self.close
        if ended_on_eos and self.eos_text and glue.startswith(self.eos_text):
            glue = glue[len(self.eos_text):]
        return self.tokenizer(glue + full[self._base:], add_special_tokens=False)["input_ids"]


@dataclass
class Play:
    """An episode being played: its record and tokens so far."""

    record: dict
    prompt_ids: list[int]
    transcript: Transcript
    response_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    partial: str = ""  # the text of an action begun before the state it was resumed from (MC, mid-turn)
    partial_start: int | None = None  # ... and where its tokens start in response_ids
    fresh: bool = False  # its next step replays the environment from a fresh instance (MC continuations)
    next_seed: int | None = None  # the seed of its next turn, when already chosen (the first turn's)

    @property
    def ended(self) -> bool:
        return bool(self.transcript.end)


@dataclass
class Turns:
    """How turns are played: the engine, the environment workers and the limits."""

    engine: Any
    pool: EnvPool
    renderer: Renderer
    stop: tuple[str, ...]  # the environment's end-of-turn strings (+ rollout.stop)
    max_turns: int | None  # min(env.max_turns, the class's own); None: until done or the budget
    budget: int  # rollout.max_new_tokens: response tokens (actions + observations) per episode
    eos_ids: tuple[int, ...] = ()
    # Cost accumulators per phase ("rollout", "mc", ...) until `take_timing`: (phase, what) -> seconds or
    # counts. Wall seconds in this process for the engine's calls and the workers' answers; the workers'
    # own seconds for the jobs and the rebuilding/replaying in them.
    timing: defaultdict = field(default_factory=lambda: defaultdict(float))

    def step(self, jobs: list[Job], phase: str) -> list:
        """The jobs' outcomes from the environment workers, their cost counted under `phase`."""
        t = time.perf_counter()
        outs = self.pool.run(jobs)
        tm = self.timing
        tm[phase, "env_s"] += time.perf_counter() - t
        tm[phase, "worker_s"] += sum(o.work_s for o in outs)
        tm[phase, "replay_s"] += sum(o.replay_s for o in outs)
        tm[phase, "replayed_steps"] += sum(o.replayed for o in outs)
        tm[phase, "steps"] += sum(bool(j.actions) for j in jobs)
        return outs

    def take_timing(self) -> dict[str, float]:
        """The batch rollout's (env/*) and VinePPO continuations' (mc/*) cost metrics since the last take;
        other phases' (selection, eval) are dropped."""
        out = {TIMING_METRICS[key]: v for key, v in self.timing.items() if key in TIMING_METRICS}
        self.timing.clear()
        return out

    def left(self, p: Play) -> int:
        """Tokens the episode may still add: the budget less reset()'s tokens and its response so far."""
        return self.budget - p.transcript.reset_tokens - len(p.response_ids)

    def play(self, plays: list[Play], *, temperature: float, top_p: float, version: int | None,
             seeds=None, phase: str = "rollout") -> None:
        """Play every episode to its end, in place. `seeds`: the iteration's SeedStream (a fresh block of
        `phase` per turn) or None (the engine's own stream)."""
        for p in plays:
            if not p.ended and self.left(p) <= 0:  # reset()'s tokens took the whole budget
                p.transcript.end = "budget"
        active = [p for p in plays if not p.ended]
        while active:
            need = [p for p in active if p.next_seed is None]
            base = seeds.take(phase, len(need)) if seeds is not None and need else None
            turn_seeds = {id(p): None if base is None else base + i for i, p in enumerate(need)}
            params = [SamplingParams(n=1, temperature=temperature, top_p=top_p if temperature > 0 else 1.0,
                                     max_tokens=self.left(p), stop=self.stop,
                                     seed=p.next_seed if p.next_seed is not None else turn_seeds[id(p)])
                      for p in active]
            for p in active:
                p.next_seed = None
            t = time.perf_counter()
            outs = self.engine.continue_from([p.prompt_ids + p.response_ids for p in active], params, version=version)
            self.timing[phase, "engine_s"] += time.perf_counter() - t
            stepping: list[tuple[Play, bool]] = []
            for p, (c,) in zip(active, outs):
                start = len(p.response_ids) if p.partial_start is None else p.partial_start
                p.response_ids += list(c.token_ids)
                p.logprobs += list(c.logprobs)
                p.mask += [1] * len(c.token_ids)
                action = p.partial + c.text
                p.partial, p.partial_start = "", None
                if c.finish_reason == "length":
                    p.transcript.end, p.transcript.cut_start = "budget", start  # a cut action is not stepped
                    continue
                p.transcript.actions.append(action)
                p.transcript.spans.append((start, len(p.response_ids)))
                stepping.append((p, bool(c.token_ids) and c.token_ids[-1] in self.eos_ids))
            jobs = [Job(p.record, p.transcript.seed, tuple(p.transcript.actions), tuple(p.transcript.observations),
                        fresh=p.fresh) for p, _ in stepping]
            for (p, on_eos), out in zip(stepping, self.step(jobs, phase)):
                p.fresh = False
                t = p.transcript
                if out.status != "ok":
                    t.end, t.detail = out.status, out.detail
                    continue
                t.observations.append(out.observation)
                t.rewards.append(out.reward)
                if out.done:
                    t.end = "done"
                elif self.max_turns is not None and t.turns >= self.max_turns:
                    t.end = "max_turns"
                else:
                    ids = self.renderer.ids(out.observation, on_eos)
                    if len(ids) >= self.left(p):
                        t.end = "budget"  # no room left to write a turn after it
                    else:
                        p.response_ids += ids
                        p.logprobs += [0.0] * len(ids)
                        p.mask += [0] * len(ids)
            active = [p for p in active if not p.ended]


def start_plays(questions: list, n: int, roller, seeds: int | None, phase: str = "rollout") -> list[Play]:
    """n fresh episodes per question: each environment built and reset (in the workers), its first
    observation appended to the prompt. The environment's seed is the episode's first sampling seed."""
    records = [q.row() for q in questions for _ in range(n)]
    env_seeds = [seeds + i if seeds is not None else zlib.crc32(f"{q.id}/{j}".encode())
                 for i, (q, j) in enumerate((q, j) for q in questions for j in range(n))]
    outs = roller.env.turns.step([Job(r, s, (), ()) for r, s in zip(records, env_seeds)], phase)
    plays = []
    for q, rec, seed, out in zip((q for q in questions for _ in range(n)), records, env_seeds, outs):
        t = Transcript(seed)
        if out.status != "ok":
            t.end, t.detail = out.status, out.detail
        else:
            t.observations.append(out.observation)
        prompt = prompt_with_reset(roller, q, out.observation if out.status == "ok" else "")
        t.reset_tokens = max(len(prompt) - len(roller.prompt_ids(q)), 0)
        plays.append(Play(rec, prompt, t, next_seed=seed if seeds is not None else None))
    return plays


def prompt_with_reset(roller, q, reset: str) -> list[int]:
    """The prompt's tokens followed by reset()'s: for a chat template, reset's text ends the user turn."""
    if not reset:
        return list(roller.prompt_ids(q))
    if roller.use_chat_template:
        content = format_prompt(q, roller.template, roller.tokenizer, False) + reset
        text = roller.tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                                   add_generation_prompt=True)
        return roller.tokenizer(text, add_special_tokens=False)["input_ids"]
    return list(roller.prompt_ids(q)) + roller.tokenizer(reset, add_special_tokens=False)["input_ids"]


def env_rollout(roller, questions: list, n: int, temperature: float, top_p: float, phase: str) -> list:
    """Roller.__call__ for an environment: n played, graded episodes per question."""
    from rlreason.rollout import Episode

    env = roller.env
    seed = roller.seeds.take(phase, len(questions) * n) if roller.seeds is not None else None
    plays = start_plays(questions, n, roller, seed, phase)  # the first turn samples with the environments' seeds
    env.turns.play(plays, temperature=temperature, top_p=top_p, version=roller.version, seeds=roller.seeds,
                   phase=phase)
    verdicts = [p.transcript.verdict(env.success_threshold) for p in plays]
    if (record := getattr(roller.grader, "record", None)) is not None:
        record(verdicts)  # timeouts and errors counted and shown as the grader's are (reward/*)
    episodes = [Episode(q, p.prompt_ids, p.response_ids, p.logprobs, transcript_text(p), "length"
                        if p.transcript.end == "budget" else "stop", v.reward, v.reason, extracted=v.extracted,
                        components=v.components, action_mask=p.mask, env=p.transcript)
                for q, p, v in zip((q for q in questions for _ in range(n)), plays, verdicts)]
    return [episodes[i * n:(i + 1) * n] for i in range(len(questions))]


def transcript_text(p: Play) -> str:
    """The episode's text as the policy saw it after the prompt: actions and observations in turn."""
    t, out = p.transcript, []
    for i, a in enumerate(t.actions):
        out.append(a)
        if i + 1 < len(t.observations) and i + 1 < len(t.actions):
            out.append(t.observations[i + 1])
    return "".join(out)
