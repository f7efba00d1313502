"""Trainer: learning signal of E- and M-steps, algorithms, micro-batching, checkpoints."""

import pytest
import torch

from vpd_core.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from vpd_core.config import parse_params
from vpd_core.models import load_model
from vpd_core.rollout import HFRolloutEngine, SamplingParams
from vpd_core.sequences import Rollout, Sample, chat_prompt_ids
from vpd_core.trainer import Trainer, checkpointing_on


def unpadded_response_logits(model, prompts: list[list[int]], responses: list[list[int]]) -> torch.Tensor:
    """Reference logits that predict each response token, one unpadded sequence at a time (no
    packing, no mask): [B, T, V], zero past a row's response."""
    T = max(1, max(len(r) for r in responses))
    rows = []
    for p, r in zip(prompts, responses):
        logits = model(input_ids=torch.tensor([list(p) + list(r)])).logits[0, len(p) - 1 : len(p) - 1 + len(r)]
        rows.append(torch.nn.functional.pad(logits, (0, 0, 0, T - len(r))))
    return torch.stack(rows)

QUESTIONS = ["What is 2 + 3?", "What is 4 + 4?"]


def params(**kw):
    base = {"rollout": {"group_size": 4}, "optim": {"lr": 1e-3}, "train": {"micro_batch_size": 16}}
    for k, v in kw.items():
        base.setdefault(k, {}) if isinstance(v, dict) else None
        if isinstance(v, dict):
            base[k] = {**base.get(k, {}), **v}
        else:
            base[k] = v
    return parse_params(base)


def synthetic_batch(tok):
    """Two problems x 4 rollouts; positives say the right answer, negatives a wrong one."""
    samples = []
    for g, (q, right, wrong) in enumerate(zip(QUESTIONS, ["5", "8"], ["7", "9"])):
        msgs = [{"role": "user", "content": q}]
        ids = chat_prompt_ids(tok, msgs)
        for i in range(4):
            ok = i % 2 == 0
            text = f"The answer is {right if ok else wrong}."
            resp = tok.encode(text, add_special_tokens=False) + [tok.eos_token_id]
            samples.append(Sample(messages=msgs, rollout=Rollout(ids, resp, [-5.7] * len(resp), "stop", text),
                                  group=g, reward=float(ok), feedback="" if ok else f"Wrong Answer: {wrong}"))
    return samples


