"""`dvc repro` of dvc.yaml in a temporary git repository: full run, no-op, partial re-run; experiments,
the remote and the queue (slow)."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import write_tiny_params

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def sh(cmd, cwd, env):
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"{cmd}: {r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout + r.stderr


@pytest.fixture(scope="module")
def reproduced(prefect_backend, tiny_dir, tmp_path_factory):
    """A git + DVC repository with the project's dvc.yaml on the tiny model, after one `dvc repro`:
    (repo, env, the first repro's output)."""
    base = tmp_path_factory.mktemp("dvc")
    tiny_params = write_tiny_params(tiny_dir, base)
    repo = base / "repo"
    repo.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for d in ("vpd_core", "sandboxes", "tasks", "flows", "data/embedded"):
        shutil.copytree(REPO / d, repo / d, ignore=ignore)
    shutil.copy(REPO / "dvc.yaml", repo / "dvc.yaml")
    # the repository's layout: params.yaml names prompts.yaml, which holds the templates
    templates = yaml.safe_load((REPO / "prompts.yaml").read_text())
    raw = without(yaml.safe_load(tiny_params.read_text()), templates)
    raw = {"templates": "prompts.yaml", **raw, "run_dir": "run"}
    shutil.copy(REPO / "prompts.yaml", repo / "prompts.yaml")
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "HF_HUB_OFFLINE": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    sh(["git", "init", "-q"], repo, env)
    sh(["dvc", "init", "-q"], repo, env)
    shutil.copy(REPO / ".dvc" / "config", repo / ".dvc" / "config")  # as a clone has it, with `make setup`'s page
    shutil.copytree(REPO / ".dvc" / "plots", repo / ".dvc" / "plots")
    (repo / ".gitignore").write_text("/run/\n/.dvc-remote/\n")  # as the repository: results reach git through DVC
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "init"], repo, env)
    return repo, env, sh(["dvc", "repro"], repo, env)


def test_dvc_repro_then_noop_then_only_downstream(reproduced):
    repo, env, first = reproduced
    for stage in ("model", "prepare", "train", "evaluate", "report"):
        assert f"Running stage '{stage}'" in first
    assert (repo / "run" / "report" / "report.md").exists()
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert set(lock["stages"]) == {"model", "prepare", "train", "evaluate", "report"}
    # DVC caches the exported weights, not the resumable checkpoints with their optimizer state
    assert (repo / "run" / "final" / "model" / "model.safetensors").is_file()
    cached = sum(f.stat().st_size for f in (repo / ".dvc" / "cache").rglob("*") if f.is_file())
    checkpoints = sum(f.stat().st_size for f in (repo / "run" / "checkpoints").rglob("*") if f.is_file())
    weights = (repo / "run" / "final" / "model" / "model.safetensors").stat().st_size
    assert weights <= cached < checkpoints, (weights, cached, checkpoints)

    second = sh(["dvc", "repro"], repo, env)
    assert "Running stage" not in second and "up to date" in second

    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["eval"]["samples"] = 3
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    third = sh(["dvc", "repro"], repo, env)
    assert "Running stage 'evaluate'" in third and "Running stage 'report'" in third
    for stage in ("model", "prepare", "train"):
        assert f"Running stage '{stage}'" not in third

    metrics = sh(["dvc", "metrics", "show", "--json"], repo, env)
    assert "pass@1" in metrics

    # every plot dvc.yaml defines renders without an error; the ones this algorithm fills have data
    plots = subprocess.run(["dvc", "plots", "show", "--json"], cwd=repo, env=env, capture_output=True, text=True)
    assert plots.returncode == 0 and "WARNING" not in plots.stderr, plots.stderr
    shown = json.loads(plots.stdout)
    assert not shown.get("errors"), shown.get("errors")
    drawn = {name: specs[0]["content"]["data"]["values"] for name, specs in shown["data"].items() if specs}
    assert {"training reward", "E-step preference accuracy"} <= set(drawn)
    assert all(values for values in drawn.values())
    assert_plots_draw_offline(repo, env, expected=len(drawn))


