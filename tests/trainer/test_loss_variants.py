"""Each loss variant (docs/losses.md) trains end to end on arith through the real engine: no skipped or
non-finite update, the ratio near 1 (the first step's old log-probs are the weights that sampled), and
the overlong penalty logged as a reward component that success does not see."""

from __future__ import annotations

import json
import math

import pytest

from rlreason.trainer.loop import train

# 16 episodes, minibatches of 8: two steps per iteration, old log-probs from a separate pass.
COMMON = ("trainer.iterations=2", "learner.epochs=1", "learner.minibatch_size=8", "learner.micro_batch_size=8")
VARIANTS = {
    "clip-higher": ["algo=grpo", "algo.clip_eps_high=0.28"],
    "seq-mean-token-mean": ["algo=grpo", "algo.loss_agg=seq-mean-token-mean"],
    "seq-mean-token-sum-norm": ["algo=grpo", "algo.loss_agg=seq-mean-token-sum-norm"],
    "gspo": ["algo=grpo", "algo.ratio_level=sequence", "algo.clip_eps=3e-4", "algo.clip_eps_high=4e-4"],
    # budget 64, buffer 56: every response past 8 tokens is penalised
    "overlong": ["algo=grpo", "reward.overlong.buffer_tokens=56", "reward.overlong.penalty=1"],
    "overlong-vineppo": ["algo=vineppo", "reward.overlong.buffer_tokens=56", "reward.overlong.penalty=1"],
}


@pytest.mark.vllm
@pytest.mark.parametrize("overrides", list(VARIANTS.values()), ids=list(VARIANTS))
def test_each_variant_trains_on_arith(make_cfg, vllm_engine, tmp_path, overrides):
    s = json.loads(train(make_cfg(*COMMON, *overrides), tmp_path, engine=vllm_engine).read_text())
    assert s["iterations"] == 2 and s["skipped_updates"] == 0
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "train/reward" in r]
    assert len(train_rows) == 2
    for r in train_rows:
        assert all(math.isfinite(v) for k, v in r.items() if k.startswith("learner/")), r
        assert abs(r["learner/ratio_mean"] - 1) < 0.05 and r["learner/ratio_skipped"] == 0.0
        assert r["learner/logprob_mismatch"] < 1e-3
        if "reward.overlong.penalty=1" in overrides:
            assert r["reward/overlong"] < 0
            # the built-in checker's reward is 1 for a correct answer: the penalty is the only difference,
            # and success still counts the correct answers
            assert r["train/reward"] == pytest.approx(r["train/success"] + r["reward/overlong"], abs=1e-9)
        else:
            assert "reward/overlong" not in r and r["train/reward"] == pytest.approx(r["train/success"])
    evals = [r for r in rows if "eval/accuracy" in r]
    assert evals and not any("eval/reward/overlong" in r for r in evals)  # the held-out reward is the grader's
