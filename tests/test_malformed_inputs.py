"""Every malformed input is one `error:` line and exit status 2, never a traceback (issue 17.5).

A corpus of malformed files and flags, fed to every command that reads input: `vpd params`
(and through it every command that loads params), `vpd data inspect` for each source,
`vpd sandbox check` (its problem, its code, its flags) and `vpd model fetch` (a model
directory). Each case asserts exit status 2, exactly one line on stderr starting with
`error:`, and that the line names what is wrong (the file, a field or the flag).
"""

from __future__ import annotations

import base64
import json
import pickle
import zlib

import pytest

from vpd.cli import main
from vpd_core.data.benchmarks.livecodebench import encode_tests

DEEP = 100_000


def lcb(**changes) -> dict:
    rec = {"question_title": "t", "question_content": "Add.", "platform": "atcoder", "question_id": "abc001_a",
           "contest_id": "abc001", "contest_date": "2025-03-01T00:00:00", "starter_code": "", "difficulty": "easy",
           "public_test_cases": json.dumps([{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}]),
           "private_test_cases": encode_tests([{"input": "2 2\n", "output": "4\n", "testtype": "stdin"}]),
           "metadata": "{}"}
    rec.update(changes)
    return rec


def ske(**changes) -> dict:
    rec = {"question": "Which?", "choices": {"text": ["a", "b", "c", "d"], "label": ["A", "B", "C", "D"]},
           "answerKey": "B", "type": "mcq-4-choices", "domain": "Chemistry", "details": {"level": "L3"}}
    rec.update(changes)
    return rec


def minicode(**changes) -> dict:
    from vpd_core.data.registry import embedded_path

    rec = json.loads(embedded_path("minicode", "train").read_text().splitlines()[0])
    rec.update(changes)
    return rec


def math(**changes) -> dict:
    rec = {"problem": "1+1?", "solution": "\\boxed{2}", "answer": "2", "subject": "Algebra", "level": 1,
           "unique_id": "test/algebra/1.json"}
    rec.update(changes)
    return rec


def jsonl(*records) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def pickled_blob(raw_pickle: bytes) -> str:
    return base64.b64encode(zlib.compress(raw_pickle)).decode()


# a pickle whose dict gets a list as key: no globals, still fails (unhashable) at load time
UNHASHABLE = b"\x80\x04}](K\x01e\x88s."
# a pickle nesting lists 100,000 deep (loads iteratively; whatever reads it later must not recurse)
DEEP_PICKLE = b"\x80\x04" + b"]" * DEEP + b"a" * (DEEP - 1) + b"."
ZIP_BOMB = base64.b64encode(zlib.compress(b"\x80\x04X" + (600 << 20).to_bytes(4, "little") + b" " * (600 << 20), 9))
YAML_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
LATIN1 = "seed: 0\nrun_dir: runs/caf\xe9\n".encode("latin-1")
BINARY = bytes(range(256)) * 4