def rollout_batch(model, tok, step, group_size=4):
    """Real rollouts with a deterministic toy verifier (reward: even token-id sum)."""
    eng = HFRolloutEngine(model, tok)
    msgs = [[{"role": "user", "content": q}] for q in QUESTIONS]
    out = eng.generate([chat_prompt_ids(tok, m) for m in msgs], group_size, SamplingParams(max_new_tokens=8, seed=100 + step))
    samples = []
    for i, r in enumerate(out):
        ok = sum(r.response_ids) % 2 == 0
        samples.append(Sample(messages=msgs[i // group_size], rollout=r, group=i // group_size,
                              reward=float(ok), feedback="" if ok else "Wrong Answer"))
    return samples


def flat_params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_e_steps_raise_positive_vs_negative_margin(model, tok):
    tr = Trainer(model, tok, params(vpd={"e_every": 1}, optim={"lr": 3e-4}))
    batch = synthetic_batch(tok)
    history = [tr.e_step(batch) for _ in range(7)]  # metrics are measured before each update
    margin = [m["estep/reward_pos"] - m["estep/reward_neg"] for m in history]
    assert margin[-1] > margin[0] + 0.02
    assert history[-1]["estep/loss"] < history[0]["estep/loss"]
    assert history[0]["estep/accuracy"] == 0.5 and history[-1]["estep/accuracy"] == 1.0


def test_m_steps_lower_student_teacher_divergence(model, tok):
    tr = Trainer(model, tok, params())
    batch = synthetic_batch(tok)
    from vpd_core.teacher import build_teacher_contexts

    ctx = build_teacher_contexts(batch, tok, tr.p.teacher, tr.p.feedback)
    assert all(c.active for c in ctx)
    first = tr.m_step(batch, ctx)["distill/divergence"]
    for _ in range(15):
        last = tr.m_step(batch, ctx)["distill/divergence"]
    assert last < 0.5 * first


@pytest.mark.parametrize(
    "algo, extra",
    [("vpd", {}), ("sdpo", {"sdpo": {"teacher": "ema"}}), ("sdpo", {"sdpo": {"teacher": "frozen"}}),
     ("sdpo", {"sdpo": {"teacher": "trust-region"}}), ("grpo", {}), ("hybrid", {})],
)
def test_every_algorithm_updates_the_model(model, tok, algo, extra):
    tr = Trainer(model, tok, params(algorithm=algo, **extra))
    before = flat_params(model)
    m = tr.train_step(synthetic_batch(tok))
    assert not torch.equal(before, flat_params(model))
    assert m["train/step"] == 1.0 and m["train/skipped_update"] == 0.0
    assert all(torch.isfinite(torch.tensor(v)) for v in m.values() if v == v)


def test_trust_region_endpoints(tiny_dir, tok):
    """r=0 is the frozen initial teacher, r=1 the live one: same first step as those teachers."""
    def run(**kw):
        m = load_model(tiny_dir)
        return Trainer(m, tok, params(**{"algorithm": "sdpo", **kw})).train_step(synthetic_batch(tok))["distill/loss"]

    assert run(sdpo={"teacher": "trust-region", "trust_region_mix": 0.0}) == pytest.approx(run(sdpo={"teacher": "frozen"}), rel=1e-6)
    assert run(sdpo={"teacher": "trust-region", "trust_region_mix": 1.0}) == pytest.approx(run(algorithm="vpd"), rel=1e-6)


def test_hybrid_with_lambda_one_is_grpo(tiny_dir, tok):
    a, b = load_model(tiny_dir), load_model(tiny_dir)
    Trainer(a, tok, params(algorithm="grpo")).train_step(synthetic_batch(tok))
    Trainer(b, tok, params(algorithm="hybrid", hybrid={"lam": 1.0})).train_step(synthetic_batch(tok))
    assert torch.allclose(flat_params(a), flat_params(b), atol=1e-7)


def test_micro_batching_is_exact(tiny_dir, tok):
    """One VPD step with an E-step: micro-batches of 3 give the same update as one batch."""
    results = []
    for mb in (16, 3):
        m = load_model(tiny_dir)
        before = flat_params(m)
        # Adam's first step is ~lr*sign(g), which turns float noise in near-zero gradients into
        # full-size differences; a huge eps makes the update ~lr*g so we compare the gradients.
        p = params(vpd={"e_every": 1}, train={"micro_batch_size": mb}, optim={"lr": 100.0, "eps": 1e3, "grad_clip": None})
        metrics = Trainer(m, tok, p).train_step(synthetic_batch(tok))
        results.append((flat_params(m) - before, metrics))
    (pa, ma), (pb, mb_) = results
    assert pa.abs().max() > 1e-3
    assert torch.allclose(pa, pb, atol=1e-6, rtol=1e-4)
    for k in ("distill/loss", "estep/loss", "estep/delta", "student/entropy"):
        assert ma[k] == pytest.approx(mb_[k], rel=1e-5, abs=1e-6), k


@pytest.mark.parametrize("bf16", [False, True])
def test_e_step_runs_the_teacher_once_with_checkpointing_and_takes_the_same_step(tiny_dir, tok, bf16):
    """Micro-batched, the E-step needs dL/dL_T on the whole batch before any backward. Without
    checkpointing it scores the teacher twice (no-grad, then with gradients per micro-batch);
    with the decoder layers recomputed it keeps each micro-batch's graph and scores it once. Both
    give the E-step of one micro-batch: the same loss and gradients (to 1e-6). Kept layer inputs
    over train.e_step_keep_gib fall back to two passes."""
    from vpd_core.trainer import checkpointing

    out = {}
    for ckpt, mb, keep in ((False, 16, 2.0), (False, 3, 2.0), ("e_step", 3, 2.0), (True, 3, 2.0), (True, 3, 1e-6)):
        m = load_model(tiny_dir)
        p = params(model={"gradient_checkpointing": ckpt}, train={"micro_batch_size": mb, "e_step_keep_gib": keep,
                   "mixed_precision": "bf16" if bf16 else "fp32"})
        tr = Trainer(m, tok, p)
        forwards, final_grad = [], {}
        m.get_decoder().register_forward_hook(lambda mod, args, kwargs, o: forwards.append(1), with_kwargs=True)
        for name, q in m.named_parameters():  # the accumulated gradient, before the optimizer clears it
            q.register_post_accumulate_grad_hook(lambda q, name=name: final_grad.__setitem__(name, q.grad.clone()))
        with tr._autocast(), checkpointing(m, ckpt == "e_step"):
            metrics = tr.e_step(synthetic_batch(tok))
        grads = torch.cat([final_grad.get(n, torch.zeros_like(q)).flatten() for n, q in m.named_parameters()])
        out[(ckpt, mb, keep)] = (metrics, grads, len(forwards))
    assert out[(False, 16, 2.0)][2] == 2  # prior + teacher, one micro-batch
    assert out[(False, 3, 2.0)][2] == 3 + 3 + 3  # 8 samples in 3 micro-batches: prior, no-grad teacher, teacher
    assert out[("e_step", 3, 2.0)][2] == out[(True, 3, 2.0)][2] == 3 + 3  # prior, teacher (layers recomputed inside)
    assert out[(True, 3, 1e-6)][2] == 3 + 3 + 3  # the kept layer inputs would exceed the cap: two passes
    assert {k: m["estep/teacher_passes"] for k, (m, _, _) in out.items()} == {
        (False, 16, 2.0): 1.0, (False, 3, 2.0): 2.0, ("e_step", 3, 2.0): 1.0, (True, 3, 2.0): 1.0, (True, 3, 1e-6): 2.0}
    # bf16 matmuls round differently for another batch composition: there the reference is
    # today's micro-batched E-step with the same micro-batches
    ref_metrics, ref_grads, _ = out[(False, 3, 2.0) if bf16 else (False, 16, 2.0)]
    assert ref_grads.abs().max() > 1e-3
    for key, (metrics, grads, _) in out.items():
        if bf16 and key[1] != 3:
            continue
        assert metrics["estep/loss"] == pytest.approx(ref_metrics["estep/loss"], abs=1e-6), key
        assert metrics["estep/delta"] == pytest.approx(ref_metrics["estep/delta"], abs=1e-6), key
        assert (grads - ref_grads).abs().max() < 1e-6, (key, (grads - ref_grads).abs().max())


def test_all_masked_batch_skips_the_update(model, tok):
    batch = synthetic_batch(tok)
    for s in batch:  # no successes, no feedback: no teacher context anywhere
        s.reward, s.feedback = 0.0, ""
    tr = Trainer(model, tok, params(algorithm="sdpo"))
    before = flat_params(model)
    m = tr.train_step(batch)
    assert m["train/skipped_update"] == 1.0 and m["context/masked"] == 1.0
    assert torch.equal(before, flat_params(model))


def test_e_step_runs_every_f_steps_and_keeps_schedule(model, tok):
    tr = Trainer(model, tok, params(vpd={"e_every": 2}, optim={"warmup_steps": 4}))
    seen = [("estep/loss" in tr.train_step(synthetic_batch(tok))) for _ in range(4)]
    assert seen == [False, True, False, True]
    assert tr.scheduler.last_epoch == 4  # E-steps do not advance the LR schedule
    assert tr.e_steps == 2 and tr.delta is not None


@pytest.mark.parametrize("algo", ["vpd", "sdpo"])
def test_checkpoint_round_trip_resumes_exactly(tiny_dir, tok, tmp_path, algo):
    vpd = {"e_every": 2, "e_buffer": "last_F"} if algo == "vpd" else {}
    p = params(algorithm=algo, vpd=vpd, optim={"warmup_steps": 2, "schedule": "cosine"}, train={"steps": 4})

    def step(tr):
        return tr.train_step(rollout_batch(tr.model, tok, tr.step))

    straight = Trainer(load_model(tiny_dir), tok, p)
    expected = [step(straight) for _ in range(4)]

    first = Trainer(load_model(tiny_dir), tok, p)
    for _ in range(3):
        step(first)
    save_checkpoint(first, tmp_path / "ckpt", keep=2)
    del first
    resumed = Trainer(load_model(tiny_dir), tok, p)
    load_checkpoint(resumed, latest_checkpoint(tmp_path / "ckpt"))
    assert resumed.step == 3
    got = step(resumed)
    key = "distill/loss"
    assert got[key] == pytest.approx(expected[3][key], rel=1e-6, abs=1e-9)
    if algo == "vpd":
        assert got["estep/loss"] == pytest.approx(expected[3]["estep/loss"], rel=1e-6)
        assert got["estep/delta"] == pytest.approx(expected[3]["estep/delta"], rel=1e-6)
    assert torch.allclose(flat_params(resumed.model), flat_params(straight.model), atol=1e-7)


def test_checkpoints_are_atomic_and_pruned(model, tok, tmp_path):
    tr = Trainer(model, tok, params())
    root = tmp_path / "ckpt"
    for _ in range(3):
        tr.train_step(synthetic_batch(tok))
        save_checkpoint(tr, root, keep=2)
    names = sorted(p.name for p in root.iterdir())
    assert names == ["latest", "step-000002", "step-000003"]
    assert latest_checkpoint(root).name == "step-000003"
    # a crash mid-save leaves a temp dir that is never taken for a checkpoint
    (root / ".tmp-step-000004-999").mkdir()
    (root / "latest").write_text("step-000004\n")
    assert latest_checkpoint(root).name == "step-000003"
    # the saved model directory loads as a normal HF model
    assert load_model(root / "step-000003" / "model") is not None


@pytest.mark.parametrize("chunk, agg", [(2, "token-mean"), (256, "token-mean"), (3, "seq-mean-token-mean")])
def test_m_step_update_equals_pure_distillation_loss(tiny_dir, tok, chunk, agg):
    """The trainer's chunked, fused-backward M-step takes the same step as `distillation_loss`
    on full logits from the model's own forward."""
    from vpd_core.losses import distillation_loss
    from vpd_core.logprobs import gather_logps
    from vpd_core.losses import importance_weights
    from vpd_core.sequences import pack, pad_right
    from vpd_core.teacher import build_teacher_contexts

    batch = synthetic_batch(tok)
    for k, s in enumerate(batch):  # ragged responses and sampler log-probs that differ from the model's
        extra = tok.encode(" and more" * (k % 3), add_special_tokens=False)
        s.rollout.response_ids = extra + s.rollout.response_ids
        s.rollout.sampler_logps = [-5.0 - 0.1 * j for j in range(len(s.rollout.response_ids))]
    batch[5].reward, batch[5].feedback, batch[4].reward = 0.0, "", 0.0  # group 1 has one success left: masks
    p = params(train={"logit_chunk": chunk, "micro_batch_size": 3}, distill={"loss_agg": agg, "topk": 7},
               optim={"lr": 1e5, "eps": 1e3, "grad_clip": None})  # update ~ 100 * gradient (see above)
    ctx = build_teacher_contexts(batch, tok, p.teacher, p.feedback)
    assert not all(c.active for c in ctx)

    ma = load_model(tiny_dir)
    before = flat_params(ma)
    Trainer(ma, tok, p).m_step(batch, ctx)
    got = flat_params(ma) - before

    mb = load_model(tiny_dir)
    stu = pack([s.rollout.prompt_ids for s in batch], [s.rollout.response_ids for s in batch], tok.pad_token_id)
    tea = pack([c.prompt_ids for c in ctx], [s.rollout.response_ids for s in batch], tok.pad_token_id)
    T = stu.response_len
    responses = [s.rollout.response_ids for s in batch]
    s_logits = unpadded_response_logits(mb, [s.rollout.prompt_ids for s in batch], responses)
    with torch.no_grad():
        t_logits = unpadded_response_logits(mb, [c.prompt_ids for c in ctx], responses)
    mask = stu.response_mask * torch.tensor([float(c.active) for c in ctx])[:, None]
    w = importance_weights(gather_logps(s_logits, stu.response_ids), pad_right([s.rollout.sampler_logps for s in batch], T), 2.0)
    loss, _ = distillation_loss(s_logits, t_logits, mask, topk=7, alpha=1.0, is_weights=w, loss_agg=agg)
    loss.backward()
    opt = torch.optim.AdamW(mb.parameters(), lr=1e5, eps=1e3, weight_decay=0.0)
    opt.step()
    want = flat_params(mb) - before
    assert want.abs().max() > 1e-2
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-3)


