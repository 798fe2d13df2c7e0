"""Which rank does which request: pure functions of the request list, identical on every rank."""

from __future__ import annotations

import bisect
from itertools import accumulate


def contiguous(n: int, rank: int, world: int) -> range:
    """Rank `rank`'s slice of n items split into `world` contiguous runs differing in size by at most 1."""
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (rank < extra))


def balanced(costs: list[float], world: int) -> list[range]:
    """`world` contiguous runs of the requests whose summed costs are close to equal.

    Contiguous, not scattered: VinePPO lists the states of one trajectory (and the trajectories of one
    question) next to each other, and they share prompt prefixes, which one engine's prefix cache
    reuses. Cut r is placed where the running cost is nearest r/world of the total."""
    n = len(costs)
    if n == 0 or sum(costs) <= 0:
        return [contiguous(n, r, world) for r in range(world)]
    running = list(accumulate(costs))
    total = running[-1]
    cuts = [0]
    for r in range(1, world):
        target = total * r / world
        i = bisect.bisect_left(running, target)  # running[i] >= target: cut after i or before it
        cut = i + 1 if i < n and running[i] - target <= target - (running[i - 1] if i > 0 else 0.0) else i
        cuts.append(min(max(cut, cuts[-1]), n))
    cuts.append(n)
    return [range(cuts[r], cuts[r + 1]) for r in range(world)]
