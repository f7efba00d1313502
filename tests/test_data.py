"""Readers on fixtures in the real schemas, embedded sets, graders, pass@k, `vpd data inspect`."""

import itertools
import json
import subprocess
import sys
from datetime import date

import pandas as pd
import pytest
from records import lcb_record, tampered_blob

from vpd_core.data.evaluation import pass_at_k, summarize, write_results
from vpd_core.data.graders import extract_math_answer, math_correct, mcq_correct, mcq_prediction
from vpd_core.data.benchmarks.livecodebench import encode_tests, read_livecodebench, read_paper_v6, train_split
from vpd_core.data.benchmarks.math500 import read_math500
from vpd_core.data.registry import benchmark, embedded_path, read_source
from vpd_core.data.schema import DataError
from vpd_core.data.benchmarks.sciknoweval import read_paper_protocol, read_sciknoweval, split_by_domain


def lcb(qid, date_, **kw):
    return lcb_record([("1\n", "1\n")], [(f"{i}\n", f"{i}\n") for i in range(2, 8)], question_id=qid,
                      question_title=f"t{qid}", question_content="Print {x}.", contest_date=f"{date_}T00:00:00", **kw)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ----------------------------------------------------------------------------- LiveCodeBench


def test_lcb_fields_tests_and_prompt(tmp_path):
    f = write_jsonl(tmp_path / "test.jsonl", [
        lcb("abc1_a", "2025-01-05"),
        lcb("3001", "2025-02-10", platform="leetcode", difficulty="medium", starter_code="class Solution:\n    def f(self, x):\n        ",
            public_test_cases=json.dumps([{"input": "1", "output": "1", "testtype": "functional"}]),
            private_test_cases=encode_tests([{"input": "2", "output": "2", "testtype": "functional"}]),
            metadata=json.dumps({"func_name": "f"})),
    ])
    a, b = read_livecodebench(f).problems
    assert [t["input"] for t in a.tests] == ["1\n"] + [f"{i}\n" for i in range(2, 8)]  # public, then private
    assert a.fn_name is None and a.platform == "atcoder" and a.difficulty == "easy" and a.metadata["public_tests"] == 1
    assert "### Question:\nPrint {x}." in a.messages[1]["content"] and "# YOUR CODE HERE" in a.messages[1]["content"]
    assert b.fn_name == "f" and "You will use the following starter code" in b.messages[1]["content"]
    assert "class Solution:" in b.messages[1]["content"]
    assert a.messages[0]["content"].startswith("You are an expert Python programmer.")


def test_lcb_tampered_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    blob = tampered_blob(marker)
    f = write_jsonl(tmp_path / "t.jsonl", [lcb("ok", "2025-01-01"), lcb("bad", "2025-01-01", private_test_cases=blob)])
    with pytest.raises(DataError, match=rf"{f}:2: private_test_cases: refusing to load global"):
        read_livecodebench(f)
    r = read_livecodebench(f, on_error="skip")
    assert [p.id for p in r.problems] == ["ok"] and len(r.skipped) == 1 and r.skipped[0].startswith(f"{f}:2:")
    assert not marker.exists()


@pytest.mark.parametrize(
    "change, message",
    [({"difficulty": "trivial"}, "difficulty: expected one of"), ({"contest_date": "yesterday"}, "contest_date: not an ISO date"),
     ({"question_id": 7}, "question_id: expected str"), ({"public_test_cases": "[{\"input\": \"1\"}]"}, "public_test_cases[0]")],
)
def test_lcb_errors_name_file_line_field(tmp_path, change, message):
    f = write_jsonl(tmp_path / "t.jsonl", [lcb("ok", "2025-01-01"), {**lcb("x", "2025-01-01"), **change}])
    with pytest.raises(DataError) as e:
        read_livecodebench(f)
    assert str(e.value).startswith(f"{f}:2: ") and message in str(e.value)


def test_lcb_missing_field_and_bad_json_line(tmp_path):
    rec = lcb("x", "2025-01-01")
    del rec["starter_code"]
    f = tmp_path / "t.jsonl"
    f.write_text(json.dumps(rec) + "\n{not json\n")
    with pytest.raises(DataError, match=rf"{f}:1: starter_code: missing field"):
        read_livecodebench(f)
    assert read_livecodebench(f, on_error="skip").skipped == [f"{f}:1: starter_code: missing field",
                                                              f"{f}:2: <json>: not valid JSON: Expecting property name enclosed in double quotes"]