# ---------------------------------------------------------------------- GPU-path switches (checked on CPU)


def test_bf16_autocast_runs_decoder_in_bf16_and_keeps_weights_and_head_fp32(tiny_dir, tok):
    from vpd_core.logprobs import head_logits, lm_head

    seen = []
    runs = {}
    for mp in ("fp32", "bf16"):
        m = load_model(tiny_dir)
        hook = m.model.layers[0].mlp.register_forward_hook(lambda mod, i, o: seen.append((mp, o.dtype)))  # (the fused MLP computes down_proj itself)
        tr = Trainer(m, tok, params(train={"mixed_precision": mp}))
        runs[mp] = tr.train_step(synthetic_batch(tok))
        hook.remove()
        assert all(p.dtype == torch.float32 for p in m.parameters())
        assert all(s["exp_avg"].dtype == torch.float32 for s in tr.optimizer.state.values())
    assert {d for mp, d in seen if mp == "bf16"} == {torch.bfloat16}
    assert {d for mp, d in seen if mp == "fp32"} == {torch.float32}
    # same step up to bf16 rounding of the decoder
    assert runs["bf16"]["distill/divergence"] == pytest.approx(runs["fp32"]["distill/divergence"], rel=0.05)
    # the lm head is exempt from autocast: float32 logits equal to the fp32 head's, unlike a bare head call
    m = load_model(tiny_dir)
    h = torch.randn(2, 3, m.config.hidden_size)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert lm_head(m)(h).dtype == torch.bfloat16
        logits = head_logits(lm_head(m), h)
    assert logits.dtype == torch.float32 and torch.equal(logits, lm_head(m)(h))


