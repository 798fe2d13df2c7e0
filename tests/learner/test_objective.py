"""The policy loss's variants as settings (rlreason/learner/objective.py): their defaults, their checks
before any compute, and the learner passing them to the loss."""

from __future__ import annotations

import pytest
import torch

from rlreason.config import AlgoConfig, ConfigError
from rlreason.learner.objective import clip_eps_high, loss_agg, objective_problems
from rlreason.validate import validate
from tests.learner.test_faults import episodes, same, weights
from tests.learner.test_update import learner
from tests.test_errors import cli, compose_cfg


def test_defaults_are_the_current_objective_and_gspo_gets_its_own_aggregation():
    a = AlgoConfig(name="grpo")
    assert (loss_agg(a), clip_eps_high(a), a.ratio_level) == ("token-mean", 0.2, "token")
    assert loss_agg(AlgoConfig(name="grpo", ratio_level="sequence")) == "seq-mean-token-mean"
    assert loss_agg(AlgoConfig(name="grpo", ratio_level="sequence", loss_agg="token-mean")) == "token-mean"
    assert clip_eps_high(AlgoConfig(name="grpo", clip_eps_high=0.28)) == 0.28
    assert objective_problems(a) == []


BAD = [
    ("clip-high-below", ["algo.clip_eps_high=0.1"],
     "algo.clip_eps_high=0.1 must be >= algo.clip_eps=0.2 (clip-higher widens the upper clip only)"),
    ("loss-agg", ["algo.loss_agg=seq-mean-token-sum"],
     "algo.loss_agg='seq-mean-token-sum' is not one of token-mean, seq-mean-token-mean, seq-mean-token-sum-norm"),
    ("ratio-level", ["algo.ratio_level=seq"], "algo.ratio_level='seq' is not one of token, sequence"),
    ("overlong-negative-buffer", ["reward.overlong.buffer_tokens=-4"], "reward.overlong.buffer_tokens=-4 must be >= 0"),
    ("overlong-buffer-too-long", ["reward.overlong.buffer_tokens=64", "reward.overlong.penalty=1"],
     "reward.overlong.buffer_tokens=64 must be < rollout.max_new_tokens=64"),
    ("overlong-no-buffer", ["reward.overlong.penalty=0.5"],
     "reward.overlong.penalty=0.5 needs reward.overlong.buffer_tokens >= 1"),
    ("overlong-negative-penalty", ["reward.overlong.buffer_tokens=8", "reward.overlong.penalty=-1"],
     "reward.overlong.penalty=-1.0 must be a finite number >= 0"),
]


@pytest.mark.parametrize(("overrides", "expected"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_validate_refuses_bad_values(overrides, expected):
    with pytest.raises(ConfigError) as info:
        validate(compose_cfg(*overrides))
    assert expected in str(info.value), str(info.value)


def test_validate_accepts_the_variants():
    validate(compose_cfg("algo=grpo", "algo.clip_eps_high=0.28", "algo.loss_agg=seq-mean-token-sum-norm",
                         "reward.overlong.buffer_tokens=16", "reward.overlong.penalty=1"))
    validate(compose_cfg("algo=grpo", "algo.ratio_level=sequence", "algo.clip_eps=3e-4", "algo.clip_eps_high=4e-4"))


@pytest.mark.parametrize("overrides", [["algo.clip_eps_high=0.1"], ["reward.overlong.buffer_tokens=80"]])
def test_cli_refuses_them_in_one_line_before_any_compute(tmp_path, overrides):
    proc, _, run_dir = cli(tmp_path, *overrides)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("rlreason: invalid config: ") and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert overrides[0].split("=")[0] in proc.stderr
    assert not (run_dir / "checkpoints").exists()


def _mixed_lengths(n: int = 8):
    eps = episodes(n)
    for i, ep in enumerate(eps):  # 5 tokens for the even ones, 2 for the odd ones
        if i % 2:
            ep.response_ids, ep.logprobs, ep.advantages = ep.response_ids[:2], ep.logprobs[:2], ep.advantages[:2]
    return eps


def test_the_learner_aggregates_as_algo_loss_agg_says(tiny_model_dir, tiny_tokenizer):
    """Responses of 5 and 2 tokens: token-mean and seq-mean-token-mean weigh them differently (different
    steps); at equal lengths they are the same average (the same step)."""
    pad = tiny_tokenizer.pad_token_id
    for make, equal in ((_mixed_lengths, False), (episodes, True)):
        a, b = learner(tiny_model_dir, pad), learner(tiny_model_dir, pad, loss_agg="seq-mean-token-mean")
        a.update(make())
        b.update(make())
        close = all(torch.allclose(x, y, atol=1e-7, rtol=0) for x, y in zip(weights(a).values(), weights(b).values()))
        assert close == equal
    with pytest.raises(ValueError, match="rollout.max_new_tokens"):
        learner(tiny_model_dir, pad, loss_agg="seq-mean-token-sum-norm")


def test_the_learner_applies_gspo_and_clip_higher(tiny_model_dir, tiny_tokenizer):
    """Two epochs at a large learning rate (the second one off the sampling weights): the sequence ratio
    and a wider upper clip each change the second step."""
    pad = tiny_tokenizer.pad_token_id
    kw = dict(learner_kw={"epochs": 2, "lr": 1e-2})
    base = learner(tiny_model_dir, pad, loss_agg="seq-mean-token-mean", **kw)
    m = base.update(episodes(8))
    assert m["skipped_update"] == 0.0
    for variant in ({"ratio_level": "sequence"}, {"clip_eps_high": 10.0}):
        other = learner(tiny_model_dir, pad, loss_agg="seq-mean-token-mean", **kw, **variant)
        other.update(episodes(8))
        assert not same(weights(base), weights(other)), variant