def test_lcb_releases_and_date_windows(tmp_path):
    write_jsonl(tmp_path / "test.jsonl", [lcb("a", "2024-06-01")])
    for n, d in [(2, "2025-01-31"), (3, "2025-02-01"), (4, "2025-03-01"), (5, "2025-04-30"), (6, "2025-05-01")]:
        write_jsonl(tmp_path / f"test{n}.jsonl", [lcb(f"p{n}", d)])
    assert [p.id for p in read_livecodebench(tmp_path, release="release_v2").problems] == ["a", "p2"]
    assert [p.id for p in read_livecodebench(tmp_path, release="v4").problems] == ["p4"]
    assert len(read_livecodebench(tmp_path).problems) == 6
    window = read_livecodebench(tmp_path, start=date(2025, 2, 1), end=date(2025, 5, 1)).problems
    assert [p.id for p in window] == ["p3", "p4", "p5"]  # [start, end)
    v6 = read_paper_v6(tmp_path, split_seed=3).problems
    assert [p.id for p in v6] == ["p3", "p4", "p5"] and all(p.train_tests for p in v6)
    with pytest.raises(DataError, match="unknown LiveCodeBench release 'release_v9'"):
        read_livecodebench(tmp_path, release="release_v9")
    (tmp_path / "test6.jsonl").unlink()
    with pytest.raises(DataError, match="release release_v6 needs .*test6.jsonl"):
        read_livecodebench(tmp_path, release="release_v6")


def test_sdpo_split_is_seeded_half_and_deterministic():
    tests = [{"input": str(i), "output": str(i), "testtype": "stdin"} for i in range(7)]
    a = train_split(tests, "abc1_a", seed=0)
    assert a == train_split(tests, "abc1_a", seed=0) and len(a) == 4  # round(3.5) = 4
    assert a != train_split(tests, "abc1_a", seed=1) or a != train_split(tests, "abc2_a", seed=0)
    assert [t for t in tests if t in a] == a  # original order kept
    assert len(train_split(tests[:1], "x", seed=0)) == 1


# ----------------------------------------------------------------------------- SciKnowEval


def ske(domain, q, level="L3", kind="mcq-4-choices", **kw):
    labels = ["A", "B", "C", "D"] if kind == "mcq-4-choices" else ["A", "B"]
    rec = {"prompt": {"default": "Pick one."}, "question": q, "choices": {"text": [f"{q}-{x}" for x in labels], "label": labels},
           "answerKey": "B", "answer": "", "type": kind, "domain": domain,
           "details": {"level": level, "task": "t", "subtask": "s", "source": "web"}}
    return {**rec, **kw}


def test_sciknoweval_v1_and_v2_layouts(tmp_path):
    v1 = write_jsonl(tmp_path / "sciknoweval_test.jsonl", [
        ske("Chemistry", "q1"), ske("Physics", "q2", kind=["mcq-2-choices"]), ske("Biology", "q3", level="L1"),
        {**ske("Material", "q4"), "type": "true_or_false", "answerKey": "", "answer": "Yes", "choices": {"text": [], "label": []}}])
    r = read_sciknoweval(v1)
    assert len(r.problems) == 4 and r.problems[1].metadata["type"] == "mcq-2-choices"
    p = r.problems[0]
    assert p.answer == "B" and p.messages[0] == {"role": "system", "content": "Pick one."}
    assert p.messages[1]["content"] == "q1\n\nA. q1-A\nB. q1-B\nC. q1-C\nD. q1-D"
    v2 = tmp_path / "v2"
    for d in ("Chemistry", "Physics"):
        (v2 / d).mkdir(parents=True)
        (v2 / d / f"sciknoweval_{d.lower()}_test.json").write_text(json.dumps([ske(d, f"{d}{i}") for i in range(3)]))
    r2 = read_sciknoweval(v2, domains=["Physics"], levels=["L3"], types=["mcq-4-choices"])
    assert [p.domain for p in r2.problems] == ["Physics"] * 3
    assert len({p.id for p in read_sciknoweval(v2).problems}) == 6


