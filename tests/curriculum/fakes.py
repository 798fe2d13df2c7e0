"""A fake policy and a fake training loop for the curriculum tests."""

from __future__ import annotations

from rlreason.config import CurriculumConfig
from rlreason.curriculum import Sampler, StatsStore, attempts_from_groups
from rlreason.data.record import Question
from rlreason.rollout import Episode, Group


def questions(n: int) -> list[Question]:
    return [Question(id=f"q{i:04d}", problem=f"problem {i}", answer=str(i)) for i in range(n)]


def episode(q: Question, reward: float, length: int = 3) -> Episode:
    return Episode(question=q, prompt_ids=[0], response_ids=[1] * length, logprobs=[0.0] * length,
                   text="", finish_reason="stop", reward=reward)


class FakePolicy:
    """Solves question q in exactly round(p[q] * n) of n attempts (the first ones), so hit counts and
    p-hat are known exactly. Counts the rollouts it is asked for."""

    def __init__(self, p: dict[str, float]):
        self.p, self.calls, self.rollouts = p, [], 0

    def __call__(self, qs: list[Question], n: int) -> list[Group]:
        self.calls.append(([q.id for q in qs], n))
        self.rollouts += len(qs) * n
        return [[episode(q, float(j < round(self.p[q.id] * n))) for j in range(n)] for q in qs]


def cfg(name: str, **kw) -> CurriculumConfig:
    return CurriculumConfig(name=name, **kw)


def step(sampler: Sampler, store: StatsStore, it: int, policy: FakePolicy, batch: int, n_train: int) -> list[str]:
    """One iteration of the training loop as the sampler sees it: select, train (write), commit."""
    sel = sampler.next_batch(it, batch, n_train, policy)
    groups = sel.groups if sel.groups is not None else policy(sel.questions, n_train)
    store.add(attempts_from_groups(groups, it, "train"))
    store.commit(it)
    return [q.id for q in sel.questions]
