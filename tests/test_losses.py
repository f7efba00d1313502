"""Every loss against a brute-force reference written with explicit loops."""

import math

import pytest
import torch

from vpd_core.losses import (
    add_tail_bucket,
    bco_loss,
    distillation_loss,
    grpo_advantages,
    grpo_loss,
    importance_weights,
    masked_mean,
    sequence_logprob,
    update_delta,
)

B, T, V = 2, 3, 7


def _probs(logits_row):
    z = sum(math.exp(x) for x in logits_row)
    return [math.exp(x) / z for x in logits_row]


def _kl(p, q):
    return sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q) if pi > 0)


def _d_alpha(p, q, alpha):
    if alpha == 1.0:
        return _kl(p, q)
    if alpha == 0.0:
        return _kl(q, p)
    m = [(1 - alpha) * pi + alpha * qi for pi, qi in zip(p, q)]
    return (1 - alpha) * _kl(p, m) + alpha * _kl(q, m)


def _naive(student, teacher, mask, alpha, support=None, tail=False, weights=None):
    """Token-mean of D_alpha computed position by position in Python floats."""
    num = den = 0.0
    for b in range(student.shape[0]):
        for t in range(student.shape[1]):
            if mask[b, t] == 0:
                continue
            p, q = _probs(student[b, t].tolist()), _probs(teacher[b, t].tolist())
            if support is not None:
                ids = support[b][t]
                ps, qs = [p[i] for i in ids], [q[i] for i in ids]
                if tail:
                    ps, qs = ps + [1 - sum(ps)], qs + [1 - sum(qs)]
                else:
                    ps, qs = [x / sum(ps) for x in ps], [x / sum(qs) for x in qs]
                p, q = ps, qs
            w = 1.0 if weights is None else float(weights[b, t])
            num += w * _d_alpha(p, q, alpha)
            den += 1
    return num / den


@pytest.fixture
def logits():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(B, T, V, generator=g, dtype=torch.float64) * 2
    t = torch.randn(B, T, V, generator=g, dtype=torch.float64) * 2
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.float64)
    return s, t, mask


