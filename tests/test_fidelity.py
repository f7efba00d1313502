"""Protocol fidelity (issue 10): self-critique feedback, siblings across an E-step buffer, sampling
temperature, PPO mini-batches and dual-clip, loss aggregation conventions (TRL's, verl's)."""

import pytest
import torch

from vpd_core.config import ParamsError, load_params, parse_params
from vpd_core.critique import critique_prompt, write_critiques
from vpd_core.logprobs import gather_logps, head_logits, lm_head, token_logprobs
from vpd_core.losses import distillation_loss, grpo_advantages, grpo_loss, importance_weights, masked_mean, ppo_per_token
from vpd_core.models import load_model
from vpd_core.rollout import HFRolloutEngine, SamplingParams
from vpd_core.sequences import Rollout, Sample, chat_prompt_ids, pack, pad_right
from vpd_core.teacher import ContextError, build_teacher_contexts, select_siblings
from vpd_core.trainer import Trainer

from test_trainer import flat_params, params, synthetic_batch, unpadded_response_logits

# ----------------------------------------------------------------------------- 1. self-critique


def test_critique_end_to_end_reaches_the_teacher_context(tiny_params, tiny_dir):
    """A real loop step on the tiny model: grade, critique every failed attempt with the policy's own
    engine, and the critique text is what the teacher's feedback block shows."""
    from vpd_core import loop

    p = load_params(tiny_params, ["feedback.sources=[critique]", "feedback.critique.max_new_tokens=6",
                                  "train.steps=1"])
    run = loop.Run(p, log=lambda _: None)
    assert run.critic is run.engine  # model_path null: the policy critiques itself
    problems = loop.load_problems(p, "train")
    batch, rollouts = loop.rollout_step(run.engine, run.tok, problems, p, 0)
    graded = loop.text_grader(loop.expand(batch, rollouts, p.rollout.group_size))
    samples = loop.make_samples(batch, rollouts, graded, p.rollout.group_size, 0)
    failed = [s for s in samples if s.reward < 0.5]
    assert failed, "the random tiny model should fail some arithmetic"
    metrics = run.update(samples)
    assert metrics["critique/count"] == len(failed) and metrics["time/critique"] > 0
    assert all(s.meta["critiqued"] for s in failed)
    written = [s for s in failed if s.critique]
    assert written
    ctx = build_teacher_contexts(samples, run.tok, p.teacher, p.feedback)
    for s, c in zip(samples, ctx):
        if s in written:
            teacher_text = run.tok.decode(c.prompt_ids)
            assert c.active and c.used_feedback
            assert "feedback from your unsuccessful earlier attempt" in teacher_text
            assert s.critique.strip()[:20] in teacher_text
            assert s.feedback not in teacher_text or s.feedback in s.critique  # env feedback is not a source here
    assert metrics["context/with_feedback"] == pytest.approx(len(written) / len(samples))


def test_critique_prompt_has_problem_attempt_and_verdict_and_fits(tok):
    p = parse_params({"feedback": {"sources": ["critique"], "critique": {"max_prompt_tokens": 400}}})
    s = synthetic_batch(tok)[1]
    s.rollout.text = "x = 1\n" * 300  # a long attempt is cut first
    ids = critique_prompt(s, p.feedback.critique, tok)
    text = tok.decode(ids)
    assert "What is 2 + 3?" in text and "Wrong Answer: 7" in text and "x = 1" in text and "(truncated)" in text
    assert len(ids) <= 400
    with pytest.raises(ContextError, match="max_prompt_tokens=100 is too small"):
        critique_prompt(s, parse_params({"feedback": {"critique": {"max_prompt_tokens": 100}}}).feedback.critique, tok)


def test_judge_model_writes_the_critiques(tiny_params, tiny_dir):
    from vpd_core import loop

    p = load_params(tiny_params, ["feedback.sources=[critique]", f"feedback.critique.model_path={tiny_dir}"])
    run = loop.Run(p, log=lambda _: None)
    assert run.critic is not run.engine and run.critic.model is not run.model
    samples = synthetic_batch(run.tok)
    m = write_critiques(run.critic, run.critic_tok, samples, p.feedback.critique, seed=0)
    assert m["critique/count"] == 4 and all(s.meta.get("critiqued") for s in samples if s.reward < 0.5)
    assert all(not s.critique for s in samples if s.reward >= 0.5)


def test_critique_source_without_critiques_fails_loudly(model, tok):
    tr = Trainer(model, tok, params(feedback={"sources": ["critique"]}))
    with pytest.raises(ContextError, match="never critiqued"):
        tr.train_step(synthetic_batch(tok))


