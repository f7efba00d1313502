"""Packing and chunked log-probs agree with a plain per-sequence forward pass."""

import pytest
import torch

from vpd_core.logprobs import token_logprobs, topk_logprobs
from vpd_core.sequences import pack

PROMPTS = [[1, 17, 40, 41, 2, 1, 30], [1, 50, 51], [1, 60, 61, 62, 63, 64, 65, 66]]
RESPONSES = [[70, 71, 72], [80, 81, 82, 83, 84, 85, 2], [90]]


def naive_logps(model, prompt, response):
    ids = torch.tensor([prompt + response])
    logits = model(input_ids=ids).logits[0]  # [L, V]
    lp = torch.log_softmax(logits, -1)
    return torch.stack([lp[len(prompt) - 1 + t, y] for t, y in enumerate(response)])


def test_pack_layout():
    """prompt + response from column 0, padding only at the end (causal attention needs no mask)."""
    p = pack(PROMPTS, RESPONSES, pad_id=0)
    assert p.input_ids.shape == (3, 10) and p.response_len == 7
    assert p.input_ids[1].tolist() == [1, 50, 51, 80, 81, 82, 83, 84, 85, 2]
    assert p.input_ids[2].tolist() == [1, 60, 61, 62, 63, 64, 65, 66, 90, 0]
    assert p.attention_mask.sum(-1).tolist() == [10, 10, 9]
    assert p.response_start.tolist() == [7, 3, 8]
    assert p.response_ids[0].tolist() == [70, 71, 72, 0, 0, 0, 0]
    assert p.response_mask.sum(-1).tolist() == [3.0, 7.0, 1.0]
    cols = p.predicting_columns()
    assert cols[0, :3].tolist() == [6, 7, 8] and cols[2, 0].item() == 7 and cols.max().item() == 9  # clamped
    assert p.at_response(p.input_ids[..., None] * 1.0)[1, :, 0].tolist() == [51, 80, 81, 82, 83, 84, 85]


@pytest.mark.parametrize("chunk", [256, 2, 1])
def test_token_logprobs_match_unpadded_forward(model, chunk):
    model.eval()
    got = token_logprobs(model, pack(PROMPTS, RESPONSES, pad_id=0), chunk=chunk)
    for i, (pr, r) in enumerate(zip(PROMPTS, RESPONSES)):
        want = naive_logps(model, pr, r)
        assert torch.allclose(got[i, : len(r)], want, atol=1e-5)
        assert torch.all(got[i, len(r) :] == 0)


def test_chunked_gradients_equal_unchunked(model):
    packed = pack(PROMPTS, RESPONSES, pad_id=0)
    grads = []
    for chunk in (256, 2):
        model.zero_grad()
        token_logprobs(model, packed, chunk=chunk).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_topk_logprobs(model):
    model.eval()
    packed = pack(PROMPTS, RESPONSES, pad_id=0)
    ids, lp = topk_logprobs(model, packed, k=5, chunk=3)
    logits = model(input_ids=torch.tensor([PROMPTS[0] + RESPONSES[0]])).logits[0]
    full = torch.log_softmax(logits[len(PROMPTS[0]) - 1], -1)
    want = full.topk(5)
    assert ids.shape == (3, 7, 5)
    assert torch.equal(ids[0, 0], want.indices) and torch.allclose(lp[0, 0], want.values, atol=1e-5)
