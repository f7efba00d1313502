"""Teacher diagnostics on the tiny model: student and teacher pass rates and their gap are logged
every `diagnostics.every` steps, on a fixed probe set, measured on the weights the step starts from."""

import pytest

from vpd_core import loop
from vpd_core.config import load_params
from vpd_core.diagnostics import probe_problems, teacher_diagnostics
from vpd_core.fileio import read_jsonl


def test_diagnostics_log_student_teacher_and_gap(tiny_params, tmp_path):
    p = load_params(tiny_params, ["diagnostics.every=2", "diagnostics.problems=3", "diagnostics.samples=2",
                                  "train.steps=3"])
    loop.run_training(p, log=lambda _: None)
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    measured = [r for r in rows if "student/pass_rate" in r]
    assert [r["train/step"] for r in measured] == [1.0, 3.0]  # before steps 1 and 3: weights of steps 0 and 2
    assert [r["diagnostics/at_step"] for r in measured] == [0.0, 2.0]
    for r in measured:
        assert 0.0 <= r["student/pass_rate"] <= 1.0
        assert r["diagnostics/contexts"] > 0  # arithmetic failures carry feedback: teacher contexts exist
        assert 0.0 <= r["teacher/pass_rate"] <= 1.0
        assert r["teacher/gap"] == pytest.approx(r["teacher/pass_rate"] - r["student/pass_rate"])
    assert all("teacher/pass_rate" not in r for r in rows if r not in measured)


def test_teacher_sees_its_context_and_wins_when_shown_the_answer(tiny_params):
    """A teacher shown a sibling's correct answer: with a grader that rewards copying the sibling's
    text, the teacher passes where the student does not."""
    p = load_params(tiny_params, ["diagnostics.samples=2", "feedback.sources=[sibling]", "rollout.max_new_tokens=4"])
    run = loop.Run(p, log=lambda _: None)
    problems = probe_problems(loop.load_problems(p, "train"), 2, p.seed)
    assert probe_problems(loop.load_problems(p, "train"), 2, p.seed) == problems  # fixed probe set
    calls = []

    def grade(items):  # the first attempt of each problem "passes"; teacher prompts are judged separately
        calls.append(items)
        if len(calls) == 1:
            return [(1.0 if i % 2 == 0 else 0.0, "") for i in range(len(items))]
        return [(1.0, "") for _ in items]

    m = teacher_diagnostics(run.engine, run.tok, problems, p, grade, step=0)
    assert m["student/pass_rate"] == 0.5
    assert m["diagnostics/contexts"] == 0.5  # each failed attempt has its passing sibling; passes have none
    assert m["teacher/pass_rate"] == 1.0 and m["teacher/gap"] == 0.5 and m["teacher/pass_rate_after_failure"] == 1.0
    assert len(calls[1]) == 2  # one teacher sample per context
    for (_, student_ro), (_, teacher_ro) in zip(calls[0][0::2], calls[1]):
        teacher_prompt = run.tok.decode(teacher_ro.prompt_ids)
        assert "Correct solution:" in teacher_prompt and student_ro.text.strip()[:10] in teacher_prompt