@pytest.mark.parametrize("bad, match", [
    ({"algorithm": "grpo", "feedback": {"sources": ["critique"]}}, "has none"),
    ({"feedback": {"critique": {"model_path": "x"}}}, "does not include 'critique'"),
    ({"algorithm": "sdpo", "grpo": {"dual_clip": 3.0}}, "dual_clip"),
    ({"algorithm": "grpo", "vpd": {"e_buffer": "last_F"}}, "e_buffer"),
    ({"rollout": {"top_p": 0.9}}, "old_logps: recompute"),
    ({"train": {"mini_batches": 3}}, "mini_batches=3 must divide"),
    ({"grpo": {"dual_clip": 1.0}, "algorithm": "grpo"}, "greater than 1"),
    ({"feedback": {"critique": {"template": "no holes"}}}, "must contain"),
])
def test_options_refuse_algorithms_they_do_not_apply_to(bad, match):
    with pytest.raises(ParamsError, match=match):
        parse_params(bad)


# ----------------------------------------------------------------------------- 2. E-step buffer siblings


def test_siblings_never_cross_problems_when_group_numbers_collide(tok):
    """Two steps of a last_F buffer: group 0 is problem P1 in step 0 and problem P3 in step 1."""
    def sample(step, pid, reward, text):
        msgs = [{"role": "user", "content": f"problem {pid}"}]
        return Sample(msgs, Rollout(chat_prompt_ids(tok, msgs), [5, 6], [-1.0, -1.0], "stop", text), group=0,
                      reward=reward, feedback="" if reward else "Wrong Answer", problem_id=pid, step=step)

    buffer = [sample(0, "P1", 1.0, "P1 solution"), sample(0, "P1", 0.0, "x"),
              sample(1, "P3", 0.0, "y"), sample(1, "P3", 0.0, "z")]
    assert select_siblings(buffer) == [None, 0, None, None]
    # same problem and group number in another step: still not a sibling (another policy sampled it)
    buffer.append(sample(2, "P1", 0.0, "w"))
    assert select_siblings(buffer)[-1] is None
    p = params(vpd={"e_every": 2, "e_buffer": "last_F"})
    ctx = build_teacher_contexts(buffer, tok, p.teacher, p.feedback, e_step=True)
    assert all("P1 solution" not in tok.decode(c.prompt_ids) for c in ctx[2:])
    assert "P1 solution" in tok.decode(ctx[1].prompt_ids)


# ----------------------------------------------------------------------------- 3. temperature


def test_trainer_logps_equal_sampler_logps_at_temperature(model, tok):
    T = 0.7
    eng = HFRolloutEngine(model, tok, batch_size=8)
    ps = [chat_prompt_ids(tok, [{"role": "user", "content": q}]) for q in ("What is 2 + 3?", "def solve")]
    out = eng.generate(ps, 3, SamplingParams(temperature=T, max_new_tokens=10, seed=3))
    packed = pack([r.prompt_ids for r in out], [r.response_ids for r in out], tok.pad_token_id)
    tr = Trainer(model, tok, params(rollout={"temperature": T}))
    assert tr.temperature == T
    with torch.no_grad():
        lp = token_logprobs(model.eval(), packed, temperature=tr.temperature)
        at_one = token_logprobs(model, packed)
    for i, r in enumerate(out):
        n = len(r.response_ids)
        assert torch.allclose(lp[i, :n], torch.tensor(r.sampler_logps), atol=1e-4)
        assert not torch.allclose(at_one[i, :n], torch.tensor(r.sampler_logps), atol=1e-2)
    # and so a training step on its own fresh samples sees importance weights of exactly 1
    samples = [Sample([{"role": "user", "content": "q"}], r, group=i // 3, reward=float(i % 2),
                      feedback="" if i % 2 else "Wrong") for i, r in enumerate(out)]
    m = tr.train_step(samples)
    assert m["distill/is_weight_mean"] == pytest.approx(1.0, abs=1e-4)


# ----------------------------------------------------------------------------- 4. mini-batches, dual clip


def _exact(**kw):  # Adam with a huge eps: the update is ~lr * gradient (see test_trainer)
    return params(optim={"lr": 100.0, "eps": 1e3, "grad_clip": None}, vpd={"e_every": 100}, **kw)


@pytest.mark.parametrize("algo", ["vpd", "grpo", "hybrid"])
def test_mini_batches_equal_sequential_single_batch_updates(tiny_dir, tok, algo):
    batch = synthetic_batch(tok)  # two problem groups of 4
    split = _exact(algorithm=algo, train={"mini_batches": 2, "micro_batch_size": 3})
    a = load_model(tiny_dir)
    before = flat_params(a)
    m = Trainer(a, tok, split).train_step(batch)
    assert m["train/updates"] == 2.0 and m["train/step"] == 1.0

    b = load_model(tiny_dir)
    tr = Trainer(b, tok, _exact(algorithm=algo, train={"micro_batch_size": 3}))
    tr.train_step(batch[:4])
    tr.train_step(batch[4:])
    assert (flat_params(a) - before).abs().max() > 1e-4
    assert torch.allclose(flat_params(a), flat_params(b), atol=1e-7)


