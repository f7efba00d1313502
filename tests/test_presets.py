"""presets/: the paper's protocols as params files (validated, protocol values pinned), and each
preset's knob combination (bf16 autocast, checkpointing, its feedback and loss settings) run for
one step with the tiny model and the embedded data standing in for Qwen3 and the real benchmark."""

import re
from datetime import date
from pathlib import Path

import pytest

from vpd_core.loop import make_grader
from vpd_core.config import load_params
from vpd_core.fileio import read_jsonl
from vpd_core.loop import run_training

PRESETS = Path(__file__).resolve().parents[1] / "presets"
# Every preset value whose comment claims a source other than [ours] ([paper], [method.md §N],
# [SDPO script]) is pinned here: a claimed value that drifts, or a new claim without a pin, fails.
COMMON = {"algorithm": "vpd", "vpd.e_every": 5, "vpd.prior": "current", "eval.temperature": 0.6, "eval.top_p": 0.95,
          "rollout.temperature": 1.0, "rollout.top_p": 1.0}
MCQ = {"optim.lr": 1e-5, "optim.warmup_steps": 10, "data.source": "sciknoweval", "data.domains": ["Chemistry"],
       "data.levels": ["L3"], "data.types": ["mcq-4-choices", "mcq-2-choices"], "data.holdout_fraction": 0.1,
       "data.holdout_seed": 42, "eval.samples": 16, "distill.topk": 100, "distill.alpha": 0.5,
       "feedback.sources": ["sibling"], "sdpo.ema_rate": 0.05}
PROTOCOL = {
    "qwen3-8b-livecodebench": {  # method.md §6 and SDPO's experiments/rich_feedback/run_sdpo.sh
        "model.path": "models/Qwen3-8B", "model.chat_template_kwargs": {"enable_thinking": False},
        "data.source": "livecodebench", "data.release": "release_v6", "data.start_date": date(2025, 2, 1),
        "data.end_date": date(2025, 5, 1), "sandbox.train_tests": "train", "rollout.problems_per_step": 32,
        "rollout.group_size": 8, "rollout.max_new_tokens": 8192, "train.mini_batches": 32, "train.old_logps": "sampler",
        "optim.lr": 1e-6, "optim.warmup_steps": 0, "distill.topk": 20, "distill.alpha": 1.0, "distill.add_tail": True,
        "distill.is_clip": 2.0, "distill.loss_agg": "token-mean", "teacher.max_prompt_tokens": 10240,
        "feedback.sources": ["env", "sibling"], "feedback.env_only_without_sibling": True, "sdpo.teacher": "ema",
        "sdpo.ema_rate": 0.01, "vpd.beta": 0.1, "eval.samples": 4, "eval.max_new_tokens": 8192},
    "qwen3-8b-sciknoweval": {"model.path": "models/Qwen3-8B", **MCQ},
    "qwen3-1.7b-sciknoweval": {"model.path": "models/Qwen3-1.7B", **MCQ},
    "qwen3-4b-base-math500": {"model.path": "models/Qwen3-4B-Base", "data.source": "math500", "distill.add_tail": True,
                              "distill.is_clip": 2.0, "vpd.beta": 0.1},
}
TAG = re.compile(r"#\s*\[(paper|SDPO script|method\.md §\d+|ours)\]")


def claimed_sources(path: Path) -> dict[str, str]:
    """dotted key -> the source its line's comment claims (the first [tag] of the comment)."""
    out, stack = {}, []
    for line in path.read_text().splitlines():
        m = re.match(r"^(\s*)([A-Za-z_]\w*):(.*)$", line)
        if m:
            stack = stack[: len(m.group(1)) // 2] + [m.group(2)]
            tag = TAG.search(m.group(3))
            if tag:
                out[".".join(stack)] = tag.group(1)
    return out


def get(params, dotted: str):
    value = params
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def test_every_preset_is_pinned():
    assert sorted(p.stem for p in PRESETS.glob("*.yaml")) == sorted(PROTOCOL)


@pytest.mark.parametrize("name", sorted(PROTOCOL))
def test_every_sourced_value_is_pinned(name):
    claimed = {k for k, src in claimed_sources(PRESETS / f"{name}.yaml").items() if src != "ours"}
    pinned = set(PROTOCOL[name]) | {k for k in COMMON if k != "algorithm"}
    assert claimed == pinned, f"claimed but not pinned: {claimed - pinned}; pinned but not claimed: {pinned - claimed}"


@pytest.mark.parametrize("name", sorted(PROTOCOL))
def test_preset_matches_the_paper_protocol(name):
    p = load_params(PRESETS / f"{name}.yaml")
    for key, value in {**PROTOCOL[name], **COMMON}.items():
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
                 "train.mini_batches=2" if name == "qwen3-8b-livecodebench" else "train.mini_batches=1",
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
    assert 0 <= row["train/updates"] <= params.train.mini_batches
