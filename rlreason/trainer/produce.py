"""The producer: one iteration's batch (selection -> rollout -> grading -> advantages), and the schedule
that builds it in line (trainer.async_level=0) or one batch ahead on a thread (async_level=1).

At level 1 the batch of iteration t+1 is produced while the learner trains on batch t, under the weights
the engine holds (those after iteration t-1); the loop syncs new weights only after that batch is
complete, so every trajectory of a batch and every MC continuation of its states come from one behaviour
policy (slime's schedule: start r+1, train r, wait for r+1, then sync). The learner then trains on data
one update old: the PPO ratio is against its own recomputed pi_old, and algo.tis_cap's weight
min(pi_old / pi_behaviour, cap) corrects the staleness (AReaL's decoupled objective).

Nothing the producer writes reaches the stats store before the loop takes its batch (`Staged`), and its
history queries see only iterations <= t-1 - async_level, so a batch regenerated after a resume is the
batch the uninterrupted run produced: the in-flight batch is never saved, only re-made.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import torch

from rlreason.algo import assign_outcome_advantages, assign_vineppo_advantages
from rlreason.distributed import select
from rlreason.seeds import SeedStream


@dataclass
class Batch:
    iteration: int
    groups: list
    episodes: list
    tree: list  # algo.mc.tree: VinePPO's continuations, trained beside the trajectories
    metrics: dict[str, float]
    behaviour: int  # the policy version (learner optimizer steps) that sampled all of it, MC included
    weights_iteration: int  # ... the iteration whose update produced those weights
    staged: Staged = field(default=None)  # type: ignore[assignment]
    reward_counts: dict[str, float] = field(default_factory=dict)  # reward/timeout, reward/error of its grading
    seconds: dict[str, float] = field(default_factory=dict)  # the phase seconds spent producing it


class Staged:
    """The store as the producer sees it: writes are held until the loop takes the batch (the store
    commits whole iterations, and iteration t is still being committed while t+1 is produced); history
    queries end at `horizon`, the last iteration committed when this batch's selection runs at level 1,
    so a batch regenerated on resume reads the same history. Its attempts get the behaviour policy's
    version: the one that sampled them."""

    def __init__(self, store, horizon: int, behaviour: int):
        self._store, self.horizon, self.behaviour = store, horizon, behaviour
        self.attempts: list = []
        self.selections: list[tuple[int, list[str], list[str]]] = []

    def add(self, attempts: list) -> None:
        self.attempts += [a if a.policy_version is not None else replace(a, policy_version=self.behaviour)
                          for a in attempts]

    def record_selection(self, iteration: int, pool: list[str], selected: list[str]) -> None:
        self.selections.append((iteration, pool, selected))

    def question_stats(self, current_iter: int, window=None, decay=None, phase=None):
        return self._store.question_stats(current_iter, window, decay, phase, until=self.horizon)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def flush(self) -> None:
        self._store.add(self.attempts)
        for s in self.selections:
            self._store.record_selection(*s)


def produce(run, it: int, phases, level: int = 0) -> Batch:
    """Iteration `it`'s batch under the weights the engine holds now (run.roller.version)."""
    cfg, roller = run.cfg, run.roller
    n = cfg.rollout.samples_per_question
    behaviour, weights_iteration = roller.version, run.weights_iteration
    # Every sample of the iteration gets its own seed, a function of (run seed, iteration, phase, index):
    # a replayed iteration draws the same samples, and no two samples of a run share a seed.
    roller.seeds = SeedStream(cfg.seed, it)
    staged = Staged(run.store, it - 1 - level, behaviour)
    spent: dict[str, float] = {}  # this batch's phase seconds (the loop's checkpoints leave out a batch in flight)
    sampler_store, run.sampler.store = run.sampler.store, staged
    try:
        with phases("selection", spent):
            # Global selection: the sampler runs on rank 0, its rollouts on every rank (rlreason/distributed/select.py),
            # over the producer's own group, like the engine's and the grader's gathers (build.py).
            sel = select.next_batch(run.dist.producer, run.sampler, it, cfg.trainer.questions_per_iteration, n,
                                    partial(roller, phase="selection"))
    finally:
        run.sampler.store = sampler_store
    with phases("rollout", spent):
        groups = sel.groups if sel.groups is not None else roller(sel.questions, n)
    run.grader.check(f"iteration {it}'s rollouts")  # a reward that fails on everything stops before any update
    episodes = [ep for g in groups for ep in g]
    metrics = dict(sel.metrics)  # curriculum/*: hit histograms, learnability, rollouts spent on selection
    tree: list = []

    with phases("mc" if cfg.algo.name == "vineppo" else "advantages", spent):
        if cfg.algo.name == "vineppo" and roller.env is not None:  # env.cls: values per turn (rlreason/envs/)
            from rlreason.envs.credit import assign_env_vineppo_advantages

            metrics |= assign_env_vineppo_advantages(
                episodes, roller.env.turns, run.tokenizer, task=roller.task, k=cfg.algo.mc_rollouts,
                temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p, steps=cfg.data.steps,
                seeds=roller.seeds, version=behaviour, mc=cfg.algo.mc, grader=run.grader,
                success_threshold=roller.env.success_threshold)
        elif cfg.algo.name == "vineppo":
            metrics |= assign_vineppo_advantages(
                episodes, run.engine, run.grader, run.tokenizer, task=roller.task, k=cfg.algo.mc_rollouts,
                temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p,
                max_new_tokens=cfg.rollout.max_new_tokens, steps=cfg.data.steps, stop=tuple(cfg.rollout.stop),
                seeds=roller.seeds, version=behaviour, mc=cfg.algo.mc, tree_out=tree, overlong=roller.overlong)
        elif cfg.algo.name in ("grpo", "rloo"):
            metrics |= assign_outcome_advantages(cfg.algo.name, groups, cfg.algo.normalize_std)
    if roller.env is not None:
        metrics |= roller.env.turns.take_timing()  # env/*_s, mc/env_*: what the turns and the environment cost
    # The grading verdicts of this batch travel with it (at level 1 they were made during the previous
    # iteration, whose metrics are not this batch's).
    return Batch(it, groups, episodes, tree, metrics, behaviour, weights_iteration, staged, run.grader.take(), spent)


