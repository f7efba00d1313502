"""Benchmarks' smoke modes (the figures themselves are measured, not asserted: docs/benchmarks.md)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def run_gpu_step(tmp_path, *extra):
    out = tmp_path / "gpu_step.json"
    proc = subprocess.run([sys.executable, "benchmarks/gpu_step.py", "--device", "cpu", "--tiny", "--repeats", "1",
                           "--out", str(out), *extra], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return json.loads(out.read_text()), proc.stdout


def test_gpu_step_smoke_mode(tmp_path):
    r, stdout = run_gpu_step(tmp_path, "--no-vllm")
    assert r["device"] == "cpu" and r["model"] == "tiny"
    for key in ("hf_rollout_tokens_per_s", "mstep_tokens_per_s", "estep_tokens_per_s"):
        assert r[key] > 0, key
    (run,) = r["runs"]
    assert run["response_tokens"] == 2 * 2 * 16  # random weights: every response runs to the cap
    assert run["flops"]["mstep"] > run["flops"]["rollout"] > 0 and all(v > 0 for v in r["peak_gib"].values())
    assert r["mfu"] == {"rollout": None, "mstep": None, "estep": None}  # no bf16 peak known for a CPU
    assert "| M-step (teacher scoring + update) |" in stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error path")
def test_gpu_step_without_a_gpu_says_so(tmp_path):
    proc = subprocess.run([sys.executable, "benchmarks/gpu_step.py", "--out", str(tmp_path / "r.json")],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 2 and "--device cpu --tiny" in proc.stderr


def test_estep_benchmark_on_the_tiny_model(tmp_path, tiny_dir):
    """benchmarks/estep.py end to end on the tiny model and the arithmetic task (text-graded, no
    sandbox): the three E-step variants run, and only the default one scores the teacher once."""
    out = tmp_path / "estep.json"
    sets = [f"model.path={tiny_dir}", "data.source=arithmetic", "data.num_problems=16", "rollout.max_new_tokens=8",
            "model.gradient_checkpointing=e_step", "train.micro_batch_size=3"]
    proc = subprocess.run([sys.executable, "benchmarks/estep.py", "--batches", "1", "--repeats", "1", "--out", str(out),
                           *[a for s in sets for a in ("--set", s)]],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    r = json.loads(out.read_text())
    (row,) = r["rows"]
    n = -(-row["samples"] // 3)  # micro-batches
    assert row["one-pass/forwards"] == 2 * n  # the prior, then the teacher once
    assert row["two-pass/forwards"] == row["two-pass-no-ckpt/forwards"] == 3 * n
    assert [row[f"{v}/teacher_passes"] for v in ("one-pass", "two-pass", "two-pass-no-ckpt")] == [1.0, 2.0, 2.0]
    assert r["mstep_s_median"] > 0 and r["one-pass/estep_over_mstep_median"] > 0
