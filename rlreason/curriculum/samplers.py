"""Curricula: which questions the learner trains on next, chosen by `curriculum.name`.

The loop calls `sampler.next_batch(iteration, batch, n_train, rollout_fn)` once per iteration. Samplers
that generate rollouts to choose (learnability, filter_groups) write them to the stats store as phase
"selection"; the loop writes the training and eval attempts and commits the iteration. Rollouts that
are handed back as training groups are therefore stored twice, once per phase: query with a phase.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rlreason.config import CurriculumConfig
from rlreason.curriculum.order import derived_rng, make_order
from rlreason.curriculum.store import QuestionStat, StatsStore, attempts_from_groups
from rlreason.data.record import Question
from rlreason.rollout import Group

RolloutFn = Callable[[list[Question], int], list[Group]]  # questions, n samples each -> graded groups
HISTORY_PHASE = "train"  # history samplers learn from the rollouts the policy trained on


@dataclass
class Selection:
    questions: list[Question]  # the batch to train on
    groups: list[Group] | None  # training rollouts reused from selection (aligned with questions), else None
    selection_rollouts: int  # responses generated to choose the batch (the curriculum's compute cost)
    metrics: dict[str, float] = field(default_factory=dict)  # curriculum/... for logging


def learnability(p: float, n: int, bessel: bool = False) -> float:
    """p(1-p), the variance of a 0/1 outcome; bessel scales by n/(n-1) to unbias the n-attempt estimate.
    p is a question's success rate (Episode.solved), not its mean reward: with a reward function whose
    rewards are not 0/1 (partial credit, weighted components) LILO still ranks questions by how often
    they are solved, its paper's p-hat."""
    score = p * (1 - p)
    return score * n / (n - 1) if bessel and n > 1 else score


def group_metrics(groups: list[Group], prefix: str) -> dict[str, float]:
    """Shares of questions hit i of n, solved by all / none, and mean p(1-p), for a set of groups."""
    if not groups:
        return {}
    hits = [(sum(ep.solved for ep in g), len(g)) for g in groups]
    out = {f"{prefix}/hit_{i}_of_{n}": c / len(groups) for (i, n), c in sorted(Counter(hits).items())}
    out[f"{prefix}/all_solved"] = sum(i == n for i, n in hits) / len(groups)
    out[f"{prefix}/none_solved"] = sum(i == 0 for i, _ in hits) / len(groups)
    out[f"{prefix}/learnability"] = statistics.fmean(
        learnability(success_rate(g), len(g)) for g in groups)
    return out


def success_rate(group: Group) -> float:
    return statistics.fmean(ep.solved for ep in group)


def top_k(scores: list[float], k: int, rng: Any) -> list[int]:
    """Indices of the k highest scores, best first; equal scores in random order."""
    keys = [rng.random() for _ in scores]
    return sorted(range(len(scores)), key=lambda i: (-scores[i], keys[i]))[:k]


