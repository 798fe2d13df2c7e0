"""Global curriculum selection: the sampler runs on rank 0 only (it owns the stats store and the
sampler state), and every rollout it asks for runs on all ranks.

Rank 0 calls `sampler.next_batch` with a rollout function that first tells the other ranks what to
roll out; they wait in `_follow`, run the same (collective) rollout, and finally receive the Selection.
So LILO's top-k is taken over the whole pool, exactly as in one process, and each selection attempt is
stored once, by rank 0.
"""

from __future__ import annotations

from rlreason.distributed import Dist

_ROLLOUT, _DONE = "rollout", "done"


def next_batch(dist: Dist, sampler, iteration: int, batch: int, n_train: int, rollout_fn):
    """`sampler.next_batch(...)` on rank 0; the same Selection on every rank."""
    if not dist.active:
        return sampler.next_batch(iteration, batch, n_train, rollout_fn)
    if not dist.main:
        return _follow(dist, rollout_fn)

    def leader_rollout(questions, n):
        dist.broadcast((_ROLLOUT, questions, n))
        return rollout_fn(questions, n)

    try:
        selection = sampler.next_batch(iteration, batch, n_train, leader_rollout)
    except BaseException:
        dist.broadcast((_DONE, None))  # release the followers; they stop on the missing selection
        raise
    dist.broadcast((_DONE, selection))
    return selection


def _follow(dist: Dist, rollout_fn):
    while True:
        msg = dist.broadcast()
        if msg[0] == _DONE:
            if msg[1] is None:
                raise RuntimeError("rlreason: rank 0 failed while selecting the batch (see its error)")
            return msg[1]
        rollout_fn(msg[1], msg[2])
