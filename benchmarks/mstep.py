"""M-step throughput and peak memory: vpd_core vs TRL's SDPO trainer loss (topk_logits mode).

Both run the same work on the same model and batch: a no-grad teacher forward
on (teacher prompt + response), a student forward+backward on (prompt +
response), the top-K (K=20, tail bucket) reverse-KL distillation loss with the
clipped importance weight, gradient clipping and one AdamW step.

- ours: `vpd_core.trainer.Trainer.m_step` (hidden states at response positions,
  lm head applied in chunks; `--chunk` sets the chunk size).
- trl:  `trl.experimental.sdpo.SDPOTrainer._compute_teacher_student_logits` and
  `._compute_self_distillation_loss`, called on a real SDPOTrainer instance.

Each (implementation, repeat) runs in a fresh subprocess so that peak RSS
(ru_maxrss) belongs to that implementation alone; implementations are
interleaved so machine drift hits both. Prints a markdown table and writes JSON.

    python benchmarks/mstep.py                      # SmolLM2-135M-Instruct, B=8, T=128
    python benchmarks/mstep.py --tiny --repeats 1   # smoke mode on the tiny random model
    python benchmarks/mstep.py --batch 2 --resp-len 2048 --impls ours,ours-ckpt,trl   # long responses
(`ours-ckpt`: ours with activation checkpointing, model.gradient_checkpointing: true.)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def current_rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def make_batch(tok, batch: int, resp_len: int, seed: int):
    """Fixed batch: chat prompts, teacher prompts with feedback, random response tokens."""
    import torch

    from vpd_core.data.benchmarks import arithmetic
    from vpd_core.sequences import Rollout, Sample, chat_prompt_ids

    g = torch.Generator().manual_seed(seed)
    problems = arithmetic.make_problems(batch, 30, seed)
    samples = []
    for i, p in enumerate(problems):
        ids = chat_prompt_ids(tok, list(p.messages))
        resp = torch.randint(100, len(tok) - 1, (resp_len,), generator=g).tolist()
        samples.append(Sample(messages=list(p.messages), rollout=Rollout(ids, resp, [-3.0] * resp_len, "length", ""),
                              group=i // 4, reward=0.0, feedback="Your final answer 12 is wrong. " * 4))
    return samples


def run_one(args) -> dict:
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    from vpd_core.config import parse_params
    from vpd_core.models import load_model, load_tokenizer, resolve_model_path
    from vpd_core.teacher import build_teacher_contexts
    from vpd_core.tiny import write_tiny_model

    if args.tiny:
        path = write_tiny_model(Path(args.workdir) / "tiny")
    else:
        path = resolve_model_path("embedded", REPO / "models")
    tok, model = load_tokenizer(path), load_model(path)
    params = parse_params({
        "algorithm": "sdpo", "sdpo": {"teacher": "frozen"},  # placeholder; overridden below per impl
        # TRL averages per sequence, then over sequences: match it so both compute the same loss.
        "distill": {"topk": 20, "alpha": 1.0, "add_tail": True, "is_clip": 2.0, "loss_agg": "seq-mean-token-mean"},
        "train": {"micro_batch_size": args.batch, "logit_chunk": args.chunk},
        "rollout": {"group_size": 4},
    })
    params.algorithm = "vpd"  # live teacher: the same network, as in VPD and TRL's default
    samples = make_batch(tok, args.batch, args.resp_len, seed=1)
    contexts = build_teacher_contexts(samples, tok, params.teacher, params.feedback)
    tokens = sum(len(s.rollout.response_ids) for s in samples)
    model.train()
    base_rss = current_rss_mib()

    if args.impl in ("ours", "ours-ckpt"):
        from vpd_core.trainer import Trainer, set_checkpointing

        trainer = Trainer(model, tok, params)
        set_checkpointing(model, args.impl == "ours-ckpt")  # model.gradient_checkpointing: true

        def step():
            return trainer.m_step(samples, contexts)["distill/loss"]
    else:
        step = trl_step_fn(model, tok, samples, contexts, args)

    times, losses = [], []
    for i in range(args.warmup + args.iters):
        t0 = time.perf_counter()
        loss = step()
        dt = time.perf_counter() - t0
        if i >= args.warmup:
            times.append(dt)
            losses.append(float(loss))
    # the static part of an update over the loaded model: gradients and AdamW's two moments, fp32;
    # the rest of the peak over the loaded model is activations (and allocator slack)
    static = 3 * sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    return {
        "impl": args.impl, "seconds": statistics.median(times), "tokens": tokens,
        "tokens_per_s": tokens / statistics.median(times), "peak_rss_mib": rss_mib(),
        "peak_over_loaded_mib": rss_mib() - base_rss, "static_mib": static,
        "activations_mib": rss_mib() - base_rss - static, "loss_first": losses[0],
    }


def trl_step_fn(model, tok, samples, contexts, args):
    import torch
    from datasets import Dataset
    from trl.experimental.sdpo import SDPOConfig, SDPOTrainer

    config = SDPOConfig(
        output_dir=str(Path(args.workdir) / "trl"), report_to=[], use_cpu=True, bf16=False,
        distillation_mode="topk_logits", distillation_topk=20, distillation_alpha=1.0,
        distillation_add_tail=True, distillation_is_clip=2.0, teacher_model_kind="live", max_grad_norm=1.0, learning_rate=1e-5,
        per_device_train_batch_size=args.batch, num_generations=min(4, args.batch), max_completion_length=args.resp_len,
    )
    data = Dataset.from_list([{"prompt": s.messages} for s in samples])
    trainer = SDPOTrainer(model=model, reward_funcs=[lambda completions, **kw: [0.0] * len(completions)],
                          args=config, train_dataset=data, processing_class=tok)
    responses = [s.rollout.response_ids for s in samples]
    s_ids, s_mask, P = trl_layout([s.rollout.prompt_ids for s in samples], responses, tok.pad_token_id)
    t_ids, t_mask, _ = trl_layout([c.prompt_ids for c in contexts], responses, tok.pad_token_id)
    inputs = {
        "prompt_ids": s_ids[:, :P], "prompt_mask": s_mask[:, :P],
        "completion_ids": s_ids[:, P:], "completion_mask": s_mask[:, P:],
        "teacher_input_ids": t_ids, "teacher_attention_mask": t_mask,
        "self_distillation_mask": torch.tensor([float(c.active) for c in contexts]),
        "old_per_token_logps": torch.tensor([s.rollout.sampler_logps for s in samples]),
    }
    teacher_model = trainer.teacher_model  # "live": the student network itself, as in VPD
    assert teacher_model is model
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def step():
        logits = trainer._compute_teacher_student_logits(model, teacher_model, inputs)
        loss = trainer._compute_self_distillation_loss(model, inputs, logits)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    return step


def trl_layout(prompts, responses, pad_id):
    """TRL's batch layout: prompts left-padded to P, completions right-padded. -> ids, mask [B, P+T], P"""
    import torch

    P, T = max(map(len, prompts)), max(map(len, responses))
    ids = torch.full((len(prompts), P + T), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        ids[i, P - len(p) : P + len(r)] = torch.tensor(list(p) + list(r))
        mask[i, P - len(p) : P + len(r)] = 1
    return ids, mask, P


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--impls", default="ours,trl")
    ap.add_argument("--repeats", type=int, default=3, help="fresh processes per implementation")
    ap.add_argument("--iters", type=int, default=2, help="timed M-steps per process (median taken)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--resp-len", type=int, default=128)
    ap.add_argument("--chunk", type=int, default=32)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--tiny", action="store_true", help="smoke mode: tiny random model")
    ap.add_argument("--out", required=True, help="JSON file for the results (kept out of the repository)")
    ap.add_argument("--workdir", default="/tmp/vpd-bench")
    ap.add_argument("--memory-limit-gib", type=float, default=None,
                    help="address-space limit per implementation process: one that needs more fails with an "
                         "allocation error and is reported as such, instead of the machine swapping or the OOM killer")
    ap.add_argument("--impl", help=argparse.SUPPRESS)  # child mode
    args = ap.parse_args()
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    if args.impl:
        print(json.dumps(run_one(args)))
        return

    def limit():
        if args.memory_limit_gib:
            import resource

            cap = int(args.memory_limit_gib * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    results: dict[str, list[dict]] = {}
    failed: dict[str, str] = {}
    for r in range(args.repeats):
        for impl in args.impls.split(","):
            if impl in failed:  # out of memory once: the next repeat would be too
                continue
            argv = sys.argv[1:]
            child = [a for i, a in enumerate(argv) if not a.startswith("--impls") and not (i and argv[i - 1] == "--impls")]
            cmd = [sys.executable, __file__, "--impl", impl, *child]
            proc = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=limit)
            if proc.returncode != 0:
                tail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
                print(f"{impl} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
                if not any(s in proc.stderr for s in ("MemoryError", "DefaultCPUAllocator", "out of memory")):
                    sys.exit(1)
                failed[impl] = tail  # out of memory under the limit: a result, reported
                continue
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            results.setdefault(impl, []).append(row)
            print(f"repeat {r} {impl}: {row['tokens_per_s']:.1f} tok/s, peak RSS {row['peak_rss_mib']:.0f} MiB",
                  file=sys.stderr)

    summary = {}
    for impl, rows in results.items():
        summary[impl] = {
            "tokens_per_s_median": statistics.median(x["tokens_per_s"] for x in rows),
            "seconds_median": statistics.median(x["seconds"] for x in rows),
            "peak_rss_mib_median": statistics.median(x["peak_rss_mib"] for x in rows),
            "peak_over_loaded_mib_median": statistics.median(x["peak_over_loaded_mib"] for x in rows),
            "static_mib": rows[0]["static_mib"],
            "activations_mib_median": statistics.median(x["activations_mib"] for x in rows),
            "loss": rows[0]["loss_first"],
            "runs": rows,
        }
    meta = {"batch": args.batch, "resp_len": args.resp_len, "chunk": args.chunk, "threads": args.threads,
            "model": "tiny" if args.tiny else "SmolLM2-135M-Instruct", "repeats": args.repeats, "iters": args.iters,
            "memory_limit_gib": args.memory_limit_gib}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "summary": summary, "failed": failed}, indent=2))
    print(f"\n{meta}\n")
    print("| impl | tokens/s (median) | s/step | peak RSS MiB | over loaded model MiB | of it static (grads, AdamW) "
          "| of it activations | loss |")
    print("|---|---|---|---|---|---|---|---|")
    for impl, s in summary.items():
        print(f"| {impl} | {s['tokens_per_s_median']:.1f} | {s['seconds_median']:.2f} | {s['peak_rss_mib_median']:.0f} "
              f"| {s['peak_over_loaded_mib_median']:.0f} | {s['static_mib']:.0f} | {s['activations_mib_median']:.0f} "
              f"| {s['loss']:.8f} |")
    for impl, why in failed.items():
        print(f"| {impl} | failed: {why[:120]} | | | | | | |")


if __name__ == "__main__":
    main()