@pytest.mark.parametrize("alpha", [1.0, 0.0, 0.5, 0.3])
def test_full_vocab_topk_equals_naive_divergence(logits, alpha):
    s, t, mask = logits
    loss, _ = distillation_loss(s, t, mask, topk=V, alpha=alpha, add_tail=False)
    assert loss.item() == pytest.approx(_naive(s, t, mask, alpha), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("alpha", [1.0, 0.0, 0.5])
@pytest.mark.parametrize("tail", [True, False])
def test_topk_support_with_tail_or_renormalised(logits, alpha, tail):
    s, t, mask = logits
    k = 3
    support = [[sorted(range(V), key=lambda i: -s[b, tt, i].item())[:k] for tt in range(T)] for b in range(B)]
    loss, _ = distillation_loss(s, t, mask, topk=k, alpha=alpha, add_tail=tail)
    assert loss.item() == pytest.approx(_naive(s, t, mask, alpha, support=support, tail=tail), rel=1e-9)


def test_tail_bucket_holds_remaining_mass():
    logp = torch.log_softmax(torch.randn(4, 10, dtype=torch.float64), -1)
    top = logp.topk(3, dim=-1).values
    with_tail = add_tail_bucket(top)
    assert with_tail.shape == (4, 4)
    assert torch.allclose(with_tail.exp().sum(-1), torch.ones(4, dtype=torch.float64))
    assert torch.allclose(with_tail[:, -1].exp(), 1 - top.exp().sum(-1))


def test_tail_is_finite_when_topk_holds_all_mass():
    logits = torch.tensor([[[30.0, 0.0, -30.0]]], requires_grad=True)
    loss, _ = distillation_loss(logits, logits.detach() + 0.1, torch.ones(1, 1), topk=3, alpha=1.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


def test_gradients_reach_the_student_only(logits):
    s, t, mask = logits
    s = s.clone().requires_grad_(True)
    t = t.clone().requires_grad_(True)
    loss, _ = distillation_loss(s, t, mask, topk=4, alpha=0.5)
    loss.backward()
    assert t.grad is None
    assert s.grad.abs().sum() > 0
    assert torch.all(s.grad[0, 2] == 0)  # masked position gets no gradient


def test_importance_weights_scale_tokens(logits):
    s, t, mask = logits
    w = torch.tensor([[0.5, 2.0, 9.0], [1.0, 0.0, 1.5]], dtype=torch.float64)
    loss, m = distillation_loss(s, t, mask, topk=V, alpha=1.0, add_tail=False, is_weights=w)
    assert loss.item() == pytest.approx(_naive(s, t, mask, 1.0, weights=w), rel=1e-10)
    assert m["distill/divergence"] == pytest.approx(_naive(s, t, mask, 1.0), rel=1e-10)


def test_importance_weight_formula():
    logp = torch.tensor([[0.0, -1.0, -3.0, 50.0]])
    old = torch.tensor([[-1.0, -1.0, -1.0, -1.0]])
    w = importance_weights(logp, old, clip=2.0)
    assert torch.allclose(w, torch.tensor([[2.0, 1.0, math.exp(-2.0), 2.0]]))
    assert importance_weights(logp, old, clip=None)[0, 3].item() == pytest.approx(math.exp(20.0))


def test_seq_mean_token_mean_aggregation():
    x = torch.tensor([[1.0, 2.0, 3.0], [10.0, 0.0, 0.0], [5.0, 5.0, 5.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert masked_mean(x, mask, "token-mean").item() == pytest.approx((1 + 2 + 3 + 10) / 4)
    assert masked_mean(x, mask, "seq-mean-token-mean").item() == pytest.approx((2.0 + 10.0) / 2)


# ----------------------------------------------------------------------------- BCO


def _bco_naive(lt, ls, r, beta, delta):
    z = [beta * (a - b) - delta for a, b in zip(lt, ls)]
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    pos = [-math.log(sig(x)) for x, y in zip(z, r) if y == 1]
    neg = [-math.log(sig(-x)) for x, y in zip(z, r) if y == 0]
    return (sum(pos) / len(pos) if pos else 0.0) + (sum(neg) / len(neg) if neg else 0.0)


@pytest.mark.parametrize("rewards", [[1, 0, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]])
def test_bco_matches_formula(rewards):
    lt = torch.tensor([-10.0, -12.0, -3.0, -40.0, -7.0], dtype=torch.float64, requires_grad=True)
    ls = torch.tensor([-11.0, -10.0, -5.0, -38.0, -7.5], dtype=torch.float64, requires_grad=True)
    r = torch.tensor(rewards, dtype=torch.float64)
    loss, m = bco_loss(lt, ls, r, beta=0.1, delta=0.05)
    assert loss.item() == pytest.approx(_bco_naive(lt.tolist(), ls.tolist(), rewards, 0.1, 0.05), rel=1e-12)
    loss.backward()
    assert ls.grad is None or torch.all(ls.grad == 0)  # the student is the prior: no gradient
    assert lt.grad.abs().sum() > 0
    implicit = [0.1 * (a - b) for a, b in zip(lt.tolist(), ls.tolist())]
    correct = [(z - 0.05 > 0) == (y == 1) for z, y in zip(implicit, rewards)]
    assert m["estep/accuracy"] == pytest.approx(sum(correct) / len(correct))


def test_bco_gradient_raises_positive_lowers_negative():
    lt = torch.zeros(2, requires_grad=True)
    loss, _ = bco_loss(lt, torch.zeros(2), torch.tensor([1.0, 0.0]), beta=0.1, delta=0.0)
    loss.backward()
    assert lt.grad[0] < 0 < lt.grad[1]  # descent raises L_T of the positive, lowers the negative


def test_delta_running_mean():
    d = update_delta(None, torch.tensor([1.0, 3.0]), momentum=0.9)
    assert d == pytest.approx(2.0)  # initialised on the first batch
    d = update_delta(d, torch.tensor([12.0]), momentum=0.9)
    assert d == pytest.approx(0.9 * 2.0 + 0.1 * 12.0)


def test_sequence_logprob_sum_vs_mean():
    lp = torch.tensor([[-1.0, -2.0, -3.0], [-4.0, -9.0, -9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    assert sequence_logprob(lp, mask, "sum").tolist() == [-6.0, -4.0]
    assert sequence_logprob(lp, mask, "mean").tolist() == [-2.0, -4.0]
    with pytest.raises(ValueError, match="reward aggregation"):
        sequence_logprob(lp, mask, "max")


# ----------------------------------------------------------------------------- GRPO


def test_grpo_clipping_on_hand_made_ratios():
    ratios = torch.tensor([[0.5, 1.0, 1.5], [0.5, 1.0, 1.5]])
    old = torch.zeros(2, 3)
    logps = ratios.log().requires_grad_(True)
    adv = torch.tensor([1.0, -1.0])
    loss, m = grpo_loss(logps, old, adv, torch.ones(2, 3), eps_low=0.2, eps_high=0.28)
    # A=+1: -min(r, clip(r)) = [-0.5, -1.0, -1.28]; A=-1: -min(-r, -clip(r)) = [0.8, 1.0, 1.5]
    expected = (-0.5 - 1.0 - 1.28 + 0.8 + 1.0 + 1.5) / 6
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert m["grpo/clip_frac"] == pytest.approx(2 / 6)
    loss.backward()
    # clipped tokens carry no gradient; unclipped ones d/dlogp = -A * r / 6
    g = logps.grad
    assert g[0, 2] == 0 and g[1, 0] == 0
    assert g[0, 0].item() == pytest.approx(-0.5 / 6) and g[1, 2].item() == pytest.approx(1.5 / 6)


def test_grpo_token_level_advantages_and_mask():
    logps = torch.zeros(1, 3, requires_grad=True)
    adv = torch.tensor([[1.0, -2.0, 5.0]])
    loss, _ = grpo_loss(logps, torch.zeros(1, 3), adv, torch.tensor([[1.0, 1.0, 0.0]]), eps_low=0.2, eps_high=0.28)
    assert loss.item() == pytest.approx((-1.0 + 2.0) / 2)


def test_grpo_advantages_center_per_group_without_std():
    r = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    g = torch.tensor([0, 0, 0, 0, 7, 7, 3, 3])
    assert grpo_advantages(r, g).tolist() == [0.75, -0.25, -0.25, -0.25, 0.0, 0.0, 0.0, 0.0]