@pytest.mark.parametrize("algorithm", ["vpd", "grpo"])
def test_gradient_checkpointing_takes_the_same_step(tiny_dir, tok, algorithm):
    after = {}
    for ckpt in (False, True, "e_step"):
        m = load_model(tiny_dir)
        tr = Trainer(m, tok, params(algorithm=algorithm, model={"gradient_checkpointing": ckpt}, vpd={"e_every": 1}))
        checkpointed = lambda: checkpointing_on(m)  # noqa: E731
        assert checkpointed() == (ckpt is True)
        seen = []
        if algorithm == "vpd":  # "e_step": on during the E-step only, off again after it
            e_step = tr.e_step
            tr.e_step = lambda batch: (seen.append(checkpointed()), e_step(batch))[1]
        samples = synthetic_batch(tok)
        for s in samples:
            s.rollout.sampler_logps = [-5.0] * len(s.rollout.response_ids)
        tr.train_step(samples)
        assert seen == ([ckpt in (True, "e_step")] if algorithm == "vpd" else [])
        assert checkpointed() == (ckpt is True)
        after[ckpt] = flat_params(m)
    assert not torch.equal(after[False], flat_params(load_model(tiny_dir)))
    assert torch.allclose(after[False], after[True], atol=1e-6)
    assert torch.allclose(after[False], after["e_step"], atol=1e-6)
