"""Model responses to embedded code problems graded through the batched sandbox API."""

from sandboxes.grading import grade_code
from sandboxes.feedback import NO_CODE_BLOCK, TRUNCATED
from vpd_core.data.registry import embedded_path, read_source


def fenced(code):
    return f"Here is my solution.\n```python\n{code}\n```\n"


def test_grade_embedded_code_problems(sandbox):
    problems = {p.metadata["title"]: p for p in read_source("livecodebench", embedded_path("livecodebench", "train"), split_seed=0).problems
                + read_source("livecodebench", embedded_path("livecodebench", "test"), split_seed=0).problems}
    add, rev = problems["Sum of Two"], problems["reverse-string"]
    items = [
        (add, fenced("a, b = map(int, input().split())\nprint(a + b)"), False),
        (add, fenced("a, b = map(int, input().split())\nprint(a - b)"), False),
        (rev, fenced("class Solution:\n    def reverseString(self, s):\n        return s[::-1]"), False),
        (rev, "I would reverse it.", False),
        (rev, "```python\nclass Solution:\n    def reverseString(self, s):", True),
    ]
    g = grade_code(sandbox, items)
    assert [x.reward for x in g] == [1.0, 0.0, 1.0, 0.0, 0.0]
    assert g[0].feedback == "" and g[1].feedback.startswith("Test Case ") and "Wrong Answer" in g[1].feedback
    assert g[3].feedback == NO_CODE_BLOCK and g[4].feedback == TRUNCATED
    assert len(g[0].result.tests) == len(add.tests)
    train = grade_code(sandbox, items[:1], split="train")
    assert len(train[0].result.tests) == len(add.train_tests) < len(add.tests)
