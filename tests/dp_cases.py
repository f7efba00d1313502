"""A fixed batch and trainer configurations shared by tests/test_distributed.py and its
torchrun worker (tests/dp_worker.py): the N-rank step must equal the one-process step."""

from vpd_core.sequences import Rollout, Sample, chat_prompt_ids

QUESTIONS = ["What is 2 + 3?", "What is 4 + 4?", "Read the inputs from stdin.", "def solve(a, b):"]

# name -> params overrides; micro_batch_size 3 splits each rank's 8 samples unevenly (3, 3, 2)
CASES = {
    "vpd": {"algorithm": "vpd", "vpd": {"e_every": 1}, "train": {"micro_batch_size": 3}},
    "vpd-one-micro-batch": {"algorithm": "vpd", "vpd": {"e_every": 1}, "train": {"micro_batch_size": 16}},
    "grpo": {"algorithm": "grpo", "train": {"micro_batch_size": 3}},
    "hybrid": {"algorithm": "hybrid", "hybrid": {"lam": 0.5}, "train": {"micro_batch_size": 3}},
    "sdpo-ema": {"algorithm": "sdpo", "sdpo": {"teacher": "ema", "ema_rate": 0.5}, "train": {"micro_batch_size": 3}},
    # PPO mini-batches: one problem (4 sequences) per update, spread over both ranks
    "grpo-mini-batches": {"algorithm": "grpo", "train": {"micro_batch_size": 3, "mini_batches": 4}},
    "vpd-mini-batches-recompute": {"algorithm": "vpd", "vpd": {"e_every": 1},
                                   "train": {"micro_batch_size": 3, "mini_batches": 2, "old_logps": "recompute"}},
    # the GPU-path switches under FSDP: gradient checkpointing is exact; bf16 autocast is compared
    # with the noise bf16 itself makes (tests/test_distributed.py)
    "vpd-checkpointing": {"algorithm": "vpd", "vpd": {"e_every": 1}, "model": {"gradient_checkpointing": True},
                          "train": {"micro_batch_size": 3}},
    "vpd-bf16": {"algorithm": "vpd", "vpd": {"e_every": 1}, "train": {"micro_batch_size": 3, "mixed_precision": "bf16"}},
}


def case_params(name: str) -> dict:
    base = {"rollout": {"group_size": 4, "problems_per_step": 4}, "optim": {"lr": 1e-3}}
    for k, v in CASES[name].items():
        base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) else v
    return base


def dp_batch(tok, step: int) -> list[Sample]:
    """4 groups x 4 samples: mixed rewards (siblings), failures with feedback, failures without
    feedback (masked out), all solved. Lengths vary so token- and sequence-level means differ."""
    samples = []
    for g, q in enumerate(QUESTIONS):
        msgs = [{"role": "user", "content": q}]
        ids = chat_prompt_ids(tok, msgs)
        for i in range(4):
            ok = {0: i % 2 == 0, 1: False, 2: False, 3: True}[g]
            text = f"answer {g} {i} {step} " * (1 + (i + g + step) % 3)
            resp = tok.encode(text, add_special_tokens=False) + [tok.eos_token_id]
            feedback = "" if ok or g == 2 else f"Wrong Answer: expected {g + i}"
            samples.append(Sample(messages=msgs, rollout=Rollout(ids, resp, [-5.6] * len(resp), "stop", text),
                                  group=g, reward=float(ok), feedback=feedback))
    return samples
