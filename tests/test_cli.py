"""The `vpd` command end to end on the tiny model: train, resume, and bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def vpd(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "vpd.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_bad_override_exits_2_naming_the_key():
    r = vpd("params", "--set", "distill.alpha=2")
    assert r.returncode == 2
    assert "distill.alpha" in r.stderr and "less than or equal to 1" in r.stderr


def test_unknown_key_in_params_file(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("vpd:\n  e_evry: 3\n")
    r = vpd("train", "--params", str(f))
    assert r.returncode == 2 and f"{f}: unknown key 'vpd.e_evry'" in r.stderr


def test_missing_model_dir_exits_2(tmp_path):
    r = vpd("train", "--set", f"model.path={tmp_path / 'nope'}", "--set", f"run_dir={tmp_path / 'run'}")
    assert r.returncode == 2 and "not a Hugging Face model directory" in r.stderr
    assert not (tmp_path / "run").exists()


def test_train_then_resume(tiny_dir, tmp_path):
    common = ["--set", f"model.path={tiny_dir}", "--set", f"run_dir={tmp_path / 'run'}", "--set", "vpd.e_every=2",
              "--set", "rollout.max_new_tokens=8", "--set", "optim.lr=1e-3"]
    r = vpd("train", "--no-prefect", *common, "--set", "train.steps=2")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [x["train/step"] for x in rows] == [1.0, 2.0]
    assert "estep/loss" in rows[1] and "estep/loss" not in rows[0]
    r = vpd("train", "--no-prefect", *common, "--set", "train.steps=3")
    assert r.returncode == 0, r.stderr
    assert "resumed from" in r.stdout and "step-000002" in r.stdout
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [x["train/step"] for x in rows] == [1.0, 2.0, 3.0]
    assert (tmp_path / "run" / "checkpoints" / "step-000003" / "model" / "config.json").is_file()


def test_train_and_evaluate_without_prefect_import_no_orchestration(tiny_params, tmp_path):
    # `vpd train/evaluate --no-prefect` (and the torchrun children, which run vpd_core.train_main)
    # own a run with the core alone: no Prefect, DVC or orchestration-layer module gets imported
    code = ("import sys; from vpd.cli import main; p = sys.argv[1]; "
            "rc = main(['train', '--no-prefect', '--params', p]) or main(['evaluate', '--no-prefect', '--params', p]); "
            "bad = sorted({m.split('.')[0] for m in sys.modules} & {'prefect', 'dvc', 'flows', 'tasks'}); "
            "print('imported:', bad); sys.exit(rc or bool(bad))")
    r = subprocess.run([sys.executable, "-c", code, str(tiny_params)], cwd=tmp_path, capture_output=True, text=True,
                       timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0 and "imported: []" in r.stdout, r.stdout[-2000:] + r.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "eval" / "final" / "metrics.json").read_text())
    assert metrics["problems"] > 0 and 0 <= metrics["pass@1"] <= 1 and "step-000002" in metrics["checkpoint"]
    assert json.loads(r.stdout.splitlines()[-2]) == metrics  # the CLI prints what it wrote


@pytest.mark.slow
def test_console_is_quiet_unless_verbose(tiny_params, tmp_path):
    """Per-task "Finished in state Completed()" lines and model-loading bars only with --verbose;
    a flow still says that it finished."""
    import os

    outputs = {}
    for mode in ("quiet", "verbose"):
        cwd = tmp_path / mode  # own Prefect home and base-evaluation cache
        cwd.mkdir()
        r = subprocess.run([sys.executable, "-m", "vpd.cli", "evaluate", "--params", str(tiny_params), "--checkpoint",
                            "base", *(["--verbose"] if mode == "verbose" else [])], cwd=cwd, capture_output=True,
                           text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"})
        assert r.returncode == 0, r.stderr[-3000:]
        outputs[mode] = r.stdout + r.stderr
    assert "Finished in state Completed()" not in outputs["quiet"] and "Loading weights" not in outputs["quiet"]
    assert "evaluate: finished" in outputs["quiet"]
    assert "Finished in state Completed()" in outputs["verbose"]
