"""presets/: the paper's protocols as params files (validated, protocol values pinned), and each
preset's knob combination (bf16 autocast, checkpointing, its feedback and loss settings) run for
one step with the tiny model and the embedded data standing in for Qwen3 and the real benchmark."""

from datetime import date
from pathlib import Path

import pytest

from tasks.common import make_grader
from vpd_core.config import load_params
from vpd_core.fileio import read_jsonl
from vpd_core.loop import run_training

PRESETS = Path(__file__).resolve().parents[1] / "presets"
MCQ = {"optim.lr": 1e-5, "optim.warmup_steps": 10, "data.source": "sciknoweval", "data.levels": ["L3"],
       "data.types": ["mcq-4-choices", "mcq-2-choices"], "data.holdout_fraction": 0.1, "data.holdout_seed": 42,
       "eval.samples": 16, "distill.topk": 100, "distill.alpha": 0.5, "feedback.sources": ["sibling"],
       "sdpo.ema_rate": 0.05}
PROTOCOL = {  # method.md §6 (and the per-benchmark defaults of §2-§3)
    "qwen3-8b-livecodebench": {
        "model.path": "models/Qwen3-8B", "optim.lr": 1e-6, "rollout.problems_per_step": 32, "rollout.group_size": 8,
        "rollout.max_new_tokens": 8192, "data.source": "livecodebench", "data.start_date": date(2025, 2, 1),
        "data.end_date": date(2025, 5, 1), "data.release": "release_v6", "eval.samples": 4, "distill.topk": 20,
        "distill.alpha": 1.0, "sdpo.ema_rate": 0.01, "model.chat_template_kwargs": {"enable_thinking": False}},
    "qwen3-8b-sciknoweval": {"model.path": "models/Qwen3-8B", **MCQ},
    "qwen3-1.7b-sciknoweval": {"model.path": "models/Qwen3-1.7B", **MCQ},
}


def get(params, dotted: str):
    value = params
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def test_every_preset_is_pinned():
    assert sorted(p.stem for p in PRESETS.glob("*.yaml")) == sorted(PROTOCOL)


@pytest.mark.parametrize("name", sorted(PROTOCOL))
def test_preset_matches_the_paper_protocol(name):
    p = load_params(PRESETS / f"{name}.yaml")
    for key, value in {**PROTOCOL[name], "algorithm": "vpd", "vpd.e_every": 5, "eval.temperature": 0.6,
                       "eval.top_p": 0.95, "rollout.temperature": 1.0, "rollout.top_p": 1.0}.items():
        assert get(p, key) == value, key
    # the GPU path is on
    assert (p.rollout.backend, p.train.mixed_precision, p.model.gradient_checkpointing) == ("vllm", "bf16", True)
    assert p.rollout.problems_per_step % p.train.distributed.nproc == 0


@pytest.mark.parametrize("name", sorted(PROTOCOL))
def test_preset_trains_a_step_with_the_tiny_model(name, tiny_dir, tmp_path):
    stand_ins = [f"model.path={tiny_dir}", "model.chat_template_kwargs={}", "data.path=embedded",
                 "data.release=null", "data.start_date=null", "data.end_date=null", "data.domains=null",
                 "data.levels=null", "data.types=null", "rollout.backend=hf", "train.distributed.nproc=1",
                 "rollout.problems_per_step=2", "rollout.group_size=2", "rollout.max_new_tokens=8",
                 "train.steps=1", "model.device=cpu", f"run_dir={tmp_path / 'run'}"]
    params = load_params(PRESETS / f"{name}.yaml", stand_ins)
    grader, sandbox = make_grader(params, params.sandbox.train_tests)
    try:
        run_training(params, grader, log=lambda _: None)
    finally:
        if sandbox is not None:
            sandbox.close()
    (row,) = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert row["train/step"] == 1.0 and row["batch/samples"] == 4.0 and "distill/divergence" in row
