"""Data-parallel FSDP2 training on CPU (gloo), launched for real with torchrun."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from dp_cases import CASES, case_params, dp_batch

from vpd_core import loop
from vpd_core.config import ParamsError, parse_params
from vpd_core.fileio import read_jsonl
from vpd_core.models import load_model
from vpd_core.trainer import Trainer

HERE = Path(__file__).parent
REPO = HERE.parent
COMPARED = ["reward/mean", "reward/problems_solved", "batch/samples", "response/length_mean", "context/masked",
            "distill/divergence", "student/entropy", "distill/tokens", "grpo/loss", "train/grad_norm",
            "estep/loss", "estep/accuracy", "estep/delta", "estep/samples", "estep/grad_norm"]


def torchrun(*args, nproc=2, timeout=600):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    return out


@pytest.fixture(scope="module")
def two_rank_results(tiny_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("dp")
    torchrun(str(HERE / "dp_worker.py"), str(tiny_dir), str(out))
    return {name: torch.load(out / f"{name}.pt", weights_only=False) for name in CASES}


def one_process(case, tiny_dir, tok, **train):
    raw = case_params(case)
    raw["train"] = {**raw["train"], **train}
    model = load_model(tiny_dir)
    trainer = Trainer(model, tok, parse_params(raw))
    return model, [trainer.train_step(dp_batch(tok, step)) for step in range(2)]


def max_diff(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in b)


@pytest.mark.parametrize("case", [c for c in CASES if "bf16" not in c])
def test_two_ranks_take_the_one_process_step(case, two_rank_results, tiny_dir, tok):
    """Same batch, split over 2 FSDP ranks vs whole in one process: same weights and metrics after 2 steps."""
    model, reference = one_process(case, tiny_dir, tok)
    got = two_rank_results[case]
    base = load_model(tiny_dir).state_dict()
    # Several Adam updates per step turn float rounding in near-zero gradients into ~lr-sized
    # steps (Adam normalises them); metrics still agree to 1e-4 below.
    atol = 2e-5 if "mini-batches" in case else 2e-6
    for name, ref in model.state_dict().items():
        assert torch.allclose(got["state"][name], ref, atol=atol, rtol=1e-4), name
    assert any(not torch.equal(ref, base[name]) for name, ref in model.state_dict().items())
    for step, (g, r) in enumerate(zip(got["metrics"], reference)):
        for key in COMPARED:
            assert (key in g) == (key in r), key
            if key in r:
                assert g[key] == pytest.approx(r[key], rel=1e-4, abs=1e-6), (step, key)
    if case.startswith("vpd"):
        # the E-step saw masked samples (group 2 has no feedback): the masked path was exercised
        assert 0 < reference[0]["estep/samples"] < 16


def test_two_ranks_with_bf16_autocast_stay_within_bf16s_own_noise(two_rank_results, tiny_dir, tok):
    """bf16 rounding depends on the micro-batch shapes and Adam magnifies it, so the 2-rank update is
    compared with how far one process moves when only its micro-batch size changes (~3.5% here).
    With the autocast cast cache on, FSDP2 gradients were corrupted and this distance was ~37%."""
    model, reference = one_process("vpd-bf16", tiny_dir, tok)
    base = {k: v.flatten() for k, v in load_model(tiny_dir).state_dict().items()}
    ref = {k: v.flatten() for k, v in model.state_dict().items()}

    def distance(state) -> float:  # |w - w_ref| / |w_ref - w_0| over all tensors
        num = sum(float((state[k].flatten() - ref[k]).pow(2).sum()) for k in ref)
        den = sum(float((ref[k] - base[k]).pow(2).sum()) for k in ref)
        return (num / den) ** 0.5

    noise = max(distance(one_process("vpd-bf16", tiny_dir, tok, micro_batch_size=mb)[0].state_dict()) for mb in (2, 16))
    assert 0 < distance(two_rank_results["vpd-bf16"]["state"]) <= 2 * noise
    for g, r in zip(two_rank_results["vpd-bf16"]["metrics"], reference):
        for key in ("reward/mean", "distill/divergence", "estep/loss", "estep/accuracy"):
            assert g[key] == pytest.approx(r[key], rel=2e-2, abs=1e-3), key


# the tiny_params run (conftest), 2 rollouts per problem, on 2 processes
TWO_PROCESSES = ["--set", "train.distributed.nproc=2", "--set", "rollout.group_size=2"]


def test_vpd_train_launches_itself_under_torchrun_and_resumes_on_one_process(tiny_params, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    vpd = [sys.executable, "-m", "vpd.cli", "train", "--no-prefect", "--params", str(tiny_params), *TWO_PROCESSES]
    out = subprocess.run(vpd, capture_output=True, text=True, timeout=600, env=env, cwd=REPO)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [r["train/step"] for r in rows] == [1.0, 2.0]
    assert all(r["batch/samples"] == 4.0 for r in rows)  # global batch: 2 problems x 2 rollouts over 2 ranks
    assert out.stdout.count("done: metrics") == 1  # rank 0 reports; rank 1 is quiet
    state = torch.load(tmp_path / "run" / "checkpoints" / "step-000002" / "trainer_state.pt", weights_only=False)
    assert len(state["ranks"]) == 2
    # resume the 2-process checkpoint on one process for a third step
    more = vpd + ["--set", "train.steps=3", "--set", "train.distributed.nproc=1"]
    out = subprocess.run(more, capture_output=True, text=True, timeout=600, env=env, cwd=REPO)
    assert out.returncode == 0, out.stderr[-5000:]
    assert "resumed from" in out.stdout and "saved by 2 process(es), resumed on 1" in out.stderr
    assert [r["train/step"] for r in read_jsonl(tmp_path / "run" / "metrics.jsonl")] == [1.0, 2.0, 3.0]
    assert loop.completed_steps(tmp_path / "run") == 3  # what the train flow's progress artifact reads


def test_distributed_training_reads_the_prepared_split(tiny_params, tmp_path):
    # every rank trains on <run_dir>/data/train.jsonl when `vpd prepare` wrote it (the DVC stage's
    # dependency), like the one-process loop: a damaged prepared split stops both, named
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    prepared = tmp_path / "run" / "data" / "train.jsonl"
    prepared.parent.mkdir(parents=True)
    good = {"id": "p0", "source": "arithmetic", "messages": [{"role": "user", "content": "What is 1 + 1?"}], "answer": "2"}
    prepared.write_text(json.dumps(good) + "\n" + json.dumps({"id": "p1"} | {"bogus": 1}) + "\n")
    for nproc in ("2", "1"):
        out = subprocess.run([sys.executable, "-m", "vpd.cli", "train", "--no-prefect", "--params", str(tiny_params),
                              "--set", f"train.distributed.nproc={nproc}", "--set", "rollout.group_size=2"],
                             capture_output=True, text=True, timeout=600, env=env, cwd=REPO)
        assert out.returncode != 0, nproc
        assert f"{prepared}: record 2:" in out.stdout + out.stderr, (nproc, out.stderr[-3000:])


def test_distributed_params_are_validated():
    with pytest.raises(ParamsError, match="problems_per_step=3 must be a multiple of train.distributed.nproc=2"):
        parse_params({"rollout": {"problems_per_step": 3}, "train": {"distributed": {"nproc": 2}}})
    with pytest.raises(ParamsError, match="problems_per_step=2 must be a multiple of train.distributed.nproc x nnodes=4"):
        parse_params({"rollout": {"problems_per_step": 2},
                      "train": {"distributed": {"nproc": 2, "nnodes": 2, "rdzv_endpoint": "h:1"}}})
    with pytest.raises(ParamsError, match="needs rdzv_endpoint"):
        parse_params({"train": {"distributed": {"nnodes": 2}}})
    with pytest.raises(ParamsError, match="node_rank=2 must be < nnodes=2"):
        parse_params({"train": {"distributed": {"nnodes": 2, "node_rank": 2, "rdzv_endpoint": "h:1"}}})


@pytest.mark.slow
def test_two_nodes_on_loopback_train_the_weights_of_one_two_process_node(tiny_params, tmp_path):
    """nnodes=2 (one process each, joined by torchrun's c10d rendezvous on 127.0.0.1) takes the
    same steps as nproc=2 on one node: same metrics, same weights."""
    import socket

    from safetensors.torch import load_file

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    base = [sys.executable, "-m", "vpd.cli", "train", "--no-prefect", "--params", str(tiny_params),
            "--set", "rollout.group_size=2"]
    one = subprocess.run([*base, "--set", "train.distributed.nproc=2", "--set", f"run_dir={tmp_path / 'one'}"],
                         capture_output=True, text=True, timeout=600, env=env, cwd=REPO)
    assert one.returncode == 0, one.stderr[-4000:]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    nodes = [subprocess.Popen([*base, "--set", "train.distributed.nnodes=2", "--set", f"train.distributed.node_rank={r}",
                               "--set", f"train.distributed.rdzv_endpoint=127.0.0.1:{port}",
                               "--set", f"run_dir={tmp_path / 'two'}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env, cwd=REPO) for r in (0, 1)]
    outs = [n.communicate(timeout=600) for n in nodes]
    assert all(n.returncode == 0 for n in nodes), outs[0][1][-3000:] + outs[1][1][-3000:]
    strip = lambda rows: [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]  # noqa: E731
    assert strip(read_jsonl(tmp_path / "two" / "metrics.jsonl")) == strip(read_jsonl(tmp_path / "one" / "metrics.jsonl"))
    a = load_file(tmp_path / "one" / "checkpoints" / "step-000002" / "model" / "model.safetensors")
    b = load_file(tmp_path / "two" / "checkpoints" / "step-000002" / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_launched_child_without_world_size_fails_instead_of_relaunching(tiny_params, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "WORLD_SIZE"} | {"VPD_LAUNCHED": "1", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "vpd.cli", "train", "--no-prefect", "--params", str(tiny_params),
                          *TWO_PROCESSES], capture_output=True, text=True, timeout=120, env=env, cwd=REPO)
    assert out.returncode == 2 and "without WORLD_SIZE" in out.stderr
    assert not (tmp_path / "run").exists()


def test_training_processes_split_the_sandbox_cores():
    from vpd_core.loop import make_grader

    params = parse_params({"data": {"source": "livecodebench"}, "sandbox": {"backend": "bwrap"}})
    for processes in (1, 2):
        _, sandbox = make_grader(params, "train", processes=processes)
        try:
            assert sandbox.concurrency == max(1, 2 * os.cpu_count() // processes)  # twice the cores, split
        finally:
            sandbox.close()
