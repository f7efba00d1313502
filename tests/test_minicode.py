"""minicode, the generated demonstration task: deterministic, embedded as generated, every
reference solution passes its tests in the sandbox and every wrong variant fails them."""

import json
import random

import pytest

from sandboxes import Job
from vpd_core.config import load_params
from vpd_core.data.benchmarks import minicode
from vpd_core.data.registry import embedded_path, read_source
from vpd_core.data.schema import DataError
from vpd_core.loop import load_problems


@pytest.fixture(scope="module")
def generated():
    return minicode.generate()


def test_generator_is_deterministic_and_is_what_is_embedded(generated):
    assert minicode.generate() == generated
    for split, rows in generated.items():
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
        assert embedded_path("minicode", split).read_text() == text, f"rebuild with data/embedded/build.py ({split})"


def test_split_sizes_and_no_shared_questions(generated):
    train, test = generated["train"], generated["test"]
    assert len(test) == minicode.HELD_OUT >= 100 and len(train) >= 200
    assert not {r["question"] for r in train} & {r["question"] for r in test}
    assert len({r["id"] for r in train + test}) == len(train) + len(test)
    assert {r["category"] for r in test} == {"numbers", "strings", "lists"}


def test_problems_load_through_the_params(tmp_path):
    p = load_params("params.yaml", ["data.source=minicode", f"run_dir={tmp_path}"])
    train, test = load_problems(p, "train"), load_problems(p, "test")
    assert (len(train), len(test)) == (16, 120)  # params.yaml's training pool (data.train_problems)
    everything = load_problems(load_params("params.yaml", ["data.train_problems=null", f"run_dir={tmp_path}"]), "train")
    assert len(everything) == 210 and {p.id for p in train} <= {p.id for p in everything}
    prob = test[0]
    assert prob.source == "minicode" and prob.fn_name and len(prob.tests) == 6 and prob.train_tests == prob.tests[:3]
    assert prob.messages[-1]["content"].startswith("Write a function") and f"def {prob.fn_name}(" in prob.messages[-1]["content"]


def test_every_reference_passes_and_every_wrong_variant_fails(sandbox, generated):
    records = generated["train"] + generated["test"]
    if sandbox.backend == "bwrap":  # every record on Docker (5 s); a seeded 60 on bubblewrap (50 s for all)
        records = random.Random(0).sample(records, 60)
    jobs = []
    for r in records:  # the reference on all tests; the wrong variant on all tests and on the training tests
        jobs += [Job(code=r["reference"], tests=r["tests"], fn_name=r["fn_name"], time_limit_s=2.0),
                 Job(code=r["wrong"], tests=r["tests"], fn_name=r["fn_name"], time_limit_s=2.0),
                 Job(code=r["wrong"], tests=r["tests"][: r["train_tests"]], fn_name=r["fn_name"], time_limit_s=2.0)]
    results = sandbox.run_batch(jobs)
    for k, r in enumerate(records):
        right, wrong, wrong_on_train = results[3 * k : 3 * k + 3]
        assert right.passed, (r["id"], [t.status for t in right.tests])
        assert not wrong.passed and not wrong_on_train.passed, r["id"]


@pytest.mark.parametrize("field, value, message", [
    ("tests", 3, "tests: expected list"),
    ("train_tests", 0, "train_tests: expected 1..6"),
    ("fn_name", None, "fn_name: expected str"),
    ("tests", [{"input": 1, "output": "2"}], r"tests\[0\]: expected an object"),
])
def test_malformed_records_name_the_field(tmp_path, generated, field, value, message):
    rec = dict(generated["test"][0], **{field: value})
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(rec) + "\n")
    with pytest.raises(DataError, match=message):
        read_source("minicode", path)
    assert read_source("minicode", path, on_error="skip").skipped
