import pytest
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


# --- the variants (docs/losses.md): clip-higher, the loss aggregation, GSPO's sequence ratio ----------

E = torch.exp


def test_clip_higher_hand_computed():
    """DAPO's clip-higher: eps_low 0.2, eps_high 0.28. Ratios e^0.22 = 1.2461 (A = +1, inside [0.8, 1.28]:
    unclipped; the symmetric clip holds it at 1.2), e^0.25 = 1.2840 (A = -1: min takes the unclipped
    -1.2840 either way) and e^-0.5 = 0.6065 (A = -1: clipped at the unchanged lower bound, -0.8)."""
    old = torch.tensor([[-0.22, -0.25, 0.5]])
    adv = torch.tensor([[1.0, -1.0, -1.0]])
    mask = torch.ones(1, 3)
    r1, r2 = E(torch.tensor(0.22)).item(), E(torch.tensor(0.25)).item()
    for high, first, frac in ((0.28, r1, 2 / 3), (None, 1.2, 1.0)):
        logp = torch.zeros(1, 3, requires_grad=True)
        loss, info = clipped_policy_loss(logp, old, adv, mask, 0.2, 3.0, clip_eps_high=high)
        assert abs(loss.item() - -(first - r2 - 0.8) / 3) < 1e-6
        assert abs(info["clip_frac"] - frac) < 1e-6
        loss.backward()
        # the first token is pushed up only when the upper clip lets it: d(-r1/3)/dlogp = -r1/3
        assert abs(logp.grad[0, 0].item() - (-r1 / 3 if high else 0.0)) < 1e-6


def _two_responses():
    """Two responses of 3 and 1 valid tokens at ratio 1, so each token's term is its advantage."""
    adv = torch.tensor([[1.0, 2.0, 3.0], [4.0, 50.0, 60.0]])  # the padding's 50, 60 must not count
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    return torch.zeros(2, 3), adv, mask


@pytest.mark.parametrize(("mode", "expected"), [
    ("token-mean", (1 + 2 + 3 + 4) / 4),  # over the batch's 4 tokens (DAPO)
    ("seq-mean-token-mean", ((1 + 2 + 3) / 3 + 4 / 1) / 2),  # each response's mean, then their mean (GRPO)
    ("seq-mean-token-sum-norm", ((1 + 2 + 3) / 8 + 4 / 8) / 2),  # each response's sum / 8 (Dr.GRPO's constant)
])
def test_loss_aggregation_hand_computed_and_split_into_micro_batches(mode, expected):
    logp, adv, mask = _two_responses()
    kw = dict(loss_agg=mode, n_seqs=2.0, max_tokens=8)
    loss, _ = clipped_policy_loss(logp, logp, adv, mask, 0.2, 4.0, **kw)
    assert abs(loss.item() + expected) < 1e-6
    # one response per micro-batch, with the whole minibatch's counts: the shares sum to the whole
    parts = [clipped_policy_loss(logp[i:i + 1], logp[i:i + 1], adv[i:i + 1], mask[i:i + 1], 0.2, 4.0, **kw)[0]
             for i in range(2)]
    assert abs(sum(p.item() for p in parts) + expected) < 1e-6


def test_gspo_sequence_ratio_hand_computed():
    """GSPO: s_i = exp(mean of the response's log-ratios). Response 1: log-ratios 0.1, 0.2, -0.6 -> mean
    -0.1, s_1 = 0.9048 (inside the clip, A = 1); response 2: 0.3 -> s_2 = 1.3499 (A = 2, clipped at 1.2).
    Loss (seq-mean-token-mean) = -(s_1 * 1 + 1.2 * 2) / 2. Gradient: every token of response 1 gets
    -(1/2)(1/3) s_1 A_1, the same for all three (the paper's s_i A_i grad log s_i), response 2 none."""
    old = torch.tensor([[-0.1, -0.2, 0.6], [-0.3, 0.0, 0.0]])
    adv = torch.tensor([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    s1, s2 = E(torch.tensor(-0.1)).item(), E(torch.tensor(0.3)).item()
    logp = torch.zeros(2, 3, requires_grad=True)
    loss, info = clipped_policy_loss(logp, old, adv, mask, 0.2, 4.0, ratio_level="sequence",
                                     loss_agg="seq-mean-token-mean", n_seqs=2.0)
    assert abs(loss.item() - -(s1 * 1 + 1.2 * 2) / 2) < 1e-6
    assert abs(info["ratio_sum"] - (3 * s1 + s2)) < 1e-5  # every token of a response carries s_i
    assert abs(info["clip_frac"] - 1 / 4) < 1e-6  # response 2's one token
    loss.backward()
    assert torch.allclose(logp.grad[0], torch.full((3,), -s1 / 6), atol=1e-6)
    assert torch.allclose(logp.grad[1], torch.zeros(3))
    # the token ratio weights each token by its own r_t instead: not GSPO's gradient
    logp_t = torch.zeros(2, 3, requires_grad=True)
    clipped_policy_loss(logp_t, old, adv, mask, 0.2, 4.0, loss_agg="seq-mean-token-mean", n_seqs=2.0)[0].backward()
    assert not torch.allclose(logp_t.grad[0], logp.grad[0], atol=1e-3)


def test_gspo_at_the_sampling_weights_is_ratio_1_with_the_policy_gradient():
    """One step from the sampling weights (old = logp detached): s_i = 1 and the gradient is
    -(1/G)(1/|y_i|) A_i per token, GRPO's."""
    logp = torch.tensor([[-1.0, -2.0, -0.5], [-0.3, -9.0, -9.0]], requires_grad=True)
    adv = torch.tensor([[1.0, 1.0, 1.0], [-2.0, -2.0, -2.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    loss, info = clipped_policy_loss(logp, logp.detach(), adv, mask, 0.2, 4.0, ratio_level="sequence",
                                     loss_agg="seq-mean-token-mean", n_seqs=2.0)
    assert abs(loss.item() - -(1 - 2) / 2) < 1e-6 and info["ratio_sum"] == 4.0 and info["clip_frac"] == 0.0
    loss.backward()
    assert torch.allclose(logp.grad, torch.tensor([[-1 / 6] * 3, [1.0, 0.0, 0.0]]), atol=1e-6)