# name: (files {relative path: bytes | str | None (a directory)}, argv with {tmp} for the directory, must-mention)
PARAMS = {
    "params_binary": ({"p.yaml": BINARY}, ["params", "--params", "{tmp}/p.yaml"], "p.yaml"),
    "params_latin1": ({"p.yaml": LATIN1}, ["params", "--params", "{tmp}/p.yaml"], "UTF-8"),
    "params_utf16": ({"p.yaml": "seed: 1\n".encode("utf-16")}, ["params", "--params", "{tmp}/p.yaml"], "p.yaml"),
    "params_yaml_alias_bomb": ({"p.yaml": YAML_BOMB}, ["params", "--params", "{tmp}/p.yaml"], "alias"),
    "params_deep_yaml": ({"p.yaml": "a: " + "[" * DEEP + "]" * DEEP}, ["params", "--params", "{tmp}/p.yaml"], "p.yaml"),
    "params_a_list": ({"p.yaml": "- 1\n- 2\n"}, ["params", "--params", "{tmp}/p.yaml"], "mapping"),
    "params_bad_yaml": ({"p.yaml": "seed: [\n"}, ["params", "--params", "{tmp}/p.yaml"], "YAML"),
    "params_a_directory": ({"p.yaml": None}, ["params", "--params", "{tmp}/p.yaml"], "directory"),
    "params_missing": ({}, ["params", "--params", "{tmp}/nope.yaml"], "nope.yaml"),
    "params_inf_lr": ({"p.yaml": "optim: {lr: .inf}\n"}, ["params", "--params", "{tmp}/p.yaml"], "optim.lr"),
    "params_nan_lr": ({"p.yaml": "optim: {lr: .nan}\n"}, ["params", "--params", "{tmp}/p.yaml"], "optim.lr"),
    "params_negative_lr": ({"p.yaml": "optim: {lr: -1.0e-5}\n"}, ["params", "--params", "{tmp}/p.yaml"], "optim.lr"),
    "params_inf_time_limit": ({"p.yaml": "sandbox: {time_limit_s: .inf}\n"}, ["params", "--params", "{tmp}/p.yaml"],
                              "sandbox.time_limit_s"),
    "params_zero_time_limit": ({"p.yaml": "sandbox: {time_limit_s: 0}\n"}, ["params", "--params", "{tmp}/p.yaml"],
                               "sandbox.time_limit_s"),
    "params_negative_time_limit": ({"p.yaml": "sandbox: {time_limit_s: -1}\n"}, ["params", "--params", "{tmp}/p.yaml"],
                                   "sandbox.time_limit_s"),
    "params_beta_of_one": ({"p.yaml": "optim: {betas: [0.9, 1.0]}\n"}, ["params", "--params", "{tmp}/p.yaml"],
                           "optim.betas"),
    "params_negative_beta": ({"p.yaml": "optim: {betas: [-0.1, 0.99]}\n"}, ["params", "--params", "{tmp}/p.yaml"],
                             "optim.betas"),
    "params_huge_seed": ({"p.yaml": f"seed: {2**64}\n"}, ["params", "--params", "{tmp}/p.yaml"], "seed"),
    "params_negative_seed": ({"p.yaml": "seed: -1\n"}, ["params", "--params", "{tmp}/p.yaml"], "seed"),
    "params_steps_a_string": ({"p.yaml": "train: {steps: many}\n"}, ["params", "--params", "{tmp}/p.yaml"], "train.steps"),
    "params_section_a_number": ({"p.yaml": "train: 3\n"}, ["params", "--params", "{tmp}/p.yaml"], "train"),
    "params_duplicate_key": ({"p.yaml": "seed: 1\nseed: 2\n"}, ["params", "--params", "{tmp}/p.yaml"], "seed"),
    "set_inf_lr": ({}, ["params", "--params", "params.yaml", "--set", "optim.lr=inf"], "optim.lr"),
    "set_nan_temperature": ({}, ["params", "--params", "params.yaml", "--set", "rollout.temperature=nan"],
                            "rollout.temperature"),
    "set_huge_seed": ({}, ["params", "--params", "params.yaml", "--set", f"seed={2**64}"], "seed"),
    "set_without_equals": ({}, ["params", "--params", "params.yaml", "--set", "optim.lr"], "optim.lr"),
    "set_unknown_key": ({}, ["params", "--params", "params.yaml", "--set", "optim.lrr=1"], "optim.lrr"),
    "set_deep_value": ({}, ["params", "--params", "params.yaml", "--set", "seed=" + "[" * DEEP + "]" * DEEP], "seed"),
    "train_binary_params": ({"p.yaml": BINARY}, ["train", "--no-prefect", "--params", "{tmp}/p.yaml"], "p.yaml"),
    "evaluate_missing_checkpoint": ({}, ["evaluate", "--params", "params.yaml", "--set", "data.source=arithmetic",
                                        "--checkpoint", "{tmp}/step-000009"], "step-000009/model"),
    "evaluate_checkpoint_without_weights": ({"c/model/config.json": "{}"},
                                            ["evaluate", "--params", "params.yaml", "--set", "data.source=arithmetic",
                                             "--checkpoint", "{tmp}/c"], "no weights"),
    "sweep_bad_seeds": ({}, ["sweep", "--params", "params.yaml", "--seeds", "0,x"], "--seeds"),
    "sweep_grid_not_an_object": ({}, ["sweep", "--params", "params.yaml", "--grid", "[1, 2]"], "--grid"),
}