def test_sciknoweval_errors_and_paper_split(tmp_path):
    f = write_jsonl(tmp_path / "x.jsonl", [ske("Physics", "q"), {**ske("Physics", "r"), "answerKey": "E"}])
    with pytest.raises(DataError, match=rf"{f}:2: answerKey: 'E' is not one of the labels"):
        read_sciknoweval(f)
    rows = [ske(d, f"{d}-{i}", level="L3" if i % 5 else "L2", kind="mcq-2-choices" if i % 3 == 0 else "mcq-4-choices")
            for d in ("Biology", "Chemistry", "Physics", "Material") for i in range(40)]
    f = write_jsonl(tmp_path / "all.jsonl", rows)
    split = read_paper_protocol(f)
    assert sorted(split) == ["Biology", "Chemistry", "Material", "Physics"]
    for d, s in split.items():
        assert len(s["train"]) + len(s["test"]) == 32 and len(s["test"]) == 3  # L3 only, 10% test
        assert not {p.id for p in s["train"]} & {p.id for p in s["test"]}
    assert {d: [p.id for p in s["test"]] for d, s in split.items()} == \
           {d: [p.id for p in s["test"]] for d, s in read_paper_protocol(f).items()}
    other = split_by_domain([p for s in split.values() for p in s["train"] + s["test"]], seed=7)
    assert [p.id for p in other["Physics"]["test"]] != [p.id for p in split["Physics"]["test"]]


def test_params_select_the_sciknoweval_protocol_and_hold_out_a_disjoint_test_split(tmp_path):
    """data.* filters + per-domain holdout through loop.load_problems: what a training run reads."""
    from vpd_core.config import parse_params
    from vpd_core.loop import load_problems

    rows = [ske(d, f"{d}-{i}", level="L3" if i % 5 else "L2") for d in ("Chemistry", "Physics") for i in range(40)]
    f = write_jsonl(tmp_path / "all.jsonl", rows)
    params = parse_params({"data": {"source": "sciknoweval", "path": str(f), "domains": ["Chemistry"], "levels": ["L3"]}})
    train, test = load_problems(params, "train"), load_problems(params, "test")
    assert {p.domain for p in train + test} == {"Chemistry"}
    assert len(train) == 29 and len(test) == 3  # 32 L3 Chemistry questions, 10% held out
    assert not {p.id for p in train} & {p.id for p in test}
    assert [p.id for p in test] == [p.id for p in read_paper_protocol(f)["Chemistry"]["test"]]  # the paper's split
    narrow = parse_params({"data": {"source": "sciknoweval", "path": str(f), "domains": ["Biology"]}})
    with pytest.raises(DataError, match="no sciknoweval problems for the train split"):
        load_problems(narrow, "train")


def test_params_select_a_livecodebench_contest_window(tmp_path):
    from vpd_core.config import parse_params
    from vpd_core.loop import load_problems

    recs = [lcb_record([("1", "1")], question_id=f"q{m}", contest_date=f"2025-0{m}-15T00:00:00") for m in range(1, 7)]
    f = write_jsonl(tmp_path / "test6.jsonl", recs)
    params = parse_params({"data": {"source": "livecodebench", "path": str(f),
                                    "start_date": "2025-02-01", "end_date": "2025-05-01"}})
    assert [p.id for p in load_problems(params, "train")] == ["q2", "q3", "q4"]
    assert [p.id for p in load_problems(params, "test")] == ["q2", "q3", "q4"]  # same problems, all tests


def test_math500(tmp_path):
    f = write_jsonl(tmp_path / "test.jsonl", [{"problem": "What is $1+1$?", "answer": "2", "subject": "Algebra", "level": 1,
                                               "unique_id": "test/algebra/1.json"}])
    p = read_math500(f).problems[0]
    assert p.id == "test/algebra/1.json" and p.answer == "2" and p.domain == "Algebra" and "\\boxed{}" in p.messages[0]["content"]


# ----------------------------------------------------------------------------- embedded sets


@pytest.mark.parametrize("source, minimum", [("livecodebench", 40), ("sciknoweval", 40), ("math500", 20)])
def test_embedded_sets_parse_strictly_and_split(source, minimum):
    train = read_source(source, embedded_path(source, "train")).problems
    test = read_source(source, embedded_path(source, "test")).problems
    assert len(train) + len(test) >= minimum and test and train
    assert not {p.id for p in train} & {p.id for p in test}


def test_embedded_code_set_mixes_stdin_and_functional_with_encoded_private_tests():
    raw = [json.loads(x) for x in embedded_path("livecodebench", "train").read_text().splitlines()]
    assert all(r["private_test_cases"].startswith("eJ") for r in raw)  # base64(zlib(...)) like the real files
    problems = read_source("livecodebench", embedded_path("livecodebench", "train")).problems
    assert {bool(p.fn_name) for p in problems} == {True, False}


