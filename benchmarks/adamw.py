"""One AdamW step over SmolLM2-135M's parameters: the per-parameter loop, foreach, fused.

The trainer steps AdamW once per M-step and once per E-step; it uses `fused=True`. Random
gradients, state initialised by a first step, then the median of --repeats timed steps per
implementation, implementations interleaved.

    .venv/bin/python benchmarks/adamw.py --out /tmp/adamw.json [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

IMPLS = {"loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(REPO / "models" / "smollm2-135m-instruct"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", required=True, help="JSON file for the results (kept out of the repository)")
    args = ap.parse_args()

    import torch

    from vpd_core.models import load_model

    torch.manual_seed(0)
    params = list(load_model(args.model, "float32", "cpu").parameters())
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    optimizers = {name: torch.optim.AdamW(params, lr=1e-7, **kw) for name, kw in IMPLS.items()}
    for opt in optimizers.values():
        opt.step()  # moments allocated
    seconds: dict[str, list[float]] = {name: [] for name in IMPLS}
    for _ in range(args.repeats):
        for name, opt in optimizers.items():
            t0 = time.perf_counter()
            opt.step()
            seconds[name].append(time.perf_counter() - t0)
    out = {"parameters": sum(p.numel() for p in params), "threads": torch.get_num_threads(), "seconds": seconds,
           "median_s": {name: statistics.median(s) for name, s in seconds.items()}}
    out["loop_over_fused"] = out["median_s"]["loop"] / out["median_s"]["fused"]
    print(json.dumps({k: v for k, v in out.items() if k != "seconds"}, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
