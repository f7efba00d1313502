"""How hard is a task for the embedded model, and how long does sampling it take? (docs/results.md)

    HF_HUB_OFFLINE=1 scripts/with-dockerd.sh .venv/bin/python benchmarks/demo_task.py \
        --set data.source=minicode --split train --samples 4 --out /tmp/minicode-base.json

Samples `--samples` responses per problem at the training temperature with the configured
prompt and length limit, grades them like training does (code in the sandbox on the training
tests), and prints the success rate overall and per template/category, response lengths,
truncation, and the seconds spent sampling and grading. Results go to --out (JSON), not the repo.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict

import torch

from vpd_core.loop import make_grader
from vpd_core import loop
from vpd_core.config import load_params
from vpd_core.models import load_model, load_tokenizer, resolve_model_path
from vpd_core.rollout import make_engine
from vpd_core.sampling import SamplingParams


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    ap.add_argument("--split", default="train", choices=["train", "test"])
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--limit", type=int, default=0, help="first N problems only (0 = all)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    p = load_params(args.params, args.overrides)
    torch.manual_seed(p.seed)
    path = resolve_model_path(p.model.path, p.model.cache_dir)
    tok, model = load_tokenizer(path, p.model.chat_template_kwargs), load_model(path, p.model.dtype, p.model.device)
    engine = make_engine(p, model, tok, path)
    problems = loop.load_problems(p, args.split)[: args.limit or None]
    grader, sandbox = make_grader(p, p.sandbox.train_tests if args.split == "train" else "all")
    r = p.rollout
    sampling = SamplingParams(r.temperature, r.top_p, r.max_new_tokens, p.seed, tuple(r.stop))
    t0 = time.perf_counter()
    rollouts = loop.generate(engine, tok, problems, args.samples, sampling, r.max_prompt_tokens)
    t1 = time.perf_counter()
    try:
        graded = grader(loop.expand(problems, rollouts, args.samples))
    finally:
        if sandbox is not None:
            sandbox.close()
    t2 = time.perf_counter()
    by = defaultdict(list)
    per_problem = []
    for i, prob in enumerate(problems):
        rewards = [graded[i * args.samples + j][0] for j in range(args.samples)]
        per_problem.append({"id": prob.id, "template": prob.difficulty, "category": prob.domain, "rewards": rewards})
        by[f"template/{prob.difficulty}"].extend(rewards)
        by[f"category/{prob.domain}"].extend(rewards)
    rewards = [g[0] for g in graded]
    lengths = [len(ro.response_ids) for ro in rollouts]
    summary = {
        "params_overrides": args.overrides, "split": args.split, "problems": len(problems), "samples": args.samples,
        "success": sum(rewards) / len(rewards),
        "problems_solved_at_least_once": sum(max(x["rewards"]) > 0 for x in per_problem) / len(per_problem),
        "response_tokens_mean": sum(lengths) / len(lengths),
        "truncated": sum(ro.finish_reason == "length" for ro in rollouts) / len(rollouts),
        "prompt_tokens_mean": sum(len(ro.prompt_ids) for ro in rollouts) / len(rollouts),
        "seconds_sampling": t1 - t0, "seconds_grading": t2 - t1,
        "by": {k: sum(v) / len(v) for k, v in sorted(by.items())},
        "examples": [{"id": problems[i // args.samples].id, "reward": graded[i][0], "text": rollouts[i].text,
                      "feedback": graded[i][1]} for i in range(0, min(len(rollouts), 12 * args.samples), args.samples)],
        "per_problem": per_problem,
    }
    with open(args.out, "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps({k: v for k, v in summary.items() if k not in ("examples", "per_problem")}, indent=1))


if __name__ == "__main__":
    main()
