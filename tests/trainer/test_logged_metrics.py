"""Every key a real run writes to metrics.jsonl has an entry in the metrics registry (rlreason/metrics.py):
one iteration of each algorithm, each curriculum and the options that add metrics (adaptive K, the vine
tree, one step off with TIS, a reward function's components, the overlong penalty), on the real engine."""

from __future__ import annotations

import json
import textwrap

import pytest

from rlreason.metrics import lookup
from rlreason.trainer.loop import train

PARTS = textwrap.dedent('''
    def parts(response, record):
        lines = response.strip().splitlines()
        answer = lines[-1][4:].strip() if lines and lines[-1].startswith("####") else None
        return {"correct": float(answer == record["answer"]), "lines": min(len(lines), 10) / 10}
''')

RUNS = {
    "vineppo": ["algo=vineppo", "curriculum=learnability", "algo.mc.max_rollouts=4", "algo.mc.new_rollouts=2",
                "algo.mc.tree=true", "algo.mc.tree_max=8", "data.steps.max_value_steps=2", "trainer.async_level=1",
                "algo.tis_cap=2.0", "reward.overlong.buffer_tokens=16", "reward.overlong.penalty=0.5",
                "reward.fn={user}:parts"],
    "ppo": ["algo=ppo", "curriculum=sfl", "curriculum.refresh_every=1", "curriculum.n_candidates=8",
            "curriculum.buffer_size=4", "curriculum.n_select=2"],
    "grpo": ["algo=grpo", "curriculum=filter_groups", "curriculum.max_refill_rounds=1"],
    "rloo": ["algo=rloo", "curriculum=learnability_history"],
    "rloo-skip": ["algo=rloo", "curriculum=skip_zero_variance"],
}


@pytest.mark.vllm
@pytest.mark.parametrize("run", list(RUNS))
def test_every_logged_metric_is_in_the_registry(make_cfg, vllm_engine, tmp_path, run):
    user = tmp_path / "user_reward.py"
    user.write_text(PARTS)
    overrides = [o.format(user=user) for o in RUNS[run]]
    train(make_cfg(*overrides, "trainer.iterations=1", "trainer.eval_every=1"), tmp_path / "run", engine=vllm_engine)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    keys = sorted({k for r in rows for k in r} - {"iteration"})
    assert "train/reward" in keys and "eval/accuracy" in keys
    missing = [k for k in keys if lookup(k) is None]
    assert not missing, (
        f"{run} ({' '.join(overrides)}) logged metrics that no entry of rlreason/metrics.py matches: "
        f"{', '.join(missing)}. Add a Metric(NAME, UNIT, MEANING, WHEN) for each to METRICS in rlreason/metrics.py "
        "(a {placeholder} for a part that varies), then run `python -m rlreason.reference` and commit "
        "docs/reference/metrics.md")