INSPECT = {
    "lcb_binary": ({"d.jsonl": BINARY}, "livecodebench", "d.jsonl"),
    "lcb_latin1": ({"d.jsonl": json.dumps(lcb(question_content="caf\xe9"), ensure_ascii=False).encode("latin-1")},
                   "livecodebench",
                   "d.jsonl"),
    "lcb_utf16": ({"d.jsonl": json.dumps(lcb()).encode("utf-16")}, "livecodebench", "d.jsonl"),
    "lcb_deep_json": ({"d.jsonl": "[" * DEEP + "]" * DEEP + "\n"}, "livecodebench", "d.jsonl:1"),
    "lcb_deep_json_line": ({"d.jsonl": jsonl(lcb()) + b'{"a": ' + b"[" * DEEP + b"]" * DEEP + b"}\n"}, "livecodebench",
                           "d.jsonl:2"),
    "lcb_public_tests_a_number": ({"d.jsonl": jsonl(lcb(public_test_cases=3))}, "livecodebench", "public_test_cases"),
    "lcb_public_tests_null": ({"d.jsonl": jsonl(lcb(public_test_cases=None))}, "livecodebench", "public_test_cases"),
    "lcb_public_tests_a_dict": ({"d.jsonl": jsonl(lcb(public_test_cases=json.dumps({"input": 1})))}, "livecodebench",
                                "public_test_cases"),
    "lcb_testtype_an_integer": ({"d.jsonl": jsonl(lcb(public_test_cases=json.dumps(
        [{"input": "1", "output": "1", "testtype": 1}])))}, "livecodebench", "testtype"),
    "lcb_unhashable_pickle": ({"d.jsonl": jsonl(lcb(private_test_cases=pickled_blob(UNHASHABLE)))}, "livecodebench",
                              "private_test_cases"),
    "lcb_deep_pickle": ({"d.jsonl": jsonl(lcb(private_test_cases=pickled_blob(DEEP_PICKLE)))}, "livecodebench",
                        "private_test_cases"),
    "lcb_decompression_bomb": ({"d.jsonl": jsonl(lcb(private_test_cases=ZIP_BOMB.decode()))}, "livecodebench",
                               "private_test_cases"),
    "lcb_duplicate_ids": ({"d.jsonl": jsonl(lcb(), lcb())}, "livecodebench", "abc001_a"),
    "lcb_platform_a_number": ({"d.jsonl": jsonl(lcb(platform=7))}, "livecodebench", "platform"),
    "lcb_metadata_a_list_string": ({"d.jsonl": jsonl(lcb(metadata="[1, 2]"))}, "livecodebench", "metadata"),
    "lcb_record_a_list": ({"d.jsonl": b"[[1], [2]]"}, "livecodebench", "d.jsonl:1"),
    "lcb_a_directory_without_shards": ({"shards": None}, "livecodebench", "shards"),
    "ske_binary": ({"s.jsonl": BINARY}, "sciknoweval", "s.jsonl"),
    "ske_utf16": ({"s.jsonl": json.dumps(ske()).encode("utf-16")}, "sciknoweval", "s.jsonl"),
    "ske_choices_integers": ({"s.jsonl": jsonl(ske(choices={"text": [1, 2, 3, 4], "label": ["A", "B", "C", "D"]}))},
                             "sciknoweval", "choices"),
    "ske_labels_integers": ({"s.jsonl": jsonl(ske(choices={"text": ["a", "b"], "label": [1, 2]}))}, "sciknoweval",
                            "choices"),
    "ske_type_an_integer": ({"s.jsonl": jsonl(ske(type=4))}, "sciknoweval", "type"),
    "ske_answer_missing": ({"s.jsonl": jsonl({k: v for k, v in ske().items() if k != "answerKey"})}, "sciknoweval",
                           "answerKey"),
    "ske_deep_json": ({"s.jsonl": b'{"question": ' + b"[" * DEEP + b"]" * DEEP + b"}\n"}, "sciknoweval", "s.jsonl:1"),
    "ske_a_directory": ({"s": None}, "sciknoweval", "s"),
    "math_latin1": ({"m.jsonl": json.dumps(math(problem="caf\xe9"), ensure_ascii=False).encode("latin-1")}, "math500",
                    "m.jsonl"),
    "math_binary": ({"m.jsonl": BINARY}, "math500", "m.jsonl"),
    "math_problem_a_number": ({"m.jsonl": jsonl(math(problem=3))}, "math500", "problem"),
    "math_duplicate_ids": ({"m.jsonl": jsonl(math(), math())}, "math500", "test/algebra/1.json"),
    "minicode_utf16": ({"c.jsonl": json.dumps(minicode()).encode("utf-16")}, "minicode", "c.jsonl"),
    "minicode_tests_a_string": ({"c.jsonl": jsonl(minicode(tests="x"))}, "minicode", "tests"),
    "minicode_a_directory": ({"c": None}, "minicode", "c"),
}

