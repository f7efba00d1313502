"""Comparing runs: confidence intervals checked by hand, quarters, flips, time shares, `vpd compare`."""

import json
import math

import pandas as pd
import pytest

from vpd_core import compare
from vpd_core.fileio import write_jsonl_atomic


def test_mean_ci_matches_the_t_interval_by_hand():
    m, h = compare.mean_ci([0.2, 0.4, 0.6])
    sd = math.sqrt(((0.2 - 0.4) ** 2 + 0 + (0.6 - 0.4) ** 2) / 2)
    assert m == pytest.approx(0.4) and h == pytest.approx(4.303 * sd / math.sqrt(3))
    assert math.isnan(compare.mean_ci([0.5])[1]) and compare.mean_ci([0.5])[0] == 0.5
    assert compare.mean_ci([0.1] * 40)[1] == pytest.approx(0.0)


def test_quarters():
    assert compare.quarter_means([0, 0, 1, 1, 1, 1, 2, 2]) == (0.0, 2.0)
    assert compare.quarter_means([1.0, 3.0]) == (1.0, 3.0)


def fake_run(root, name, seed, rewards, before, after, estep_every=0):
    d = root / name / f"seed{seed}"
    rows = []
    for i, r in enumerate(rewards, 1):
        row = {"train/step": float(i), "reward/mean": r, "time/step": 10.0, "time/rollout": 4.0, "time/execution": 1.0,
               "time/teacher_scoring": 2.0, "time/update": 2.0}
        if estep_every and i % estep_every == 0:
            row["time/estep"] = 1.0
        rows.append(row)
    write_jsonl_atomic(d / "metrics.jsonl", rows)
    for ev, solved in (("base", before), ("final", after)):
        (d / "eval" / ev / "tables").mkdir(parents=True)
        df = pd.DataFrame([{"problem_id": f"p{i}", "sample": 0, "correct": bool(c)} for i, c in enumerate(solved)])
        df.to_parquet(d / "eval" / ev / "tables" / "minicode.parquet")
        (d / "eval" / ev / "metrics.json").write_text(json.dumps({"pass@1": sum(solved) / len(solved)}))
    return {"algorithm": name, "seed": seed, "run_dir": str(d), **compare.run_result(d)}


def test_comparison_files_and_flips(tmp_path):
    runs = [fake_run(tmp_path, "vpd", s, [0.2, 0.3, 0.5, 0.6], [1, 0, 0], [1, 1, s % 2], estep_every=2) for s in (0, 1)]
    runs.append(fake_run(tmp_path, "grpo", 0, [0.2, 0.2, 0.2, 0.3], [1, 0, 0], [0, 0, 0]))
    runs.append({"algorithm": "grpo", "seed": 1, "run_dir": str(tmp_path / "x"), "failed": "RuntimeError: boom"})
    rows = {r["algorithm"]: r for r in compare.summarize_points(runs, ["algorithm"])}
    assert rows["vpd"]["seeds"] == 2 and rows["grpo"]["seeds"] == 1 and rows["grpo"]["failed"] == 1
    assert rows["vpd"]["train reward change"] == pytest.approx(0.6 - 0.2)
    assert rows["vpd"]["pass@1 after"] == pytest.approx((2 / 3 + 1) / 2)
    files = compare.write_comparison(runs, ["algorithm"], tmp_path / "sweep")
    flips = pd.read_csv(files["problems"])
    vpd0 = flips[(flips["algorithm"] == "vpd") & (flips["seed"] == 0)].set_index("problem_id")["flip"].fillna("")
    assert vpd0.to_dict() == {"p0": "", "p1": "fail->pass", "p2": ""}
    grpo = flips[flips["algorithm"] == "grpo"].set_index("problem_id")["flip"].fillna("")
    assert grpo["p0"] == "pass->fail"
    md = files["table_md"].read_text()
    assert "1 (1 failed)" in md and "±" in md and "Time per training step" in md
    times = {r["point"]: r for r in compare.step_times(runs, ["algorithm"])}
    assert times["algorithm=vpd"]["rollouts"] == pytest.approx(0.4)
    assert times["algorithm=vpd"]["E-step"] == pytest.approx(4 / 80)  # 2 E-steps x 2 seeds x 1 s of 80 s
    curves = json.loads(files["curves"].read_text())
    assert {tuple(sorted(r)) for r in curves} == {("point", "reward", "step")}  # the same keys in every row
    assert files["figure"].read_bytes()[:4] == b"\x89PNG"


