"""The learner on played episodes: observation tokens are out of the loss, the KL, the entropy and the
whitening, whatever advantages they carry."""

import pytest
import torch

from tests.learner.test_faults import episodes, weights
from tests.learner.test_update import learner

MASK = [1, 1, 0, 0, 1]  # response: two action tokens, two observation tokens, one action token


def with_observations(junk: float):
    out = episodes(8)
    for ep in out:
        ep.action_mask = list(MASK)
        ep.advantages = [a if m else junk for a, m in zip(ep.advantages, MASK)]
    return out


@pytest.mark.parametrize("algo_kw", [{"whiten_advantages": True}, {"kl_coef": 0.1, "entropy_coef": 0.01}])
def test_observation_tokens_do_not_move_the_policy(tiny_model_dir, tiny_tokenizer, algo_kw):
    pad = tiny_tokenizer.pad_token_id
    a, b = learner(tiny_model_dir, pad, "vineppo", **algo_kw), learner(tiny_model_dir, pad, "vineppo", **algo_kw)
    ma = a.update(with_observations(0.0))
    mb = b.update(with_observations(1e3))
    wa, wb = weights(a), weights(b)
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6, rtol=0) for k in wa)
    assert ma["entropy"] == pytest.approx(mb["entropy"])
    c = learner(tiny_model_dir, pad, "vineppo", **algo_kw)  # the same episodes as one turn: a different step
    plain = episodes(8)
    for ep in plain:
        ep.advantages = [a if m else 1e3 for a, m in zip(ep.advantages, MASK)]
    c.update(plain)
    assert not all(torch.allclose(wa[k], v, atol=1e-6, rtol=0) for k, v in weights(c).items())