def test_embedded_set_is_reproducible(tmp_path):
    before = {s: embedded_path(s, sp).read_bytes() for s in ("livecodebench", "sciknoweval", "math500") for sp in ("train",)}
    subprocess.run([sys.executable, "data/embedded/build.py"], check=True, capture_output=True)
    assert before == {s: embedded_path(s, "train").read_bytes() for s in before}


# ----------------------------------------------------------------------------- graders


@pytest.mark.parametrize(
    "response, correct",
    [("B", True), ("C", False), ("", False), ("  ", False), ("The answer is B.", True), ("B) because", True),
     ("I choose opt-B", True), ("opt-C or maybe opt-B", False), ("Answer: \"B\"", True), ("Beta", True), ("A. no, D. yes", False),
     ("<think>A. is tempting</think>B", True)],
)
def test_mcq_official_rule(response, correct):
    assert mcq_correct(response, "B", ["A", "B", "C", "D"], ["opt-A", "opt-B", "opt-C", "opt-D"]) is correct


def test_mcq_prediction_order():
    assert mcq_prediction("A. or D.", list("ABCD")) == "D"  # checked last-to-first, as the official scorer does
    assert mcq_prediction("xyz", list("ABCD")) == "x"


@pytest.mark.parametrize(
    "response, gold, correct",
    [("\\boxed{\\frac{1}{2}}", "0.5", True), ("\\boxed{\\dfrac12}", "\\frac{1}{2}", True), ("\\boxed{3.0}", "3", True),
     ("\\boxed{1,000}", "1000", True), ("$\\boxed{x = 5}$", "5", True), ("\\boxed{\\text{(B)}}", "(B)", True),
     ("\\boxed{90^\\circ}", "90", True), ("\\boxed{\\left( 1, 2 \\right)}", "(1,2)", True), ("\\boxed{-\\frac{3}{4}}", "-0.75", True),
     ("\\boxed{\\frac{2}{3}}", "0.67", False), ("\\boxed{4}", "5", False), ("no answer", "5", False),
     ("so the answer is 12.", "12", True), ("\\boxed{\\boxed{7}}", "7", True), ("\\boxed{a^{2}}", "a^{2}", True)],
)
def test_math_equivalence(response, gold, correct):
    assert math_correct(response, gold) is correct


def test_last_boxed_is_balanced():
    assert extract_math_answer("first \\boxed{1} then \\boxed{\\frac{a}{b}} done") == "\\frac{a}{b}"


# ----------------------------------------------------------------------------- pass@k and tables


