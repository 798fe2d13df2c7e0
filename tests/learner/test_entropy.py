"""The entropy is always logged but only a loss term with algo.entropy_coef > 0: without it, it must not
keep a graph (two more logits-sized fp32 tensors alive into the backward, issue 20)."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM

from rlreason.learner.batch import pack
from rlreason.learner.learner import token_logprobs
from tests.learner.test_faults import episodes, make_learner, weights


def saved_bytes(fn) -> tuple[int, tuple[torch.Tensor, torch.Tensor]]:
    """Bytes autograd saves for the backward while `fn` runs, and its result."""
    total = 0

    def pack_hook(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack_hook, lambda t: t):
        out = fn()
    return total, out


def test_a_logged_only_entropy_keeps_no_graph(tiny_model_dir, tiny_tokenizer):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    batch = pack(episodes(4), tiny_tokenizer.pad_token_id)
    without, (logp0, ent0) = saved_bytes(lambda: token_logprobs(model, batch, 0.7))
    with_grad, (logp1, ent1) = saved_bytes(lambda: token_logprobs(model, batch, 0.7, entropy_grad=True))
    assert ent0.grad_fn is None and not ent0.requires_grad
    assert ent1.requires_grad and logp0.requires_grad  # the policy term keeps its graph either way
    assert torch.equal(ent0, ent1) and torch.equal(logp0, logp1)  # same numbers
    b, length = batch.input_ids.shape
    logits_bytes = b * (length - 1) * model.config.vocab_size * 4
    assert with_grad - without >= 2 * logits_bytes, (with_grad, without, logits_bytes)


def test_the_entropy_bonus_still_moves_the_weights(tiny_model_dir, tiny_tokenizer):
    """entropy_coef > 0 still differentiates through the entropy: the step differs from coef 0."""
    eps = episodes(4)
    plain, bonus = (make_learner(tiny_model_dir, tiny_tokenizer.pad_token_id) for _ in range(2))
    bonus.algo.entropy_coef = 0.5
    plain.update(eps)
    bonus.update(eps)
    w0, w1 = weights(plain), weights(bonus)
    assert max((w0[k] - w1[k]).abs().max().item() for k in w0) > 1e-5