def cuda_device(device: str | torch.device) -> torch.device | None:
    """The CUDA device the loop's thread has current, which the producer's thread must make its own; None
    off CUDA. A new thread starts on device 0: under torchrun rank r's vLLM would record its events on GPU
    0's stream ("Event device r does not match recording stream's device 0"), and every rank would open a
    context on GPU 0."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    return device if device.index is not None else torch.device("cuda", torch.cuda.current_device())


class Producer:
    """Batches for the loop: `take(it)` the batch of iteration `it`, `start(it)` produce it ahead (level
    1 only, on a thread), `join()` wait for it. The thread runs only between `start` and `join`; the loop
    touches the engine, roller, grader and sampler only outside that window.

    Under torchrun the thread's collectives (the engine's and the grader's gathers, the selection's
    broadcasts) go over the producer's own group (`Dist.producer`, rlreason/distributed/__init__.py). The
    loop uses that group too, for the eval and the weight sync, but only outside the window; inside it,
    the loop's thread runs only the learner's update (its own group and FSDP's default one). Checkpoints
    (the learner's group) are saved after `join`; the behaviour weights are gathered in `start`, before
    the thread starts."""

    def __init__(self, run, phases, level: int):
        self.run, self.phases, self.level = run, phases, level
        self._thread: threading.Thread | None = None
        self._ahead: dict[str, Any] = {}
        self.sampler_before: dict | None = None  # the sampler's state before the batch ahead was selected
        self.reward_counts: dict[str, float] = {}  # the grading failures of the batch taken last
        self.behaviour: dict | None = None  # the weights (and version) the batch ahead is sampled with

    def take(self, it: int) -> Batch:
        run = self.run
        ahead = self._ahead.pop("batch", None)
        batch = ahead if ahead is not None and ahead.iteration == it else produce(run, it, self.phases, self.level)
        batch.staged.flush()
        self.sampler_before, self.behaviour, self.reward_counts = None, None, batch.reward_counts
        return batch

    def remake(self, it: int) -> None:
        """Resumed one step off: make again the batch `it` that was in flight at the checkpoint, under the
        behaviour weights the checkpoint kept (trainer/build.py), then push the learner's, as the loop did
        once that batch was complete. Resume's cost, like build's: the loop calls it before its training
        wall clock starts (the run before the checkpoint spent that time already, overlapped with an
        update), and the checkpoint's phase seconds left the batch out, so they count it once."""
        run = self.run
        self._ahead["batch"] = produce(run, it, self.phases, self.level)
        run.engine.sync_weights(run.learner.named_weights(), run.learner.version)
        run.roller.version, run.weights_iteration = run.learner.version, it - 1

    def ahead_seconds(self) -> dict[str, float]:
        """The phase seconds of the batch produced ahead and not taken yet (none: {})."""
        batch = self._ahead.get("batch")
        return dict(batch.seconds) if batch is not None else {}

    def start(self, it: int) -> None:
        if self.level == 0 or it > self.run.cfg.trainer.iterations:
            return
        # A checkpoint of the current iteration must hold the sampler as it was before this selection and
        # the weights this batch is sampled with (the learner's until its update): resume regenerates the
        # batch from them, the very batch of the uninterrupted run.
        self.sampler_before = copy.deepcopy(self.run.sampler.state_dict())
        t = self.run.cfg.trainer
        if (it - 1) % t.checkpoint_every == 0:
            # Under torchrun every rank gathers the sharded weights (collectives, here on the loop's thread)
            # and rank 0 alone keeps the copy it writes (rlreason/distributed/checkpoint.py).
            named, main = self.run.learner.named_weights(), self.run.dist.main
            weights = {k: v.detach().to("cpu", copy=True) for k, v in named} if main else [None for _ in named]
            self.behaviour = {"version": self.run.roller.version, "iteration": self.run.weights_iteration,
                              "weights": weights if main else None}

        threads, device = torch.get_num_threads(), cuda_device(self.run.learner.device)

        def work() -> None:
            # OpenMP's thread count is per thread and a new one starts from the process default, not from
            # the loop's torch.set_num_threads; vLLM's CPU attention checks that its plan and its kernel
            # agree on it ("thread_num == thread_num (2 vs. 1)"). The current CUDA device is per thread too.
            torch.set_num_threads(threads)
            if device is not None:
                torch.cuda.set_device(device)
            try:
                self._ahead["batch"] = produce(self.run, it, self.phases, self.level)
            except BaseException as e:  # re-raised in the loop's thread by join()
                self._ahead["error"] = e

        self._thread = threading.Thread(target=work, name=f"rlreason-producer-{it}", daemon=True)
        self._thread.start()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if (error := self._ahead.pop("error", None)) is not None:
            raise error

    def sampler_state(self) -> dict:
        """The sampler state a checkpoint of the current iteration saves."""
        return self.sampler_before if self.sampler_before is not None else self.run.sampler.state_dict()
