"""`torchrun ... tests/distributed/child.py OVERRIDES...`: rlreason.run's main, unchanged, except that with
RLREASON_TEST_KILL=RANK:ITERATION the rank RANK SIGKILLs itself when iteration ITERATION starts its MC
phase (the other rank is then waiting for it inside a collective). With RLREASON_TEST_REPORT_ENGINE=1 each
rank prints one line `rlreason-test-engine {json}`: its vLLM tensor-parallel group's ranks, taken when the
engine starts, and its engine's request and token counts, taken when it closes."""

from __future__ import annotations

import os
import runpy
import signal
import sys

target = os.environ.get("RLREASON_TEST_KILL")
if target:
    rank, iteration = map(int, target.split(":"))
    if int(os.environ.get("RANK", "0")) == rank:
        import rlreason.trainer.produce as produce

        mc = produce.assign_vineppo_advantages

        def dying_mc(*args, **kwargs):
            if kwargs["seeds"].iteration == iteration:  # the iteration's own seed stream says which it is
                os.kill(os.getpid(), signal.SIGKILL)
            return mc(*args, **kwargs)

        produce.assign_vineppo_advantages = dying_mc

if os.environ.get("RLREASON_TEST_REPORT_ENGINE"):
    import json

    from rlreason.engine import _vllm_compat as compat
    from rlreason.engine.vllm_engine import VLLMEngine

    report: dict = {"rank": int(os.environ["RANK"])}
    build_llm, close = compat.build_llm, VLLMEngine.close

    def reporting_build(*args, **kwargs):
        llm = build_llm(*args, **kwargs)
        from vllm.distributed.parallel_state import get_tp_group

        report["tp_group"] = list(get_tp_group().ranks)
        return llm

    def reporting_close(self):
        if getattr(self, "llm", None) is not None:
            report.update(self.stats())
            print("rlreason-test-engine", json.dumps(report), flush=True)
        close(self)

    compat.build_llm, VLLMEngine.close = reporting_build, reporting_close

sys.argv = ["rlreason.run", *sys.argv[1:]]
runpy.run_module("rlreason.run", run_name="__main__", alter_sys=True)
