"""One SDPA call as the decoder makes it, forward + backward, at the shapes of SmolLM2 (9 query
heads, 3 KV heads, head dim 64): the left-padded layout's way (bool [B,1,L,L] mask, K/V repeated per
query head, as transformers does when a mask is given) against the [prompt | response | pad]
layout's (no mask, causal kernel, grouped-query heads). Bytes kept for backward and seconds.

    .venv/bin/python benchmarks/attention.py [--len 2048] [--repeats 5] [--out DIR/attention.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--len", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    B, H, KV, L, D = args.batch, 9, 3, args.len, 64
    g = torch.Generator().manual_seed(0)
    q = torch.randn(B, H, L, D, generator=g, requires_grad=True)
    k = torch.randn(B, KV, L, D, generator=g, requires_grad=True)
    v = torch.randn(B, KV, L, D, generator=g, requires_grad=True)
    mask = torch.ones(L, L, dtype=torch.bool).tril()[None, None].repeat(B, 1, 1, 1)
    mask[0, :, :, :5] = False  # row 0 left-padded by 5
    rep = lambda x: x[:, :, None].expand(B, KV, H // KV, L, D).reshape(B, H, L, D)  # noqa: E731 (transformers' repeat_kv)
    ways = {
        "bool mask, K/V repeated (left-padded layout)": lambda: F.scaled_dot_product_attention(q, rep(k), rep(v), attn_mask=mask),
        "no mask, causal, grouped-query (right-padded layout)": lambda: F.scaled_dot_product_attention(
            q, k, v, is_causal=True, enable_gqa=True),
    }
    out = {}
    for _ in range(args.repeats):  # interleaved
        for name, fn in ways.items():
            kept = {}

            def pack(t):
                kept[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
                return t

            t0 = time.perf_counter()
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                y = fn()
            y.sum().backward()
            out.setdefault(name, {"seconds": [], "kept_mib": sum(kept.values()) / 2**20})["seconds"].append(
                time.perf_counter() - t0)
    for name, r in out.items():
        r["seconds_median"] = statistics.median(r["seconds"])
        print(f"{name}: {r['seconds_median']:.3f} s (median of {args.repeats}), {r['kept_mib']:.0f} MiB kept for backward")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"batch": B, "len": L, "threads": torch.get_num_threads(), **out}, indent=2))


if __name__ == "__main__":
    main()
