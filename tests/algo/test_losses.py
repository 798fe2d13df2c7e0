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