GOOD_CODE = "a, b = map(int, input().split())\nprint(a + b)\n"
CHECK = {
    "check_problem_binary": ({"p.json": BINARY}, [], "p.json"),
    "check_problem_latin1": ({"p.json": json.dumps(lcb(question_content="caf\xe9"), ensure_ascii=False).encode("latin-1")},
                             [], "p.json"),
    "check_problem_utf16": ({"p.json": json.dumps(lcb()).encode("utf-16")}, [], "p.json"),
    "check_problem_deep_json": ({"p.json": "[" * DEEP + "]" * DEEP}, [], "p.json"),
    "check_problem_a_list": ({"p.json": "[1, 2]"}, [], "p.json"),
    "check_problem_tests_a_number": ({"p.json": json.dumps(lcb(public_test_cases=5))}, [], "public_test_cases"),
    "check_problem_decompression_bomb": ({"p.json": json.dumps(lcb(private_test_cases=ZIP_BOMB.decode()))}, [],
                                         "private_test_cases"),
    "check_problem_a_directory": ({"p.json": None}, [], "p.json"),
    "check_code_binary": ({"s.py": BINARY}, [], "s.py"),
    "check_code_a_directory": ({"s.py": None}, [], "s.py"),
    "check_time_limit_nan": ({}, ["--time-limit", "nan"], "--time-limit"),
    "check_time_limit_inf": ({}, ["--time-limit", "inf"], "--time-limit"),
    "check_time_limit_zero": ({}, ["--time-limit", "0"], "--time-limit"),
    "check_time_limit_negative": ({}, ["--time-limit", "-1"], "--time-limit"),
    "check_time_limit_text": ({}, ["--time-limit", "soon"], "--time-limit"),
}

MODEL = {
    "model_config_not_json": ({"m/config.json": "{not json", "m/model.safetensors": b"\x08" + b"\x00" * 7 + b"{}"},
                              "config.json"),
    "model_config_binary": ({"m/config.json": BINARY, "m/model.safetensors": b"\x08" + b"\x00" * 7 + b"{}"},
                            "config.json"),
    "model_truncated_weights": ({"m/config.json": "{}", "m/model.safetensors": b"\xff\xff" + b"\x00" * 6 + b'{"a'},
                                "model.safetensors"),
    "model_no_weights": ({"m/config.json": "{}"}, "m"),
    "model_path_a_file": ({"m": "x"}, "m"),
}


def materialise(tmp_path, files):
    for rel, content in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            p.mkdir()
        else:
            p.write_bytes(content.encode() if isinstance(content, str) else content)


