"""Memory-lean RMSNorm and SwiGLU for Llama-family decoders (Llama, SmolLM2, Qwen2/3, Mistral).

Same mathematics, fewer tensors kept for backward. Per decoder layer the stock modules keep:

    RMSNorm:  x, the normalised x, the output                  -> here: x, 1/rms  (+ the output, kept by the next matmul)
    MLP:      gate(x), silu(gate(x)), up(x), their product     -> here: gate(x), up(x)

The dropped ones are elementwise and recomputed in backward (no matmul is recomputed, unlike
activation checkpointing): about 1.6 GB less at B=2, T=2048 on SmolLM2 (docs/benchmarks.md,
issue 15.1). `fuse(model)` swaps the forward of every module whose class computes exactly this:
each class is checked once against its own forward on a random input and left alone if it differs
(e.g. Gemma's (1 + weight) norm), so an unknown architecture trains as before.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F


class RMSNormFn(torch.autograd.Function):
    """weight * (x / rms(x)) computed in float32 and cast back, as Llama's RMSNorm. Keeps x and 1/rms."""

    @staticmethod
    def forward(ctx, x, weight, eps: float):  # [..., H], [H]
        x32 = x.float()
        rstd = torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)  # [..., 1]
        ctx.save_for_backward(x, weight, rstd)
        return weight * (x32 * rstd).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        x, weight, rstd = ctx.saved_tensors
        n32 = x.float() * rstd  # normalised x, recomputed
        n = n32.to(x.dtype)
        grad_weight = (grad * n).reshape(-1, n.shape[-1]).sum(0).to(weight.dtype) if ctx.needs_input_grad[1] else None
        g = (grad * weight).float()
        grad_x = rstd * (g - n32 * (g * n32).mean(-1, keepdim=True))
        return grad_x.to(x.dtype), grad_weight, None


class SwiGLUDownFn(torch.autograd.Function):
    """down(silu(g) * u) keeping only g and u: silu(g) and the product are recomputed in backward.
    Under autocast the matmul runs in the autocast dtype, as nn.Linear's would."""

    @staticmethod
    def forward(ctx, g, u, weight):  # [..., I], [..., I], [H, I]
        device = g.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else weight.dtype
        with torch.autocast(device, enabled=False):
            p = F.silu(g) * u
            out = F.linear(p.to(dtype), weight.to(dtype))  # [..., H]
        ctx.save_for_backward(g, u, weight)
        ctx.dtype = dtype
        return out

    @staticmethod
    def backward(ctx, grad):
        g, u, weight = ctx.saved_tensors
        with torch.autocast(g.device.type, enabled=False):
            s = torch.sigmoid(g)
            silu = g * s
            p = (silu * u).to(ctx.dtype)
            grad = grad.to(ctx.dtype)
            grad_weight = None
            if ctx.needs_input_grad[2]:
                grad_weight = (grad.reshape(-1, grad.shape[-1]).t() @ p.reshape(-1, p.shape[-1])).to(weight.dtype)
            grad_p = (grad @ weight.to(ctx.dtype)).to(g.dtype)
            grad_u = grad_p * silu
            grad_g = grad_p * u * (s * (1 + g * (1 - s)))  # d silu / dg, as aten's silu_backward
        return grad_g, grad_u, grad_weight


def rmsnorm_forward(self, x):
    return RMSNormFn.apply(x, self.weight, self.variance_epsilon)


def swiglu_forward(self, x):
    return SwiGLUDownFn.apply(self.gate_proj(x), self.up_proj(x), self.down_proj.weight)


def _is_swiglu(m: torch.nn.Module) -> bool:
    projs = [getattr(m, n, None) for n in ("gate_proj", "up_proj", "down_proj")]
    return (all(isinstance(p, torch.nn.Linear) and p.bias is None for p in projs)
            and type(getattr(m, "act_fn", None)).__name__ in ("SiLU", "SiLUActivation"))


def _is_rmsnorm(m: torch.nn.Module) -> bool:
    w = getattr(m, "weight", None)
    return (type(m).__name__.endswith("RMSNorm") and isinstance(w, torch.nn.Parameter) and w.dim() == 1
            and isinstance(getattr(m, "variance_epsilon", None), float))


def _same_as_stock(m: torch.nn.Module, lean) -> bool:
    """The lean forward equals the module's own on a random input (forward and input gradient)."""
    width = m.weight.shape[0] if _is_rmsnorm(m) else m.gate_proj.in_features
    param = next(m.parameters())
    gen = torch.Generator().manual_seed(0)  # not the global stream: fusing must not shift a run's randomness
    x = torch.randn(2, 3, width, generator=gen).to(param.device, param.dtype)
    outs = []
    for fn in (m.forward, types.MethodType(lean, m)):
        xi = x.clone().requires_grad_(True)
        with torch.enable_grad():
            y = fn(xi)
            (gx,) = torch.autograd.grad(y.float().square().sum(), xi)
        outs.append((y.detach(), gx))
    tol = dict(rtol=1e-4, atol=1e-5) if param.dtype == torch.float32 else dict(rtol=2e-2, atol=2e-2)
    return all(torch.allclose(a, b, **tol) for a, b in zip(*outs))


def fuse(model: torch.nn.Module) -> dict[str, int]:
    """Swap the forward of every RMSNorm and SwiGLU MLP that computes the same as the lean one.
    Returns how many modules of each kind were swapped."""
    checked: dict[type, bool] = {}
    counts = {"rmsnorm": 0, "swiglu": 0}
    for m in model.modules():
        kind, lean = ("rmsnorm", rmsnorm_forward) if _is_rmsnorm(m) else ("swiglu", swiglu_forward) if _is_swiglu(m) else (None, None)
        if kind is None or "forward" in m.__dict__:  # not ours, or swapped already
            continue
        if type(m) not in checked:
            checked[type(m)] = _same_as_stock(m, lean)
        if checked[type(m)]:
            m.forward = types.MethodType(lean, m)
            counts[kind] += 1
    return counts