class Sampler:
    name = ""

    def __init__(self, cfg: CurriculumConfig, train: list[Question], store: StatsStore, seed: int):
        if not train:
            raise ValueError("curriculum: the train set is empty")
        self.cfg, self.train, self.store, self.seed = cfg, train, store, seed
        self.index = {q.id: i for i, q in enumerate(train)}
        self.order = make_order(len(train), seed, cfg.with_replacement)

    def next_batch(self, iteration: int, batch: int, n_train: int, rollout_fn: RolloutFn) -> Selection:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "order": self.order.state_dict()}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        if d.get("name") != self.name:
            raise ValueError(f"sampler state is for curriculum {d.get('name')!r}, this run uses {self.name!r}")
        self.order.load_state_dict(d["order"])

    # -- shared steps --------------------------------------------------------------------------------

    def _begin(self, iteration: int, batch: int) -> None:
        if not 0 < batch <= len(self.train):
            raise ValueError(f"curriculum: batch of {batch} from a train set of {len(self.train)}")
        self.order.begin(iteration)  # with replacement: this iteration's fresh permutation

    def _rollout(self, rollout_fn: RolloutFn, questions: list[Question], n: int, iteration: int) -> list[Group]:
        groups = rollout_fn(questions, n) if questions else []
        if len(groups) != len(questions) or any(
                len(g) != n or any(ep.question.id != q.id for ep in g) for q, g in zip(questions, groups)):
            raise RuntimeError(f"rollout_fn must return {n} episodes per question, in question order")
        self.store.add(attempts_from_groups(groups, iteration, "selection"))
        return groups

    def _finish(self, iteration: int, pool: list[Question], chosen: list[Question], groups: list[Group] | None,
                spent: int, n_train: int, metrics: dict[str, float]) -> Selection:
        self.store.record_selection(iteration, [q.id for q in pool], [q.id for q in chosen])
        metrics["curriculum/rollouts_selection"] = spent
        metrics["curriculum/rollouts_train"] = len(chosen) * n_train
        metrics["curriculum/rollouts_reused"] = sum(map(len, groups)) if groups is not None else 0
        return Selection(chosen, groups, spent, metrics)

    def _history(self, iteration: int, decay: float | None) -> dict[str, QuestionStat]:
        stats = self.store.question_stats(iteration, self.cfg.window, decay, HISTORY_PHASE)
        return {q: s for q, s in stats.items() if q in self.index}  # ignore questions no longer in the data

    def _history_metrics(self, stats: dict[str, QuestionStat], pool: list[str], chosen: list[str]) -> dict[str, float]:
        out = {"curriculum/selected/seen_frac": sum(q in stats for q in chosen) / len(chosen)}
        for name, ids in (("pool", pool), ("selected", chosen)):
            known = [learnability(stats[q].p, stats[q].n) for q in ids if q in stats]
            if known:
                out[f"curriculum/{name}/learnability"] = statistics.fmean(known)
        return out


class Uniform(Sampler):
    """Every question once per epoch, in a seeded random order (with_replacement: a fresh random batch
    every iteration)."""

    name = "uniform"

    def next_batch(self, iteration: int, batch: int, n_train: int, rollout_fn: RolloutFn) -> Selection:
        self._begin(iteration, batch)
        chosen = [self.train[i] for i in self.order.take(batch)]
        return self._finish(iteration, chosen, chosen, None, 0, n_train, {})


class Learnability(Sampler):
    """LILO: roll out a pool of pool_factor x batch questions n_select times each, keep the batch with the
    highest p(1-p). The pool is drawn like uniform's batch: along the epoch, or afresh each iteration."""

    name = "learnability"

    def next_batch(self, iteration: int, batch: int, n_train: int, rollout_fn: RolloutFn) -> Selection:
        self._begin(iteration, batch)
        n = self.cfg.n_select
        pool = [self.train[i] for i in self.order.take(min(self.cfg.pool_factor * batch, len(self.train)))]
        groups = self._rollout(rollout_fn, pool, n, iteration)
        scores = [learnability(success_rate(g), n, self.cfg.bessel) for g in groups]
        top = top_k(scores, batch, derived_rng(self.seed, iteration, "tie-break"))
        kept = [groups[i] for i in top]
        metrics = group_metrics(groups, "curriculum/pool") | group_metrics(kept, "curriculum/selected")
        # The selection rollouts are on-policy samples of the chosen questions: train on them when the
        # sizes match instead of generating again.
        reuse = n_train == n
        return self._finish(iteration, pool, [pool[i] for i in top], kept if reuse else None,
                            len(pool) * n, n_train, metrics)