def assert_one_error_line(argv, capsys, mention):
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:  # argparse
        code = e.code
    err = capsys.readouterr().err
    lines = err.strip("\n").split("\n")
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, err[-2000:])
    assert mention in lines[0], lines[0]


def test_the_corpus_is_large_enough():
    assert len(PARAMS) + len(INSPECT) + len(CHECK) + len(MODEL) >= 50


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_params_and_flags(name, tmp_path, capsys):
    files, argv, mention = PARAMS[name]
    materialise(tmp_path, files)
    assert_one_error_line([a.replace("{tmp}", str(tmp_path)) for a in argv], capsys, mention)


@pytest.mark.parametrize("name", sorted(INSPECT))
def test_data_inspect(name, tmp_path, capsys):
    files, source, mention = INSPECT[name]
    materialise(tmp_path, files)
    assert_one_error_line(["data", "inspect", str(tmp_path / next(iter(files))), "--source", source], capsys, mention)


@pytest.mark.parametrize("name", sorted(CHECK))
def test_sandbox_check(name, tmp_path, capsys):
    files, flags, mention = CHECK[name]
    materialise(tmp_path, {"p.json": json.dumps(lcb()), "s.py": GOOD_CODE, **files})
    argv = ["sandbox", "check", "--problem", str(tmp_path / "p.json"), "--code", str(tmp_path / "s.py"),
            "--backend", "bwrap", *flags]
    assert_one_error_line(argv, capsys, mention)


@pytest.mark.parametrize("name", sorted(MODEL))
def test_model_directory(name, tmp_path, capsys):
    files, mention = MODEL[name]
    materialise(tmp_path, files)
    assert_one_error_line(["model", "fetch", "--set", f"model.path={tmp_path / 'm'}"], capsys, mention)


def test_a_good_problem_still_grades(tmp_path, capsys):
    """The corpus's base records are valid: each case fails for the one thing it changes."""
    materialise(tmp_path, {"p.json": json.dumps(lcb()), "s.py": GOOD_CODE, "d.jsonl": jsonl(lcb()),
                           "s.jsonl": jsonl(ske()), "m.jsonl": jsonl(math()), "c.jsonl": jsonl(minicode())})
    assert main(["sandbox", "check", "--problem", str(tmp_path / "p.json"), "--code", str(tmp_path / "s.py"),
                 "--backend", "bwrap"]) == 0
    assert json.loads(capsys.readouterr().out)["passed"] is True
    for f, source in [("d.jsonl", "livecodebench"), ("s.jsonl", "sciknoweval"), ("m.jsonl", "math500"),
                      ("c.jsonl", "minicode")]:
        assert main(["data", "inspect", str(tmp_path / f), "--source", source]) == 0, source
        assert json.loads(capsys.readouterr().out)["records"] == 1
    assert pickle.loads(zlib.decompress(base64.b64decode(lcb()["private_test_cases"])))


def test_a_real_model_with_truncated_weights_is_named(tiny_dir, tmp_path, capsys):
    import shutil

    model = tmp_path / "m"
    shutil.copytree(tiny_dir, model)
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert_one_error_line(["model", "fetch", "--set", f"model.path={model}"], capsys, "model.safetensors: truncated")
    shutil.copy(tiny_dir / "model.safetensors", weights)
    assert main(["model", "fetch", "--set", f"model.path={model}"]) == 0  # intact again: accepted


def test_no_sandbox_engine_is_one_line_too(tiny_params, tmp_path, monkeypatch, capsys):
    """Not bad input but a missing service: exit 1, one line naming the backend, no traceback."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    for command in (["train", "--no-prefect"], ["pipeline"], ["sweep", "--seeds", "0,1"]):
        code = main([*command, "--params", str(tiny_params), "--set", "data.source=minicode",
                     "--set", "sandbox.backend=docker", "--set", f"run_dir={tmp_path / 'run'}"])
        captured = capsys.readouterr()
        assert code == 1 and captured.err.startswith("error: sandbox: docker: no engine reachable"), captured
        assert captured.err.count("\n") == 1
    assert not (tmp_path / "run").exists()  # refused before any work
