"""LR schedule with warm-up, and the built-in arithmetic task's verifier."""

import math

import pytest

from vpd_core.data.benchmarks import arithmetic
from vpd_core.loop import select_problems, step_seed
from vpd_core.trainer import lr_lambda


def test_warmup_then_constant():
    f = lr_lambda("constant", warmup=4, total=10)
    assert [f(s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_linear_and_cosine_decay_to_zero():
    lin, cos = lr_lambda("linear", 2, 12), lr_lambda("cosine", 2, 12)
    assert lin(2) == 1.0 and lin(7) == pytest.approx(0.5) and lin(12) == 0.0
    assert cos(2) == 1.0 and cos(7) == pytest.approx(0.5) and cos(12) == pytest.approx(0.0, abs=1e-12)
    assert cos(4) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.2)))


def test_arithmetic_problems_are_seeded():
    a = arithmetic.make_problems(5, 10, seed=3)
    assert a == arithmetic.make_problems(5, 10, seed=3) != arithmetic.make_problems(5, 10, seed=4)
    assert all(eval(p.messages[1]["content"][8:-1]) == int(p.answer) for p in a)


@pytest.mark.parametrize(
    "text, truncated, reward, feedback",
    [
        ("The answer is \\boxed{12}. Also 7.", False, 1.0, ""),
        ("12", False, 1.0, ""),
        ("I think 3 + 4 = 7, so 11", False, 0.0, "Your final answer 11 is wrong."),
        ("no idea", False, 0.0, "No final answer found"),
        ("let me think about", True, 0.0, "truncated"),
    ],
)
def test_verifier(text, truncated, reward, feedback):
    p = arithmetic.Problem("x", "arithmetic", [], answer="12")
    r, fb = arithmetic.verify(p, text, truncated)
    assert r == reward and feedback in fb
    assert "12" not in fb  # feedback never leaks the answer


def test_problem_selection_depends_only_on_seed_and_step():
    items = list(range(50))
    assert select_problems(items, 3, 0, 5) == select_problems(items, 3, 0, 5)
    assert select_problems(items, 3, 0, 5) != select_problems(items, 3, 0, 6)
    assert step_seed(0, 1) != step_seed(1, 0)


def test_problem_selection_covers_each_epoch_before_repeating():
    items = list(range(10))  # 3 per step: 3 steps per epoch, one problem left out of each epoch
    for epoch in range(4):
        drawn = [x for step in range(3 * epoch, 3 * epoch + 3) for x in select_problems(items, 3, 7, step)]
        assert len(drawn) == len(set(drawn)) == 9  # no repeat within an epoch
    epochs = [sorted(x for s in range(3 * e, 3 * e + 3) for x in select_problems(items, 3, 7, s)) for e in range(4)]
    assert len({tuple(e) for e in epochs}) > 1  # the left-out problem changes between epochs
    assert select_problems(items, 3, 7, 0) != select_problems(items, 3, 8, 0)  # seeds shuffle differently
    assert sorted(select_problems(items, 20, 0, 0)) == items  # more than the set: all of it, once


def test_training_pool_is_a_seeded_subset_in_split_order():
    from vpd_core.loop import training_pool

    items = [f"p{i}" for i in range(30)]
    pool = training_pool(items, 8, seed=1)
    assert len(pool) == 8 and pool == [x for x in items if x in pool] and pool == training_pool(items, 8, seed=1)
    assert pool != training_pool(items, 8, seed=2)
    assert training_pool(items, None, 0) is items and training_pool(items, 99, 0) is items
