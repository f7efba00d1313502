"""Teacher contexts: sibling rule, feedback rule, masks, E-step positives, truncation."""

import pytest

from vpd_core.config import FeedbackParams, TeacherParams
from vpd_core.sequences import Rollout, Sample, chat_prompt_ids
from vpd_core.teacher import ContextError, build_teacher_contexts, fill, select_siblings

SYSTEM = {"role": "system", "content": "You are a programmer."}


def make(group, reward, text="", feedback="", prompt="Add two numbers {a} and {b}.", tok=None):
    msgs = [SYSTEM, {"role": "user", "content": prompt}]
    ids = chat_prompt_ids(tok, msgs) if tok is not None else [1, 2, 3]
    return Sample(messages=msgs, rollout=Rollout(ids, [5, 6], [-1.0, -1.0], "stop", text), group=group,
                  reward=reward, feedback=feedback)


def user_turn(tok, ctx):
    return tok.decode(ctx.prompt_ids)


def test_sibling_is_never_the_sample_itself():
    s = [make(0, 1, "A"), make(0, 0, "B"), make(0, 1, "C"), make(1, 1, "D"), make(1, 0, "E")]
    assert select_siblings(s) == [2, 0, 0, None, 3]


def test_contexts_sibling_feedback_and_mask(tok):
    s = [
        make(0, 1, "print(1)", tok=tok),
        make(0, 0, "oops", "Wrong Answer", tok=tok),
        make(1, 0, "bad", "Runtime Error\nZeroDivisionError", tok=tok),
        make(1, 0, "worse", "", tok=tok),  # no feedback, no sibling
        make(2, 1, "<think>hmm</think>print(2)", tok=tok),  # a lone success
    ]
    ctx = build_teacher_contexts(s, tok, TeacherParams(), FeedbackParams())
    assert [c.active for c in ctx] == [False, True, True, False, False]
    assert ctx[1].sibling == 0 and not ctx[1].used_feedback  # sibling wins: never both
    text1 = user_turn(tok, ctx[1])
    assert "Correct solution:\n\nprint(1)" in text1 and "Wrong Answer" not in text1
    text2 = user_turn(tok, ctx[2])
    assert "feedback from your unsuccessful earlier attempt:\n\nRuntime Error\nZeroDivisionError" in text2
    assert "Correct solution" not in text2
    assert ctx[3].prompt_ids == s[3].rollout.prompt_ids  # masked: plain student prompt
    # literal substitution: braces in the problem survive
    assert "Add two numbers {a} and {b}." in text2
    assert text2.endswith("Correctly solve the original question.\n<|im_end|>\n<|im_start|>assistant\n")


def test_env_and_sibling_together_when_configured(tok):
    s = [make(0, 1, "good", tok=tok), make(0, 0, "bad", "Wrong Answer", tok=tok)]
    ctx = build_teacher_contexts(s, tok, TeacherParams(), FeedbackParams(env_only_without_sibling=False))
    text = user_turn(tok, ctx[1])
    assert text.index("Correct solution") < text.index("Wrong Answer")


def test_sibling_only_sources_ignore_env_feedback(tok):
    s = [make(0, 0, "bad", "Wrong Answer", tok=tok), make(0, 0, "bad2", "Wrong Answer", tok=tok)]
    ctx = build_teacher_contexts(s, tok, TeacherParams(), FeedbackParams(sources=["sibling"]))
    assert [c.active for c in ctx] == [False, False]


def test_sibling_thinking_is_removed(tok):
    s = [make(0, 1, "<think>secret plan</think>final code", tok=tok), make(0, 0, "x", tok=tok)]
    text = user_turn(tok, build_teacher_contexts(s, tok, TeacherParams(), FeedbackParams())[1])
    assert "final code" in text and "secret plan" not in text


def test_estep_positive_gets_success_message(tok):
    s = [make(0, 1, "ok", tok=tok), make(1, 0, "no", "Wrong Answer", tok=tok)]
    m_ctx = build_teacher_contexts(s, tok, TeacherParams(), FeedbackParams())
    e_ctx = build_teacher_contexts(s, tok, TeacherParams(), FeedbackParams(), e_step=True)
    assert not m_ctx[0].active
    assert e_ctx[0].active and e_ctx[0].used_success_message
    assert "Your earlier attempt passed all tests." in user_turn(tok, e_ctx[0])


def test_quote_attempt(tok):
    s = [make(0, 0, "my attempt", "Wrong Answer", tok=tok)]
    plain = user_turn(tok, build_teacher_contexts(s, tok, TeacherParams(), FeedbackParams())[0])
    quoted = user_turn(tok, build_teacher_contexts(s, tok, TeacherParams(quote_attempt=True), FeedbackParams())[0])
    assert "my attempt" not in plain and "Your earlier attempt:\n\nmy attempt" in quoted


def test_truncation_keeps_closing_instruction_and_header(tok):
    long_fb = "Test Case 1: Wrong Answer\n" * 200
    s = [make(0, 0, "x", long_fb, tok=tok)]
    full = build_teacher_contexts(s, tok, TeacherParams(max_prompt_tokens=100_000), FeedbackParams())[0]
    cap = 120
    ctx = build_teacher_contexts(s, tok, TeacherParams(max_prompt_tokens=cap), FeedbackParams())[0]
    assert len(full.prompt_ids) > cap >= len(ctx.prompt_ids)
    assert ctx.truncated and not full.truncated
    text = tok.decode(ctx.prompt_ids)
    assert "...(truncated)" in text
    assert text.endswith("Correctly solve the original question.\n<|im_end|>\n<|im_start|>assistant\n")
    assert text.startswith("<|im_start|>system\nYou are a programmer.")


def test_truncation_cuts_the_problem_last(tok):
    s = [make(0, 0, "x", "short feedback " * 40, prompt="statement " * 60, tok=tok)]
    ctx = build_teacher_contexts(s, tok, TeacherParams(max_prompt_tokens=150), FeedbackParams())[0]
    text = tok.decode(ctx.prompt_ids)
    assert len(ctx.prompt_ids) <= 150
    assert text.endswith("Correctly solve the original question.\n<|im_end|>\n<|im_start|>assistant\n")


def test_cap_too_small_is_a_clear_error(tok):
    s = [make(0, 0, "x", "Wrong Answer", tok=tok)]
    with pytest.raises(ContextError, match="max_prompt_tokens=32 is too small"):
        build_teacher_contexts(s, tok, TeacherParams(max_prompt_tokens=32), FeedbackParams())


def test_fill_is_single_pass():
    assert fill("{prompt}|{feedback}", prompt="use {feedback} here", feedback="F") == "use {feedback} here|F"
