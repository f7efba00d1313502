"""Memory-lean RMSNorm and SwiGLU (vpd_core/fused.py) against the stock modules they replace, and
what they keep for backward."""

import copy

import pytest
import torch

from vpd_core.fused import fuse
from vpd_core.models import load_model


def saved_bytes(fn) -> int:
    """Bytes of the distinct storages autograd keeps for backward while fn runs."""
    seen = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def grads(model) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def test_the_tiny_model_is_fused_and_trains_the_same(tiny_dir):
    """Every norm and MLP of the tiny Llama swapped; logits identical, input and weight gradients
    equal to float rounding; RNG untouched."""
    stock, lean = load_model(tiny_dir), load_model(tiny_dir)
    before = torch.random.get_rng_state()
    counts = fuse(lean)
    assert torch.equal(torch.random.get_rng_state(), before)
    norms = sum(type(m).__name__.endswith("RMSNorm") for m in stock.modules())  # Qwen3: q/k norms too
    assert counts == {"rmsnorm": norms, "swiglu": stock.config.num_hidden_layers} and norms > 2 * counts["swiglu"]
    assert fuse(lean) == {"rmsnorm": 0, "swiglu": 0}  # idempotent
    ids = torch.randint(3, stock.config.vocab_size, (3, 17), generator=torch.Generator().manual_seed(1))
    outs = []
    for m in (stock, lean):
        m.zero_grad()
        logits = m(input_ids=ids).logits
        (logits.float().pow(2).mean() + logits[:, -1].logsumexp(-1).sum()).backward()
        outs.append((logits.detach(), grads(m)))
    assert torch.equal(outs[0][0], outs[1][0])
    assert torch.allclose(outs[0][1], outs[1][1], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_each_module_against_its_stock_forward(tiny_dir, dtype):
    """One RMSNorm and one MLP, fp32 and under bf16 autocast: outputs and all gradients."""
    model = load_model(tiny_dir)
    layer = model.model.layers[0]
    for stock in (layer.input_layernorm, layer.mlp):
        lean = copy.deepcopy(stock)
        fuse(lean)
        assert "forward" in lean.__dict__
        x = torch.randn(2, 5, model.config.hidden_size, generator=torch.Generator().manual_seed(2))
        res = []
        for m in (stock, lean):
            m.zero_grad()
            xi = x.clone().requires_grad_(True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
                y = m(xi)
            (y.float() * torch.linspace(-1, 1, y.shape[-1])).sum().backward()
            res.append((y.detach().float(), xi.grad, *[p.grad for p in m.parameters()]))
        tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-2, atol=1e-2)
        for a, b in zip(*res):
            assert a.dtype == b.dtype and torch.allclose(a, b, **tol), type(stock).__name__


def test_it_keeps_less_for_backward(tiny_dir):
    """Per MLP: gate(x) and up(x) instead of also silu(gate) and the product; per norm: x and 1/rms."""
    stock = load_model(tiny_dir).model.layers[0]
    lean = copy.deepcopy(stock)
    fuse(lean)
    x = torch.randn(2, 64, stock.mlp.gate_proj.in_features)
    inter = stock.mlp.gate_proj.out_features
    mlp = [saved_bytes(lambda m=m: m.mlp(x.requires_grad_(True))) for m in (stock, lean)]
    assert mlp[0] - mlp[1] == 2 * 2 * 64 * inter * 4  # silu(gate) and the product, fp32
    norm = [saved_bytes(lambda m=m: m.input_layernorm(x.requires_grad_(True))) for m in (stock, lean)]
    assert norm[1] < norm[0]


def test_a_module_that_computes_something_else_is_left_alone():
    """A Gemma-style norm (weight applied as 1 + w) has an RMSNorm's shape but not its forward."""

    class OffsetRMSNorm(torch.nn.Module):
        def __init__(self, n):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(n))
            self.variance_epsilon = 1e-6

        def forward(self, x):
            x32 = x.float()
            return ((1 + self.weight) * x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)).to(x.dtype)

    net = torch.nn.Sequential(OffsetRMSNorm(8), OffsetRMSNorm(8))
    assert fuse(net) == {"rmsnorm": 0, "swiglu": 0}
    assert "forward" not in net[0].__dict__
