"""One VPD training step on one device with a randomly initialised Qwen3-1.7B-shaped model.

Measures, for the configured batch (problems x group rollouts):

- rollout tokens/s with the HF backend (vpd_core.rollout.HFRolloutEngine) and, where
  vLLM is installed, the colocated vLLM backend (engine start and one weight sync timed
  separately);
- M-step and E-step tokens/s (vpd_core.trainer.Trainer: bf16 autocast, gradient
  checkpointing, chunked top-K distillation), peak device memory of each phase;
- model FLOPs utilisation: matmul FLOPs of the work done (2 N per token forward, 6 N
  forward+backward, the lm head only at response positions; attention scores and the
  checkpointing recompute not counted) over the device's dense bf16 peak.

The model is random and the tokenizer is a word-level stand-in with Qwen3's vocabulary
size (the device has no internet and no Qwen weights), so responses run to the length cap:
throughput, not quality. Repeats after one warm-up; medians reported.

    python benchmarks/gpu_step.py                            # CUDA, Qwen3-1.7B shape
    python benchmarks/gpu_step.py --device cpu --tiny        # smoke mode (CI)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

# Qwen3-1.7B's config.json (architecture only)
QWEN3_1_7B = dict(vocab_size=151936, hidden_size=2048, intermediate_size=6144, num_hidden_layers=28,
                  num_attention_heads=16, num_key_value_heads=8, head_dim=128, max_position_embeddings=40960,
                  rope_theta=1_000_000.0, tie_word_embeddings=True, rms_norm_eps=1e-6)
TINY = dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=1, head_dim=32, max_position_embeddings=4096, tie_word_embeddings=True)
# dense bf16 peak FLOP/s by device name
PEAK_BF16 = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12, "L40S": 362e12}


def word_tokenizer(vocab_size: int):
    """A word-level tokenizer with exactly `vocab_size` ids ("w5" -> 5) and a ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from vpd_core.tiny import CHATML, SPECIALS

    vocab = {s: i for i, s in enumerate(SPECIALS)} | {f"w{i}": i for i in range(len(SPECIALS), vocab_size)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.add_special_tokens({"additional_special_tokens": SPECIALS[1:2]})  # <|im_start|> ends a word
    fast.chat_template = CHATML
    return fast


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device):
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # process peak RSS (KiB -> GiB)