class SFL(Sampler):
    """LILO's buffered variant (thomfoster/VinePPO math_episode_generator_with_sfl.py `generate`): every
    refresh_every iterations, n_candidates random questions are rolled out n_select times and the
    buffer_size best by p(1-p) (np.var of the 0/1 rewards) form the buffer; every batch draws
    int(buffer_frac x batch) questions from the buffer at random and the rest uniformly. The buffer
    rollouts are not trained on (as in the reference). Differences: the uniform part follows the epoch
    order (or, with_replacement, a fresh permutation) and skips questions already drawn from the buffer
    (the reference samples afresh each iteration and may repeat one); the buffer is refreshed at
    iterations 1, 1 + T, ... (the loop counts from 1)."""

    name = "sfl"

    def __init__(self, cfg: CurriculumConfig, train: list[Question], store: StatsStore, seed: int):
        super().__init__(cfg, train, store, seed)
        self.buffer: list[str] = []  # question ids
        self.refreshed_at = 0

    def next_batch(self, iteration: int, batch: int, n_train: int, rollout_fn: RolloutFn) -> Selection:
        self._begin(iteration, batch)
        metrics: dict[str, float] = {}
        candidates: list[Question] = []
        spent = 0
        if not self.buffer or (iteration - 1) % self.cfg.refresh_every == 0 and self.refreshed_at != iteration:
            n = self.cfg.n_select
            rng = derived_rng(self.seed, iteration, "sfl-candidates")
            candidates = [self.train[i] for i in rng.sample(range(len(self.train)),
                                                            min(self.cfg.n_candidates, len(self.train)))]
            groups = self._rollout(rollout_fn, candidates, n, iteration)
            scores = [learnability(success_rate(g), n, self.cfg.bessel) for g in groups]
            top = top_k(scores, self.cfg.buffer_size, derived_rng(self.seed, iteration, "tie-break"))
            self.buffer, self.refreshed_at, spent = [candidates[i].id for i in top], iteration, len(candidates) * n
            metrics |= group_metrics(groups, "curriculum/pool") | group_metrics([groups[i] for i in top],
                                                                                 "curriculum/buffer")
        n_buffer = min(int(self.cfg.buffer_frac * batch), len(self.buffer))
        taken = [self.index[q] for q in derived_rng(self.seed, iteration, "sfl-buffer").sample(self.buffer, n_buffer)]
        taken += self.order.take(batch - len(taken), exclude=taken)
        chosen = [self.train[i] for i in taken]
        metrics["curriculum/from_buffer"] = n_buffer / batch
        metrics["curriculum/buffer_age"] = iteration - self.refreshed_at
        pool = candidates + [q for q in chosen if q.id not in {c.id for c in candidates}]
        return self._finish(iteration, pool, chosen, None, spent, n_train, metrics)

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {"buffer": list(self.buffer), "refreshed_at": self.refreshed_at}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        super().load_state_dict(d)
        missing = [q for q in d["buffer"] if q not in self.index]
        if missing:
            raise ValueError(f"the sfl buffer holds {len(missing)} questions not in this train split")
        self.buffer, self.refreshed_at = list(d["buffer"]), int(d["refreshed_at"])


class LearnabilityHistory(Sampler):
    """Rank by p(1-p) from the decayed history of past training attempts (no extra rollouts), keeping
    explore_frac of the batch for questions unseen or stale (no attempt within the window). With cooldown
    > 0 a question trained in the last `cooldown` iterations is not picked by its score: without it the same
    top questions come back every iteration (on arith, 60 iterations trained ~254 distinct questions, one
    of them 54 times, and held-out accuracy stalled; experiments/RESULTS.md, 2026-12-03)."""

    name = "learnability_history"

    def next_batch(self, iteration: int, batch: int, n_train: int, rollout_fn: RolloutFn) -> Selection:
        self._begin(iteration, batch)
        stats = self._history(iteration, self.cfg.decay)
        seen = list(stats)
        scores = [learnability(stats[q].p, stats[q].n, self.cfg.bessel) for q in seen]
        ranked = top_k(scores, len(seen), derived_rng(self.seed, iteration, "tie-break"))
        n_exploit = batch - round(self.cfg.explore_frac * batch)
        # A score of 0 (always or never solved lately) teaches nothing: its slot goes to exploration.
        exploit = [seen[i] for i in ranked
                   if scores[i] > 0 and iteration - stats[seen[i]].last > self.cfg.cooldown][:n_exploit]
        taken = [self.index[q] for q in exploit]
        taken += self.order.take(batch - len(taken), lambda i: self.train[i].id not in stats, exclude=taken)
        if len(taken) < batch:  # every other question was seen lately: fill with the next best by history
            rest = [self.index[seen[i]] for i in ranked]
            taken += [i for i in rest if i not in taken][:batch - len(taken)]
        chosen = [self.train[i] for i in taken]
        explored = [q.id for q in chosen[len(exploit):]]
        metrics = self._history_metrics(stats, seen + explored, [q.id for q in chosen])
        metrics["curriculum/explore_frac"] = sum(q not in stats for q in explored) / batch
        return self._finish(iteration, [self.train[self.index[q]] for q in seen] + chosen[len(exploit):],
                            chosen, None, 0, n_train, metrics)