def brute_pass_at_k(n, c, k):
    outcomes = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(outcomes[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n, c", [(5, 0), (5, 1), (5, 2), (6, 5), (8, 3), (4, 4)])
def test_pass_at_k_matches_enumeration(n, c):
    for k in range(1, n + 1):
        assert pass_at_k(n, c, k) == pytest.approx(brute_pass_at_k(n, c, k), abs=1e-12)
    with pytest.raises(ValueError):
        pass_at_k(n, c, n + 1)


def test_summarize_and_write_results(tmp_path):
    rows = [{"problem_id": f"p{i}", "sample": s, "correct": (i + s) % 3 == 0, "difficulty": "easy" if i < 2 else "hard"}
            for i in range(4) for s in range(4)]
    df = pd.DataFrame(rows)
    overall = summarize(df).iloc[0]
    per_problem = [sum((i + s) % 3 == 0 for s in range(4)) for i in range(4)]
    assert overall["mean@4"] == pytest.approx(sum(c / 4 for c in per_problem) / 4)
    assert overall["pass@2"] == pytest.approx(sum(brute_pass_at_k(4, c, 2) for c in per_problem) / 4)
    assert "pass@8" not in summarize(df).columns
    tables = write_results(df, tmp_path / "eval" / "step-000005", "livecodebench", groups=["difficulty", "domain"])
    assert set(tables) == {"overall", "by_difficulty"}
    out = tmp_path / "eval" / "step-000005"
    assert sorted(p.name for p in out.iterdir()) == ["livecodebench.md", "livecodebench.parquet", "livecodebench_summary.parquet"]
    assert pd.read_parquet(out / "livecodebench.parquet").shape == (16, 4)
    assert "| difficulty | problems |" in (out / "livecodebench.md").read_text()


# ----------------------------------------------------------------------------- CLI


def inspect(*args):
    return subprocess.run([sys.executable, "-m", "vpd.cli", "data", "inspect", *args], capture_output=True, text=True)


def test_inspect_embedded_and_malformed(tmp_path):
    r = inspect(str(embedded_path("sciknoweval", "test")), "--source", "sciknoweval")
    out = json.loads(r.stdout)
    assert r.returncode == 0 and out["records"] == 11 and out["skipped"] == 0 and sum(out["by_domain"].values()) == 11
    f = write_jsonl(tmp_path / "m.jsonl", [{"problem": "1+1", "answer": "2"}, {"problem": "x"}, {"answer": "3"}])
    r = inspect(str(f), "--source", "math500")
    assert r.returncode == 2 and r.stdout == "" and f"{f}:2: answer: missing field" in r.stderr
    r = inspect(str(f), "--source", "math500", "--on-error", "skip")
    out = json.loads(r.stdout)
    assert r.returncode == 0 and out["records"] == 1 and out["skipped"] == 2
    assert out["skipped_records"] == [f"{f}:2: answer: missing field", f"{f}:3: problem: missing field"]
    r = inspect(str(tmp_path / "none.jsonl"), "--source", "math500")
    assert r.returncode == 2 and "none.jsonl: no such data file" in r.stderr


def test_grade_text_for_mcq_and_math():
    def grade_text(problem, response):
        return benchmark(problem.source).grade_text(problem, response)

    mcq = read_source("sciknoweval", embedded_path("sciknoweval", "test")).problems[0]
    wrong = next(lab for lab in mcq.labels if lab != mcq.answer)
    assert grade_text(mcq, mcq.answer) == (1.0, "")
    r, fb = grade_text(mcq, wrong)
    assert r == 0.0 and fb == f"Your answer ({wrong}) is incorrect."
    m = read_source("math500", embedded_path("math500", "test")).problems[0]
    assert grade_text(m, f"\\boxed{{{m.answer}}}") == (1.0, "")
    r, fb = grade_text(m, "no idea")
    assert r == 0.0 and "\\boxed{}" in fb and m.answer not in fb


@pytest.mark.parametrize("name", ["livecodebench", "sciknoweval", "math500", "minicode", "humaneval", "arithmetic"])
def test_registry_round_trip(name):
    """Each registry entry: its split loads through the loop, problems survive the prepared-split
    round trip (to_dict / from_dict, as `vpd prepare` writes them), its summary and grading agree."""
    from vpd_core.config import PromptTemplates, load_params
    from vpd_core.data.registry import benchmark, inspect_summary, names
    from vpd_core.data.schema import Problem, iter_records
    from vpd_core.loop import load_problems

    assert name in names()
    entry = benchmark(name)
    assert set(entry.templates) <= set(PromptTemplates.model_fields)
    problems = load_problems(load_params(None, [f"data.source={name}"]), "test")
    assert problems and all(p.source == name for p in problems)
    assert [Problem.from_dict(json.loads(json.dumps(p.to_dict()))) for p in problems] == problems
    if entry.grading == "sandbox":
        assert {t["testtype"] for p in problems for t in p.tests} <= set(entry.test_kinds)
    else:
        assert all(entry.grade_text(p, "")[0] == 0.0 for p in problems[:3])  # an empty answer never scores
    if name != "arithmetic":  # generated: no file to read
        summary = inspect_summary(name, read_source(name, embedded_path(name, "test")))
        assert summary["records"] == len(problems) and summary["skipped"] == 0
        _, first = next(iter_records(embedded_path(name, "test")))  # .jsonl or HumanEval's .jsonl.gz
        assert entry.parse(first).id == problems[0].id  # what `vpd sandbox check --problem` parses


def test_gzip_inputs_are_read_and_a_damaged_one_is_named(tmp_path):
    import gzip

    good = tmp_path / "math.jsonl.gz"
    good.write_bytes(gzip.compress(b'{"problem": "1+1?", "answer": "2"}\n'))
    assert read_source("math500", good).problems[0].answer == "2"
    bad = tmp_path / "bad.jsonl.gz"
    bad.write_bytes(b"this is not gzip")
    with pytest.raises(DataError, match=r"bad.jsonl.gz: not a readable gzip file"):
        read_source("humaneval", bad)