def build(args, device):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from vpd_core.config import parse_params

    shape = dict(TINY if args.tiny else QWEN3_1_7B)
    if args.layers:
        shape["num_hidden_layers"] = args.layers
    tok = word_tokenizer(shape["vocab_size"])
    torch.manual_seed(0)
    config = Qwen3Config(**shape, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model = Qwen3ForCausalLM(config).to(device)  # fp32 master weights; bf16 matmuls under autocast
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    params = parse_params({
        "algorithm": "vpd",
        "model": {"gradient_checkpointing": not args.tiny, "device": device.type},
        "rollout": {"problems_per_step": args.problems, "group_size": args.group, "max_new_tokens": args.response_len,
                    "max_prompt_tokens": args.prompt_len + 64, "batch_size": args.problems * args.group},
        "train": {"micro_batch_size": args.micro_batch, "logit_chunk": args.chunk,
                  "mixed_precision": "fp32" if device.type == "cpu" else "bf16"},
        "teacher": {"max_prompt_tokens": args.prompt_len + args.response_len + 256},
        "vpd": {"e_every": 10**6},  # the E-step is timed on its own below
        "distill": {"topk": 20},
    })
    return tok, model, params


def prompts(tok, args, vocab: int):
    from vpd_core.sequences import chat_prompt_ids

    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(args.problems):
        words = " ".join(f"w{int(i)}" for i in torch.randint(3, vocab, (args.prompt_len,), generator=g))
        out.append([{"role": "user", "content": words}])
    return out, [chat_prompt_ids(tok, m) for m in out]


def samples_from(messages, rollouts, group: int):
    """Half of each group solved (siblings for the rest), feedback text on the failures."""
    from vpd_core.sequences import Sample

    return [Sample(messages=messages[i // group], rollout=r, group=i // group, reward=float(i % 2 == 0),
                   feedback="" if i % 2 == 0 else "Wrong Answer: expected 3, got 4")
            for i, r in enumerate(rollouts)]


def timed(device, fn):
    sync(device)
    reset_peak(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t0, peak_gib(device)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--tiny", action="store_true", help="tiny random model and batch (smoke mode)")
    ap.add_argument("--problems", type=int, default=None, help="problems per step (default 8; tiny 2)")
    ap.add_argument("--group", type=int, default=None, help="rollouts per problem (default 8; tiny 2)")
    ap.add_argument("--prompt-len", type=int, default=None, help="prompt words (default 512; tiny 16)")
    ap.add_argument("--response-len", type=int, default=None, help="max new tokens (default 1024; tiny 16)")
    ap.add_argument("--layers", type=int, default=None, help="override the depth (a full-width check in less memory)")
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument("--chunk", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3, help="measured repeats after one warm-up")
    ap.add_argument("--no-vllm", action="store_true", help="skip the vLLM rollout measurement")
    ap.add_argument("--out", required=True, help="JSON file for the results (kept out of the repository)")
    args = ap.parse_args(argv)
    small = args.tiny
    args.problems = args.problems or (2 if small else 8)
    args.group = args.group or (2 if small else 8)
    args.prompt_len = args.prompt_len or (16 if small else 512)
    args.response_len = args.response_len or (16 if small else 1024)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but no CUDA device (use --device cpu --tiny for the smoke mode)", file=sys.stderr)
        return 2
    device = torch.device(args.device)

    from vpd_core.rollout import HFRolloutEngine, SamplingParams
    from vpd_core.teacher import build_teacher_contexts
    from vpd_core.trainer import Trainer

    tok, model, params = build(args, device)
    vocab = model.config.vocab_size
    n_decoder = sum(p.numel() for n, p in model.named_parameters() if ".layers." in n)
    n_head = model.config.hidden_size * vocab
    messages, prompt_ids = prompts(tok, args, vocab)
    trainer = Trainer(model, tok, params)
    hf = HFRolloutEngine(model, tok, batch_size=args.problems * args.group)
    sampling = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=args.response_len)

    runs = []
    for rep in range(args.repeats + 1):  # the first is a warm-up
        rollouts, t_roll, mem_roll = timed(device, lambda: hf.generate(prompt_ids, args.group, sampling))
        samples = samples_from(messages, rollouts, args.group)
        contexts = build_teacher_contexts(samples, tok, params.teacher, params.feedback)
        resp = sum(len(r.response_ids) for r in rollouts)
        student_tokens = sum(len(r.prompt_ids) + len(r.response_ids) for r in rollouts)
        teacher_tokens = sum(len(c.prompt_ids) + len(r.response_ids) for c, r in zip(contexts, rollouts))
        _, t_m, mem_m = timed(device, lambda: trainer.train_step(samples))
        e_metrics, t_e, mem_e = timed(device, lambda: trainer.e_step(samples))
        assert "estep/loss" in e_metrics, e_metrics  # not skipped
        e_two_pass = e_metrics["estep/teacher_passes"] == 2  # no graph kept: a no-grad teacher pass first
        runs.append({
            "rollout_s": t_roll, "mstep_s": t_m, "estep_s": t_e, "response_tokens": resp,
            "student_tokens": student_tokens, "teacher_tokens": teacher_tokens,
            "peak_gib": {"rollout": mem_roll, "mstep": mem_m, "estep": mem_e},
            # matmul FLOPs of the work done (see the module docstring)
            "flops": {
                "rollout": 2 * (n_decoder * (student_tokens) + n_head * resp),
                "mstep": 3 * 2 * (n_decoder * student_tokens + n_head * resp) + 2 * (n_decoder * teacher_tokens + n_head * resp),
                "estep": 2 * (n_decoder * student_tokens + n_head * resp)
                + (3 + e_two_pass) * 2 * (n_decoder * teacher_tokens + n_head * resp),
            },
        })
        print(f"{'warm-up' if rep == 0 else f'repeat {rep}'}: rollout {t_roll:.2f}s  M-step {t_m:.2f}s  "
              f"E-step {t_e:.2f}s  ({resp} response tokens)", flush=True)
    measured = runs[1:]

    def med(f):
        return statistics.median(f(r) for r in measured)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    result = {
        "device": name,
        "model": ("tiny" if args.tiny else "Qwen3-1.7B shape (random init)") + (f", {args.layers} layers" if args.layers else ""),
        "params": n_decoder + n_head, "torch": torch.__version__,
        "batch": {"problems": args.problems, "group": args.group, "prompt_words": args.prompt_len,
                  "max_new_tokens": args.response_len, "micro_batch": args.micro_batch, "chunk": args.chunk},
        "precision": params.train.mixed_precision, "gradient_checkpointing": params.model.gradient_checkpointing,
        "repeats": args.repeats,
        "hf_rollout_tokens_per_s": med(lambda r: r["response_tokens"] / r["rollout_s"]),
        "mstep_tokens_per_s": med(lambda r: r["response_tokens"] / r["mstep_s"]),
        "estep_tokens_per_s": med(lambda r: r["response_tokens"] / r["estep_s"]),
        "mstep_processed_tokens_per_s": med(lambda r: (r["student_tokens"] + r["teacher_tokens"]) / r["mstep_s"]),
        "peak_gib": {k: max(r["peak_gib"][k] for r in measured) for k in ("rollout", "mstep", "estep")},
        "mfu": {k: (med(lambda r, k=k: r["flops"][k] / r[f"{k}_s"]) / peak if peak else None)
                for k in ("rollout", "mstep", "estep")},
        "peak_bf16_flops": peak,
        "runs": measured,
    }
    if not args.no_vllm:
        result["vllm"] = vllm_rollouts(model, tok, params, prompt_ids, args, sampling)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))
    print(f"-> {out}")
    return 0