@pytest.mark.slow
def test_dvc_experiments_remote_and_queue(reproduced):
    """Variants as DVC experiments (run and queued with two workers), their metrics in the table,
    and the default remote. `make test-slow` (CI runs it); ~4 min on 2 cores."""
    repo, env, _ = reproduced
    weights = (repo / "run" / "final" / "model" / "model.safetensors").stat().st_size
    # a variant as a DVC experiment: only the stages downstream of the changed param run
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "repro"], repo, env)
    exp = sh(["dvc", "exp", "run", "-S", "eval.samples=4"], repo, env)
    assert "Running stage 'evaluate'" in exp and "Running stage 'train'" not in exp
    assert "eval.samples" in sh(["dvc", "exp", "show", "--md"], repo, env)
    columns = sh(["dvc", "exp", "show", "--csv"], repo, env).splitlines()[0].split(",")
    templated = [c for c in columns if c.startswith(("prompts.", "teacher.template", "feedback.critique.template"))]
    assert templated == ["prompts.yaml"], templated  # one dependency column, not a column per template
    final = yaml.safe_load((repo / "run" / "eval" / "final" / "metrics.json").read_text())
    assert final["samples"] == 4 * final["problems"]
    diff = json.loads(sh(["dvc", "metrics", "diff", "--json", "HEAD"], repo, env))
    assert diff["run/eval/final/metrics.json"]["samples"]["new"] == 4 * final["problems"]
    assert experiment_samples(repo, env) == {4 * final["problems"]}  # its metrics travel in the DVC cache

    # the default remote (a local directory beside .dvc/) takes the cache; a clone's cache comes back from it
    sh(["dvc", "push"], repo, env)
    assert any((repo / ".dvc-remote").rglob("*"))
    shutil.rmtree(repo / ".dvc" / "cache")
    shutil.rmtree(repo / "run" / "final")
    sh(["dvc", "pull"], repo, env)
    assert (repo / "run" / "final" / "model" / "model.safetensors").stat().st_size == weights

    # variants through DVC's queue, two workers; every experiment's metrics are in the table
    # (they travel in the DVC cache)
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "experiments"], repo, env)
    for samples in (2, 3):
        sh(["dvc", "exp", "run", "--queue", "-S", f"eval.samples={samples}"], repo, env)
    sh(["dvc", "queue", "start", "-j", "2"], repo, env)
    deadline = time.time() + 600
    while time.time() < deadline:
        status = sh(["dvc", "queue", "status"], repo, env)
        if not re.search(r"\b(Queued|Running)\b", status):
            break
        time.sleep(3)
    assert status.count("Success") >= 2 and "Failed" not in status, status
    assert {2 * final["problems"], 3 * final["problems"]} <= experiment_samples(repo, env)


def experiment_samples(repo, env) -> set:
    """eval samples of every experiment on the current commit, from `dvc exp show`'s metrics."""
    table = json.loads(subprocess.run(["dvc", "exp", "show", "--json"], cwd=repo, env=env, capture_output=True,
                                      text=True).stdout)
    return {e["revs"][0]["data"]["metrics"]["run/eval/final/metrics.json"]["data"]["samples"]
            for commit in table for e in (commit.get("experiments") or []) if e["revs"][0]["data"].get("metrics")}


def without(raw: dict, templates: dict) -> dict:
    """raw minus every key that the templates file sets (and the sections that leaves empty)."""
    out = {}
    for key, value in raw.items():
        if isinstance(value, dict) and isinstance(templates.get(key), dict):
            if rest := without(value, templates[key]):
                out[key] = rest
        elif key not in templates:
            out[key] = value
    return out


def assert_plots_draw_offline(repo, env, expected):
    """`dvc plots show` writes a page that draws in headless Chromium with no network: vega is
    inlined by scripts/dvc-plots-offline.sh (the CDN tags DVC would add are not in the page)."""
    sh(["dvc", "plots", "show", "-o", "plots-html"], repo, env)
    page = repo / "plots-html" / "index.html"
    assert "cdn.jsdelivr" not in page.read_text()
    chromium = shutil.which("chromium")
    assert chromium, "headless Chromium is needed: scripts/system-deps.sh --test installs it"
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync",
                          f"--user-data-dir={repo / 'chromium-profile'}", "--virtual-time-budget=10000",
                          "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    drawn = re.findall(r'<canvas width="(\d+)" height="(\d+)" class="marks"', dom)
    assert len([1 for w, h in drawn if int(w) > 0 and int(h) > 0]) >= expected, dom[-2000:]
