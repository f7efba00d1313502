"""Rollout throughput: response tokens/s of the HF backend and the vLLM backend on the same prompts.

    HF_HUB_OFFLINE=1 VLLM_CPU_KVCACHE_SPACE=2 .venv-vllm/bin/python benchmarks/rollout.py --out /tmp/rollout.json \
        [--params params.yaml] [--set key=value ...] [--prompts 8] [--group 4] [--max-new-tokens 96] [--repeats 3]

The embedded model (or model.path) on the configured training problems: `--prompts` problems x
`--group` rollouts at the training temperature, interleaved repeats (HF, vLLM, HF, ...), median
tokens/s per backend; the vLLM engine's start-up is timed apart (once per training run). Run it in
the vLLM environment (it has both backends). Results go to --out, not into the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from vpd_core import loop
from vpd_core.config import load_params
from vpd_core.models import load_model, load_tokenizer, resolve_model_path
from vpd_core.rollout import make_engine
from vpd_core.sampling import SamplingParams
from vpd_core.sequences import chat_prompt_ids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--group", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    p = load_params(args.params, args.overrides)
    torch.manual_seed(p.seed)
    path = resolve_model_path(p.model.path, p.model.cache_dir)
    tok, model = load_tokenizer(path, p.model.chat_template_kwargs), load_model(path, p.model.dtype, "cpu")
    problems = loop.load_problems(p, "train")[: args.prompts]
    prompts = [chat_prompt_ids(tok, q.messages) for q in problems]
    engines = {}
    t0 = time.perf_counter()
    engines["hf"] = make_engine(p.model_copy(update={"rollout": p.rollout.model_copy(update={"backend": "hf"})}),
                                model, tok, path)
    start = {"hf": time.perf_counter() - t0}
    t0 = time.perf_counter()
    engines["vllm"] = make_engine(p.model_copy(update={"rollout": p.rollout.model_copy(update={"backend": "vllm"})}),
                                  model, tok, path)
    start["vllm"] = time.perf_counter() - t0
    runs: dict[str, list[dict]] = {name: [] for name in engines}
    for r in range(args.repeats):
        for name, engine in engines.items():
            sampling = SamplingParams(p.rollout.temperature, p.rollout.top_p, args.max_new_tokens, p.seed + r, ())
            t0 = time.perf_counter()
            out = engine.generate(prompts, args.group, sampling)
            seconds = time.perf_counter() - t0
            tokens = sum(len(x.response_ids) for x in out)
            runs[name].append({"seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds})
            print(f"repeat {r} {name}: {tokens} tokens in {seconds:.1f} s ({tokens / seconds:.1f} tok/s)", flush=True)
    summary = {name: {"tokens_per_s_median": statistics.median(x["tokens_per_s"] for x in rs), "start_s": start[name],
                      "runs": rs} for name, rs in runs.items()}
    summary["vllm_over_hf"] = summary["vllm"]["tokens_per_s_median"] / summary["hf"]["tokens_per_s_median"]
    # each repeat's pair (same seed, run back to back): the spread says how far one pair can be trusted
    pairs = [v["tokens_per_s"] / h["tokens_per_s"] for h, v in zip(runs["hf"], runs["vllm"])]
    summary["vllm_over_hf_pairs"] = pairs
    summary["vllm_over_hf_pairs_median"] = statistics.median(pairs)
    meta = {"model": str(path), "source": p.data.source, "prompts": len(prompts), "group": args.group,
            "max_new_tokens": args.max_new_tokens, "temperature": p.rollout.temperature, "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "repeats": args.repeats}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "summary": summary}, indent=2))
    print(json.dumps({"meta": meta, "hf_tok_s": summary["hf"]["tokens_per_s_median"],
                      "vllm_tok_s": summary["vllm"]["tokens_per_s_median"], "vllm_over_hf": summary["vllm_over_hf"],
                      "vllm_over_hf_pairs": [round(x, 2) for x in pairs],
                      "vllm_start_s": start["vllm"]}, indent=2))


if __name__ == "__main__":
    main()