def test_vpd_compare_rebuilds_a_sweep(tmp_path, capsys):
    from vpd.cli import main

    runs = [fake_run(tmp_path, "vpd", s, [0.1, 0.5], [0, 1], [1, 1]) for s in (0, 1)]
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "runs.json").write_text(json.dumps(runs))
    assert main(["compare", str(tmp_path / "sweep")]) == 0
    assert "| algorithm | seeds |" in capsys.readouterr().out
    assert main(["compare", str(tmp_path / "nowhere")]) == 2
    assert "cannot compare" in capsys.readouterr().err


def test_vpd_compare_merges_sweeps_run_apart(tmp_path, capsys):
    # one experiment split over two processes: VPD seeds 0-1 in one sweep, GRPO seed 0 in another
    from vpd.cli import main

    for name, runs in {"a": [fake_run(tmp_path, "vpd", s, [0.1, 0.5], [0, 1], [1, 1]) for s in (0, 1)],
                       "b": [fake_run(tmp_path, "grpo", 0, [0.2, 0.3], [0, 1], [0, 1])]}.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "runs.json").write_text(json.dumps(runs))
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "all")]) == 0
    merged = json.loads((tmp_path / "all" / "runs.json").read_text())
    assert sorted((r["algorithm"], r["seed"]) for r in merged) == [("grpo", 0), ("vpd", 0), ("vpd", 1)]
    md = (tmp_path / "all" / "comparison.md").read_text()
    assert "| grpo | 1 |" in md and "| vpd | 2 |" in md
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 2  # no --out
    assert "--out" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "a"), "--out", str(tmp_path / "x")]) == 2
    assert "more than one of the merged sweeps" in capsys.readouterr().err


def test_change_paired_by_problem_averages_seeds_then_intervals_over_problems():
    flips = pd.DataFrame({
        "algorithm": ["vpd"] * 6 + ["grpo"] * 2,
        "seed": [0, 0, 0, 1, 1, 1, 0, 0],
        "problem_id": ["a", "b", "c", "a", "b", "c", "a", "b"],
        "solved before": [0.0, 1.0, 0.5, 0.0, 1.0, 0.5, 1.0, 0.0],
        "solved after": [1.0, 1.0, 0.0, 0.5, 0.5, 0.0, 1.0, 1.0],
        "flip": [""] * 8,
    })
    rows = {r["algorithm"]: r for r in compare.paired_by_problem(flips, ["algorithm"])}
    per_problem = [0.75, -0.25, -0.5]  # a: (1 + 0.5) / 2, b: (0 - 0.5) / 2, c: (-0.5 - 0.5) / 2
    m = sum(per_problem) / 3
    sd = math.sqrt(sum((x - m) ** 2 for x in per_problem) / 2)
    assert rows["vpd"]["change"] == pytest.approx(m)
    assert rows["vpd"]["change ±95%"] == pytest.approx(4.303 * sd / math.sqrt(3))
    assert (rows["vpd"]["problems"], rows["vpd"]["seeds"], rows["vpd"]["improved"], rows["vpd"]["worsened"]) == (3, 2, 1, 2)
    assert rows["grpo"]["change"] == pytest.approx(0.5) and rows["grpo"]["improved"] == 1
    md = compare.paired_markdown(list(rows.values()), ["algorithm"])
    assert f"| vpd | 3 | 2 | {m:+.3f} ± {rows['vpd']['change ±95%']:.3f} | 1 | 2 |" in md