class SkipZeroVariance(Sampler):
    """GRESO: walk the uniform order, skipping with probability skip_prob a question whose attempts within
    the window were all right or all wrong (its group would have zero advantage). A skipped question
    misses this epoch; it comes back next epoch, or sooner in the order if its history goes stale."""

    name = "skip_zero_variance"

    def next_batch(self, iteration: int, batch: int, n_train: int, rollout_fn: RolloutFn) -> Selection:
        self._begin(iteration, batch)
        stats = self._history(iteration, None)
        rng = derived_rng(self.seed, iteration, "skip")
        skipped: list[int] = []

        def accept(i: int) -> bool:
            s = stats.get(self.train[i].id)
            if s is not None and s.p in (0.0, 1.0) and rng.random() < self.cfg.skip_prob:
                skipped.append(i)
                return False
            return True

        taken = self.order.take(batch, accept)
        if len(taken) < batch:  # a whole epoch skipped: nothing better to train on
            taken += self.order.take(batch - len(taken), exclude=taken)
        if len(taken) < batch:  # with replacement: the iteration's permutation is used up, so the skipped
            taken += [i for i in skipped if i not in taken][:batch - len(taken)]
        chosen = [self.train[i] for i in taken]
        considered = [self.train[i].id for i in skipped] + [q.id for q in chosen]
        metrics = self._history_metrics(stats, considered, [q.id for q in chosen])
        metrics["curriculum/skipped"] = len(skipped)
        metrics["curriculum/selected/zero_variance_frac"] = sum(
            q.id in stats and stats[q.id].p in (0.0, 1.0) for q in chosen) / batch
        return self._finish(iteration, [self.train[i] for i in skipped] + chosen, chosen, None, 0, n_train, metrics)


class FilterGroups(Sampler):
    """DAPO dynamic sampling: roll out n_train per question, drop groups whose rewards are all equal, and
    refill with fresh questions for up to max_refill_rounds rounds. The kept groups are the training
    groups; if still short, dropped groups top the batch up (reported as curriculum/shortfall)."""

    name = "filter_groups"

    def next_batch(self, iteration: int, batch: int, n_train: int, rollout_fn: RolloutFn) -> Selection:
        self._begin(iteration, batch)
        drawn: list[int] = []
        all_groups: list[Group] = []
        kept: list[Group] = []
        dropped: list[Group] = []
        rounds = 0
        while len(kept) < batch and rounds <= self.cfg.max_refill_rounds:
            idx = self.order.take(batch - len(kept), exclude=drawn)
            if not idx:  # every question already drawn this iteration
                break
            drawn += idx
            groups = self._rollout(rollout_fn, [self.train[i] for i in idx], n_train, iteration)
            for g in groups:
                (kept if len({ep.reward for ep in g}) > 1 else dropped).append(g)
            all_groups += groups
            rounds += 1
        shortfall = batch - len(kept)
        final = kept + dropped[:shortfall]
        metrics = group_metrics(all_groups, "curriculum/pool") | group_metrics(final, "curriculum/selected")
        metrics["curriculum/refill_rounds"] = rounds - 1
        metrics["curriculum/shortfall"] = max(shortfall, 0)
        return self._finish(iteration, [self.train[i] for i in drawn], [g[0].question for g in final], final,
                            sum(map(len, all_groups)), n_train, metrics)


SAMPLERS: dict[str, type[Sampler]] = {
    cls.name: cls for cls in (Uniform, Learnability, SFL, LearnabilityHistory, SkipZeroVariance, FilterGroups)}


def make_sampler(cfg: CurriculumConfig, train: list[Question], store: StatsStore, seed: int) -> Sampler:
    if cfg.name not in SAMPLERS:
        raise ValueError(f"curriculum.name={cfg.name!r} is not one of {', '.join(SAMPLERS)}")
    return SAMPLERS[cfg.name](cfg, train, store, seed)