def vllm_rollouts(model, tok, params, prompt_ids, args, sampling) -> dict:
    """The colocated vLLM engine on the same weights: start, one weight sync, generation (median of repeats)."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        return {"skipped": "vllm is not installed in this environment"}
    from vpd_core.models import stop_token_ids
    from vpd_core.rollout_vllm import VLLMRolloutEngine

    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d)
        tok.save_pretrained(d)
        t0 = time.perf_counter()
        engine = VLLMRolloutEngine(d, tok, stop_token_ids(tok, model), dtype="bfloat16" if params.train.mixed_precision == "bf16" else "float32",
                                   max_model_len=args.prompt_len + args.response_len + 64, enforce_eager=args.tiny,
                                   gpu_memory_utilization=0.3)
        start_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    engine.sync_weights(model)
    sync_s = time.perf_counter() - t0
    times, tokens = [], []
    for _ in range(args.repeats + 1):
        t0 = time.perf_counter()
        out = engine.generate(prompt_ids, args.group, sampling)
        times.append(time.perf_counter() - t0)
        tokens.append(sum(len(r.response_ids) for r in out))
    rates = [n / t for n, t in zip(tokens[1:], times[1:])]
    return {"engine_start_s": start_s, "weight_sync_s": sync_s, "rollout_tokens_per_s": statistics.median(rates)}


def table(r: dict) -> str:
    def mfu(k):
        return f"{100 * r['mfu'][k]:.1f}%" if r["mfu"][k] is not None else "n/a"

    v = r.get("vllm", {})
    vllm = f"{v['rollout_tokens_per_s']:.0f}" if "rollout_tokens_per_s" in v else v.get("skipped", "-")
    rows = [
        ("rollout (HF generate)", f"{r['hf_rollout_tokens_per_s']:.0f}", f"{r['peak_gib']['rollout']:.1f}", mfu("rollout")),
        ("rollout (vLLM, colocated)", vllm, "-", "-"),
        ("M-step (teacher scoring + update)", f"{r['mstep_tokens_per_s']:.0f}", f"{r['peak_gib']['mstep']:.1f}", mfu("mstep")),
        ("E-step (prior + teacher, BCO update)", f"{r['estep_tokens_per_s']:.0f}", f"{r['peak_gib']['estep']:.1f}", mfu("estep")),
    ]
    lines = [f"{r['device']}, {r['model']}, batch {r['batch']}, median of {r['repeats']}",
             "| phase | response tokens/s | peak GiB | MFU |", "|---|---:|---:|---:|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