def test_recomputed_pi_old_is_the_policy_before_the_first_update(tiny_dir, tok):
    """old_logps: recompute with 2 updates == update on group 0, then group 1 with pi_old scored
    before the first update."""
    batch = synthetic_batch(tok)
    a = load_model(tiny_dir)
    Trainer(a, tok, _exact(algorithm="grpo", train={"mini_batches": 2, "old_logps": "recompute"})).train_step(batch)

    b = load_model(tiny_dir)
    packed = pack([s.rollout.prompt_ids for s in batch[4:]], [s.rollout.response_ids for s in batch[4:]], tok.pad_token_id)
    with torch.no_grad():
        old = token_logprobs(b, packed)
    second = [Sample(s.messages, Rollout(s.rollout.prompt_ids, s.rollout.response_ids,
                                         old[i, : len(s.rollout.response_ids)].tolist(), "stop", s.rollout.text),
                     s.group, s.reward, s.feedback) for i, s in enumerate(batch[4:])]
    tr = Trainer(b, tok, _exact(algorithm="grpo", train={"old_logps": "recompute"}))
    tr.train_step(batch[:4])
    tr.p.train.old_logps = "sampler"  # the same optimizer, now with pi_old as scored above
    tr.train_step(second)
    assert torch.allclose(flat_params(a), flat_params(b), atol=1e-6)


def test_vpd_e_step_counts_rollout_steps_not_updates(model, tok):
    tr = Trainer(model, tok, params(vpd={"e_every": 2}, train={"mini_batches": 2}))
    seen = [("estep/loss" in tr.train_step(synthetic_batch(tok))) for _ in range(2)]
    assert seen == [False, True] and tr.step == 2
    assert tr.scheduler.last_epoch == 2  # the LR schedule advances per rollout step, not per update


def test_mini_batches_need_whole_groups(model, tok):
    tr = Trainer(model, tok, params(train={"mini_batches": 2}))
    with pytest.raises(ValueError, match="3 problem groups"):
        batch = synthetic_batch(tok)
        for s in batch[6:]:
            s.group = 2
        tr.train_step(batch)


def test_dual_clip_caps_negative_advantage_losses():
    ratios = torch.tensor([[0.5, 1.0, 5.0], [0.5, 1.0, 5.0]])
    logps = ratios.log().requires_grad_(True)
    adv = torch.tensor([1.0, -1.0])
    loss, _, _ = ppo_per_token(logps, torch.zeros(2, 3), adv, eps_low=0.2, eps_high=0.28, dual_clip=3.0)
    # A=+1: max(-r, -clip r) = [-0.5, -1, -1.28]; A=-1: max(r, clip r) = [0.8, 1, 5] capped at c*|A| = 3
    assert torch.allclose(loss, torch.tensor([[-0.5, -1.0, -1.28], [0.8, 1.0, 3.0]]))
    loss.sum().backward()
    assert logps.grad[1, 2] == 0  # the dual-clipped token carries no gradient
    plain, _, _ = ppo_per_token(logps, torch.zeros(2, 3), adv, eps_low=0.2, eps_high=0.28)
    assert plain[1, 2].item() == pytest.approx(5.0)


def test_log_ratio_is_clamped_before_exp():
    logps = torch.tensor([[0.0]])
    old = torch.tensor([[-1000.0]])
    loss, ratio, _ = ppo_per_token(logps, old, torch.tensor([-1.0]), eps_low=0.2, eps_high=0.28)
    assert torch.isfinite(loss).all() and ratio.item() == pytest.approx(torch.exp(torch.tensor(20.0)).item())


# ----------------------------------------------------------------------------- 6. aggregation conventions


