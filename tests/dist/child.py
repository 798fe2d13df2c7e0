"""`torchrun ... tests/dist/child.py OVERRIDES...`: rlreason.run's main, unchanged, except that with
RLREASON_TEST_KILL=RANK:ITERATION the rank RANK SIGKILLs itself when iteration ITERATION starts its MC
phase (the other rank is then waiting for it inside a collective)."""

from __future__ import annotations

import os
import runpy
import signal
import sys

target = os.environ.get("RLREASON_TEST_KILL")
if target:
    rank, iteration = map(int, target.split(":"))
    if int(os.environ.get("RANK", "0")) == rank:
        import rlreason.trainer.loop as loop

        seen = {"it": 0}
        train_iteration, mc = loop.train_iteration, loop.assign_vineppo_advantages

        def tracked(run, it, phases):
            seen["it"] = it
            return train_iteration(run, it, phases)

        def dying_mc(*args, **kwargs):
            if seen["it"] == iteration:
                os.kill(os.getpid(), signal.SIGKILL)
            return mc(*args, **kwargs)

        loop.train_iteration, loop.assign_vineppo_advantages = tracked, dying_mc

sys.argv = ["rlreason.run", *sys.argv[1:]]
runpy.run_module("rlreason.run", run_name="__main__", alter_sys=True)
