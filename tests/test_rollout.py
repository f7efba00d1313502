"""HF generate backend: grouping, seeds, sampler log-probs, finish reasons; prompt cap and device errors."""

import pytest
import torch

from vpd_core.data.benchmarks import arithmetic
from vpd_core.data.schema import DataError
from vpd_core.logprobs import token_logprobs
from vpd_core.rollout import HFRolloutEngine, SamplingParams
from vpd_core.loop import generate
from vpd_core.models import ModelError, load_model
from vpd_core.sequences import chat_prompt_ids, pack


def prompts(tok):
    return [
        chat_prompt_ids(tok, [{"role": "user", "content": "What is 2 + 3?"}]),
        chat_prompt_ids(tok, [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "def solve"}]),
    ]


def test_groups_seeds_and_shapes(model, tok):
    eng = HFRolloutEngine(model, tok, batch_size=3)
    ps = prompts(tok)
    out = eng.generate(ps, 4, SamplingParams(max_new_tokens=8, seed=7))
    assert len(out) == 8
    assert all(r.prompt_ids == ps[i // 4] for i, r in enumerate(out))
    assert all(len(r.response_ids) == len(r.sampler_logps) <= 8 for r in out)
    again = eng.generate(ps, 4, SamplingParams(max_new_tokens=8, seed=7))
    assert [r.response_ids for r in out] == [r.response_ids for r in again]
    other = eng.generate(ps, 4, SamplingParams(max_new_tokens=8, seed=8))
    assert [r.response_ids for r in out] != [r.response_ids for r in other]


def test_progress_reports_every_batch_without_changing_samples(model, tok):
    eng = HFRolloutEngine(model, tok, batch_size=3)
    ps = prompts(tok)
    reports: list[int] = []
    out = eng.generate(ps, 4, SamplingParams(max_new_tokens=8, seed=7), progress=reports.append)
    assert reports == [3, 3, 2]  # 8 rollouts in batches of 3
    plain = eng.generate(ps, 4, SamplingParams(max_new_tokens=8, seed=7))
    assert [r.response_ids for r in out] == [r.response_ids for r in plain]


def test_seeded_sampling_leaves_global_rng_alone(model, tok):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    HFRolloutEngine(model, tok).generate(prompts(tok), 2, SamplingParams(max_new_tokens=4, seed=1))
    assert torch.equal(torch.rand(3), expected)


def test_sampler_logps_match_trainer_logps(model, tok):
    # T=1, top-p=1 (the training setting): the sampler's distribution is the model's.
    eng = HFRolloutEngine(model, tok, batch_size=8)
    out = eng.generate(prompts(tok), 3, SamplingParams(max_new_tokens=10, seed=3))
    packed = pack([r.prompt_ids for r in out], [r.response_ids for r in out], tok.pad_token_id)
    with torch.no_grad():
        lp = token_logprobs(model.eval(), packed)
    for i, r in enumerate(out):
        assert torch.allclose(lp[i, : len(r.response_ids)], torch.tensor(r.sampler_logps), atol=1e-4)


def test_greedy_and_finish_reasons(model, tok):
    eng = HFRolloutEngine(model, tok)
    ps = prompts(tok)[:1]
    greedy = eng.generate(ps, 2, SamplingParams(temperature=0, max_new_tokens=6))
    assert greedy[0].response_ids == greedy[1].response_ids
    assert greedy[0].finish_reason == "length" and len(greedy[0].response_ids) == 6
    # Make the 3rd greedy token a stop token: generation must end there, keep it, and say "stop".
    stop = greedy[0].response_ids[2]
    eng.stop_ids = [stop]
    out = eng.generate(ps, 1, SamplingParams(temperature=0, max_new_tokens=6))[0]
    first = greedy[0].response_ids.index(stop)
    assert out.response_ids == greedy[0].response_ids[: first + 1]
    assert out.finish_reason == "stop"


def test_a_prompt_over_the_cap_names_the_problem(model, tok):
    problems = arithmetic.make_problems(2, 5, 0)
    with pytest.raises(DataError, match=rf"problem {problems[0].id}: prompt is \d+ tokens, over rollout.max_prompt_tokens=4"):
        generate(HFRolloutEngine(model, tok), tok, problems, 1, SamplingParams(max_new_tokens=2), max_prompt_tokens=4)


def test_model_device_cuda_without_a_gpu_is_a_clear_error(tiny_dir):
    if torch.cuda.is_available():
        pytest.skip("checks the no-GPU error path")
    with pytest.raises(ModelError, match="model.device is cuda but no CUDA device"):
        load_model(tiny_dir, device="cuda")
    assert next(load_model(tiny_dir, device="auto").parameters()).device.type == "cpu"


def test_stop_strings_end_the_response_at_the_completing_token(model, tok):
    """Same seed with and without a stop string: the stopped response is the prefix that ends
    with the token completing the stop string; log-probs are cut with it, finish reason 'stop'."""
    check_stop_string_cut(HFRolloutEngine(model, tok), tok, prompts(tok)[:1])


def check_stop_string_cut(eng, tok, ps):
    """The stop-string property every rollout engine must have (HF here, vLLM in test_vllm.py)."""
    free = eng.generate(ps, 1, SamplingParams(max_new_tokens=24, seed=5))[0]
    assert len(free.response_ids) >= 12
    cut = 8  # stop on the text of tokens 6..8, so it completes at token 8 at the latest
    stop = tok.decode(free.response_ids[5:cut])
    assert stop.strip()
    got = eng.generate(ps, 1, SamplingParams(max_new_tokens=24, seed=5, stop=(stop,)))[0]
    n = len(got.response_ids)
    assert n <= cut and stop in tok.decode(got.response_ids) and stop not in tok.decode(got.response_ids[: n - 1])
    assert got.response_ids == free.response_ids[:n]
    assert got.sampler_logps == pytest.approx(free.sampler_logps[:n], abs=1e-5)
    assert got.finish_reason == "stop"


def test_params_past_the_models_positions_are_refused_at_start(tiny_params):
    """Teacher contexts past max_position_embeddings would be silently garbled on a RoPE model (HF)
    and refused late by vLLM: the run refuses at start and names the settings."""
    from vpd_core.config import load_params
    from vpd_core.loop import Run
    from vpd_core.rollout import longest_sequence

    p = load_params(tiny_params, ["teacher.max_prompt_tokens=40960", "rollout.max_new_tokens=8"])
    assert p.diagnostics.every and longest_sequence(p) == 40968  # diagnostics sample from teacher contexts
    with pytest.raises(ValueError, match=r"40968 tokens .*max_position_embeddings=40960.*teacher.max_prompt_tokens"):
        Run(p)
    # grpo has no teacher context: the same numbers fit when nothing samples from one
    ok = load_params(tiny_params, ["algorithm=grpo", "teacher.max_prompt_tokens=40960", "diagnostics.every=0"])
    Run(ok)