def test_masked_mean_conventions_brute_force():
    x = torch.tensor([[1.0, 2.0, 3.0], [10.0, 0.0, 0.0], [7.0, 7.0, 7.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert masked_mean(x, mask, "token-mean").item() == pytest.approx(16 / 4)
    assert masked_mean(x, mask, "verl").item() == pytest.approx(16 / 4)
    assert masked_mean(x, mask, "seq-mean-token-mean").item() == pytest.approx((2 + 10) / 2)
    assert masked_mean(x, mask, "trl").item() == pytest.approx((2 + 10 + 0) / 3)  # the masked row counts


def _ragged_batch(tok):
    batch = synthetic_batch(tok)
    for k, s in enumerate(batch):
        extra = tok.encode(" and more" * (k % 3), add_special_tokens=False)
        s.rollout.response_ids = extra + s.rollout.response_ids
        s.rollout.sampler_logps = [-5.0 - 0.1 * j for j in range(len(s.rollout.response_ids))]
    batch[5].reward, batch[5].feedback, batch[4].reward = 0.0, "", 0.0  # masks in group 1
    return batch


def _full_logits(model, prompts, responses, pad_id):
    return pack(prompts, responses, pad_id), unpadded_response_logits(model, prompts, responses)


@pytest.mark.parametrize("agg", ["trl", "verl"])
def test_m_step_aggregation_equals_brute_force(tiny_dir, tok, agg):
    """TRL: sum_i mean_t(l_it) / B over all B sequences; verl: mean over micro-batches of each
    micro-batch's token mean. Brute force: one sequence or micro-batch at a time, full logits."""
    batch = _ragged_batch(tok)
    mb = 3
    p = params(train={"micro_batch_size": mb, "logit_chunk": 2}, distill={"loss_agg": agg, "topk": 7},
               optim={"lr": 1e5, "eps": 1e3, "grad_clip": None})
    ctx = build_teacher_contexts(batch, tok, p.teacher, p.feedback)
    ma = load_model(tiny_dir)
    before = flat_params(ma)
    Trainer(ma, tok, p).m_step(batch, ctx)
    got = flat_params(ma) - before

    ref = load_model(tiny_dir)
    groups = [[i] for i in range(len(batch))] if agg == "trl" else [list(range(a, min(a + mb, 8))) for a in range(0, 8, mb)]
    total = 0.0
    for idx in groups:
        stu, s_logits = _full_logits(ref, [batch[i].rollout.prompt_ids for i in idx],
                                     [batch[i].rollout.response_ids for i in idx], tok.pad_token_id)
        with torch.no_grad():
            _, t_logits = _full_logits(ref, [ctx[i].prompt_ids for i in idx], [batch[i].rollout.response_ids for i in idx],
                                       tok.pad_token_id)
        mask = stu.response_mask * torch.tensor([float(ctx[i].active) for i in idx])[:, None]
        w = importance_weights(gather_logps(s_logits, stu.response_ids),
                               pad_right([batch[i].rollout.sampler_logps for i in idx], stu.response_len), 2.0)
        loss, _ = distillation_loss(s_logits, t_logits, mask, topk=7, alpha=1.0, is_weights=w, loss_agg="token-mean")
        total = total + loss
    (total / len(groups)).backward()
    opt = torch.optim.AdamW(ref.parameters(), lr=1e5, eps=1e3, weight_decay=0.0)
    opt.step()
    want = flat_params(ref) - before
    assert want.abs().max() > 1e-2
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean", "trl", "verl"])
def test_grpo_aggregation_equals_brute_force(tiny_dir, tok, agg):
    batch = _ragged_batch(tok)
    mb = 3
    p = params(algorithm="grpo", train={"micro_batch_size": mb}, distill={"loss_agg": agg},
               optim={"lr": 1e5, "eps": 1e3, "grad_clip": None})
    ma = load_model(tiny_dir)
    before = flat_params(ma)
    Trainer(ma, tok, p).grpo_step(batch)
    got = flat_params(ma) - before

    ref = load_model(tiny_dir)
    adv = grpo_advantages(torch.tensor([s.reward for s in batch]), torch.tensor([s.group for s in batch]))
    groups = [list(range(a, min(a + mb, 8))) for a in range(0, 8, mb)] if agg == "verl" else [list(range(8))]
    total = 0.0
    for idx in groups:
        stu, logits = _full_logits(ref, [batch[i].rollout.prompt_ids for i in idx],
                                   [batch[i].rollout.response_ids for i in idx], tok.pad_token_id)
        logps = gather_logps(logits, stu.response_ids)
        old = pad_right([batch[i].rollout.sampler_logps for i in idx], stu.response_len)
        loss, _ = grpo_loss(logps, old, adv[idx], stu.response_mask, eps_low=0.2, eps_high=0.28,
                            loss_agg="token-mean" if agg == "verl" else agg)
        total = total + loss
    (total / len(groups)).backward()
    torch.optim.AdamW(ref.parameters(), lr=1e5, eps=1e3, weight_decay=0.0).step()
    want = flat_params(ref) - before
    assert want.abs().max() > 1e-2
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-3)


def test_head_logits_divide_by_temperature(model):
    h = torch.randn(2, 3, model.config.hidden_size)
    assert torch.allclose(head_logits(lm_head(model), h, 0.5), 2 * head_logits(lm_head(model), h))
