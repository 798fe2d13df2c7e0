"""The single-step shortcut (old log-probs from the step's own forward pass) is the same update as the
general path (a separate no-grad pass first)."""

from __future__ import annotations

import torch

from tests.learner.test_faults import episodes, make_learner, weights


def test_single_step_update_equals_the_general_path(tiny_model_dir, tiny_tokenizer, monkeypatch):
    eps = episodes(8)
    for ep in eps:  # advantages large enough that the step visibly moves the weights
        ep.advantages = [a * 3 for a in ep.advantages]
    shortcut = make_learner(tiny_model_dir, tiny_tokenizer.pad_token_id)
    shortcut.cfg.minibatch_size = 8
    general = make_learner(tiny_model_dir, tiny_tokenizer.pad_token_id)
    general.cfg.minibatch_size = 8
    assert not shortcut.needs_old_logprobs(len(eps))
    monkeypatch.setattr(general, "needs_old_logprobs", lambda n: True)
    before = weights(shortcut)
    m1, m2 = shortcut.update(eps), general.update(eps)
    w1, w2 = weights(shortcut), weights(general)
    assert any(not torch.equal(before[k], w1[k]) for k in before)  # the update did something
    assert all(torch.allclose(w1[k], w2[k], atol=1e-7, rtol=0) for k in w1)
    assert abs(m1["pg_loss"] - m2["pg_loss"]) < 1e-6
    # Both paths report how far the engine's log-probs (here all 0.0) are from the learner's.
    assert m1["logprob_mismatch"] > 0 and abs(m1["logprob_mismatch"] - m2["logprob_mismatch"]) < 1e-5
    general.cfg.epochs = 2
    assert general.needs_old_logprobs(len(eps)) and shortcut.needs_old_logprobs(9)
