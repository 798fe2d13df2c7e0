import torch

from rlreason.algo.losses import clipped_policy_loss, clipped_value_loss, k3_kl


def test_clipped_loss_hand_computed():
    # ratio = e^0.5 ~ 1.6487 > 1 + 0.2: a positive advantage is clipped at 1.2, a negative one is not.
    logp = torch.tensor([[0.0, 0.0]])
    old = torch.tensor([[-0.5, -0.5]])
    adv = torch.tensor([[1.0, -1.0]])
    mask = torch.ones(1, 2)
    loss, info = clipped_policy_loss(logp, old, adv, mask, 0.2, n_tokens=2.0)
    r = torch.exp(torch.tensor(0.5)).item()
    expected = -(min(r * 1, 1.2 * 1) + min(r * -1, 1.2 * -1)) / 2
    assert abs(loss.item() - expected) < 1e-6
    assert info["clip_frac"] == 1.0


def test_clipped_loss_ignores_masked_tokens():
    logp = torch.tensor([[0.0, 5.0]])
    old = torch.tensor([[0.0, 0.0]])
    adv = torch.tensor([[2.0, 100.0]])
    mask = torch.tensor([[1.0, 0.0]])
    loss, _ = clipped_policy_loss(logp, old, adv, mask, 0.2, n_tokens=1.0)
    assert abs(loss.item() + 2.0) < 1e-6


def test_k3_kl_hand_computed_and_nonnegative():
    logp = torch.tensor([-1.0, -2.0, -0.5])
    ref = torch.tensor([-1.0, -1.0, -3.0])
    d = ref - logp
    expected = torch.exp(d) - d - 1
    assert torch.allclose(k3_kl(logp, ref), expected)
    assert k3_kl(logp, ref)[0].item() == 0.0
    assert (k3_kl(logp, ref) >= 0).all()


def test_clipped_value_loss_takes_the_max():
    v = torch.tensor([[1.0]])
    old = torch.tensor([[0.0]])
    ret = torch.tensor([[0.0]])
    # unclipped (1-0)^2 = 1, clipped (0.2-0)^2 = 0.04 -> max 1 -> 0.5
    assert abs(clipped_value_loss(v, old, ret, torch.ones(1, 1), 0.2, 1.0).item() - 0.5) < 1e-6


def test_kl_penalty_both_reductions_hand_computed():
    from rlreason.algo.losses import kl_penalty

    # Two responses: 3 valid tokens and 1 (then padding). ref - logp per token: 0, ln 2, 3 | -1.
    logp = torch.tensor([[0.0, 0.0, 0.0], [0.0, 7.0, 7.0]])
    ref = torch.tensor([[0.0, 0.6931471805599453, 3.0], [-1.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    # k3 = e^d - d - 1: 0 | 2 - ln 2 - 1 = 0.306853 | e^3 - 4 = 16.0855 -> clamped to 10 | e^-1 = 0.367879
    total = 0.0 + 0.3068528194400547 + 10.0 + 0.36787944117144233
    seq = kl_penalty(logp, ref, mask, "sequence_sum", n_tokens=4.0, n_seqs=2.0)
    tok = kl_penalty(logp, ref, mask, "token_mean", n_tokens=4.0, n_seqs=2.0)
    assert abs(seq.item() - total / 2) < 1e-5  # sum per response, mean over the 2 responses
    assert abs(tok.item() - total / 4) < 1e-5  # mean over the 4 valid tokens
    # the clamp holds the gradient of the clamped token at 0 (as torch.clamp in the reference)
    lp = logp.clone().requires_grad_(True)
    kl_penalty(lp, ref, mask, "sequence_sum", 4.0, 2.0).backward()
    assert lp.grad[0, 2].item() == 0.0 and lp.grad[0, 1].item() != 0.0 and lp.grad[1, 1].item() == 0.0


def test_policy_loss_token_weights_scale_each_token():
    logp = torch.zeros(1, 3)
    adv = torch.tensor([[1.0, -2.0, 3.0]])
    w = torch.tensor([[0.5, 1.0, 2.0]])
    loss, info = clipped_policy_loss(logp, logp, adv, torch.ones(1, 3), 0.2, 3.0, weights=w)
    assert abs(loss.item() - -(0.5 - 2.0 + 6.0) / 3) < 1e-6  # ratio 1: -(sum of w * A) / n_tokens
    assert info["ratio_sum"] == 3.0
