"""Comparing runs: what a sweep (grid points x replicate seeds) reports.

Per grid point, over its seeds: the mean and a 95% confidence interval (Student's t) of held-out
pass@1 before and after training, their difference, the training reward over the last quarter of
steps, the change of training reward from the first to the last quarter, and wall time; learning
curves (mean over seeds with a band); and which held-out problems flipped from fail to pass (and
back). Pure functions over a run directory's files, so a notebook, the sweep flow and
`vpd compare` read runs the same way.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from .fileio import atomic_output, read_jsonl, write_text_atomic

# two-sided 95% Student-t quantiles t_{0.975, df}, df = 1..30 (beyond: the normal 1.96)
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def mean_ci(values: list[float]) -> tuple[float, float]:
    """(mean, half-width of the 95% t-interval); the half-width is nan for a single value."""
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return float("nan"), float("nan")
    m = sum(vals) / len(vals)
    if len(vals) < 2:
        return m, float("nan")
    sd = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1))
    df = len(vals) - 1
    t = _T975[df - 1] if df <= len(_T975) else 1.96
    return m, t * sd / math.sqrt(len(vals))


def quarter_means(series: list[float]) -> tuple[float, float]:
    """Mean of the first and of the last quarter of a per-step series (at least one step each)."""
    if not series:
        return float("nan"), float("nan")
    q = max(1, len(series) // 4)
    return sum(series[:q]) / q, sum(series[-q:]) / q


def eval_metric(run_dir: Path, name: str, key: str = "pass@1") -> float:
    path = run_dir / "eval" / name / "metrics.json"
    return float(json.loads(path.read_text())[key]) if path.exists() else float("nan")


def eval_samples(run_dir: Path, name: str) -> pd.DataFrame | None:
    tables = run_dir / "eval" / name / "tables"
    files = [f for f in tables.glob("*.parquet") if not f.stem.endswith("_summary")] if tables.exists() else []
    return pd.read_parquet(files[0]) if files else None


def run_result(run_dir: str | Path) -> dict:
    """One finished run's numbers: held-out pass@1 before/after, training reward by quarter, wall time."""
    run_dir = Path(run_dir)
    rows = read_jsonl(run_dir / "metrics.jsonl")
    reward = [r["reward/mean"] for r in rows]
    first, last = quarter_means(reward)
    before, after = eval_metric(run_dir, "base"), eval_metric(run_dir, "final")
    return {
        "run_dir": str(run_dir), "steps": len(rows), "pass@1 before": before, "pass@1 after": after,
        "pass@1 change": after - before, "train reward first quarter": first, "train reward last quarter": last,
        "train reward change": last - first, "wall time (s)": sum(r.get("time/step", 0.0) for r in rows),
    }


def run_record(run_dir: str | Path) -> dict:
    """run_result plus what the sweep's figures and tables need, carried in the result itself (a child
    run on another machine returns it; the parent never reads that machine's disk): every step's
    metrics and each held-out problem's solve rate before and after."""
    run_dir = Path(run_dir)
    solved = {}
    for name in ("base", "final"):
        samples = eval_samples(run_dir, name)
        if samples is not None:
            solved[name] = {str(k): float(v) for k, v in samples.groupby("problem_id")["correct"].mean().items()}
    return {**run_result(run_dir), "metrics": read_jsonl(run_dir / "metrics.jsonl"), "solved": solved}


def metrics_rows(r: dict) -> list[dict]:
    """A run's per-step metrics: from its record, else from its run directory."""
    return r["metrics"] if "metrics" in r else read_jsonl(Path(r["run_dir"]) / "metrics.jsonl")


def solve_rates(r: dict, name: str) -> pd.Series | None:
    """problem_id -> solve rate of a run's base or final evaluation: from its record, else its run directory."""
    if "solved" in r:
        return pd.Series(r["solved"][name], dtype=float) if name in r["solved"] else None
    samples = eval_samples(Path(r["run_dir"]), name)
    return None if samples is None else samples.groupby("problem_id")["correct"].mean()


SUMMARY_KEYS = ["pass@1 before", "pass@1 after", "pass@1 change", "train reward last quarter", "train reward change",
                "wall time (s)"]


def summarize_points(results: list[dict], point_keys: list[str]) -> list[dict]:
    """One row per grid point: mean and 95% CI half-width over its seeds for every SUMMARY_KEYS,
    plus the number of seeds (failed runs are counted, not averaged)."""
    points: dict[tuple, list[dict]] = {}
    for r in results:
        points.setdefault(tuple(json.dumps(r[k]) for k in point_keys), []).append(r)
    out = []
    for key, runs in points.items():
        ok = [r for r in runs if not r.get("failed")]
        row = {k: json.loads(v) for k, v in zip(point_keys, key)}
        row["seeds"] = len(ok)
        row["failed"] = len(runs) - len(ok)
        for k in SUMMARY_KEYS:
            m, h = mean_ci([r[k] for r in ok if k in r])
            row[k], row[f"{k} ±95%"] = m, h
        out.append(row)
    return out


def markdown_table(rows: list[dict], point_keys: list[str]) -> str:
    def cell(row, k):
        m, h = row[k], row.get(f"{k} ±95%")
        if isinstance(m, float) and math.isnan(m):
            return "–"
        if k == "wall time (s)":
            return f"{m:.0f}" + ("" if h is None or math.isnan(h) else f" ± {h:.0f}")
        return f"{m:.3f}" + ("" if h is None or math.isnan(h) else f" ± {h:.3f}")

    head = point_keys + ["seeds", *SUMMARY_KEYS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        seeds = f"{r['seeds']}" + (f" ({r['failed']} failed)" if r["failed"] else "")
        lines.append("| " + " | ".join([*(str(r[k]) for k in point_keys), seeds, *(cell(r, k) for k in SUMMARY_KEYS)]) + " |")
    return "\n".join(lines) + "\n\nmean ± half-width of the 95% Student-t interval over seeds\n"


def curves_by_point(results: list[dict], point_keys: list[str], key: str = "reward/mean") -> dict[str, pd.DataFrame]:
    """label -> DataFrame indexed by step with columns mean, lo, hi (min/max over seeds) of `key`."""
    out = {}
    points: dict[str, list[dict]] = {}
    for r in results:
        if r.get("failed"):
            continue
        points.setdefault(point_label(r, point_keys), []).append(r)
    for label, runs in points.items():
        series = []
        for r in runs:
            rows = [x for x in metrics_rows(r) if key in x]
            series.append(pd.Series({int(x["train/step"]): x[key] for x in rows}))
        if series:
            df = pd.concat(series, axis=1)
            out[label] = pd.DataFrame({"mean": df.mean(axis=1), "lo": df.min(axis=1), "hi": df.max(axis=1)})
    return out


def smooth(s: pd.Series, window: int) -> pd.Series:
    return s.rolling(window, min_periods=1, center=True).mean() if window > 1 else s


def learning_curves_png(results: list[dict], point_keys: list[str], path: str | Path,
                        keys: tuple[str, ...] = ("reward/mean", "teacher/gap"), window: int = 3) -> Path:
    """One figure: a panel per metric, a line per grid point (mean over seeds, running mean over
    `window` steps) with a band from the lowest to the highest seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    panels = [k for k in keys if curves_by_point(results, point_keys, k)]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(6 * max(1, len(panels)), 3.8), squeeze=False)
    for ax, key in zip(axes[0], panels):
        for label, df in curves_by_point(results, point_keys, key).items():
            line, = ax.plot(df.index, smooth(df["mean"], window), label=label, marker="." if len(df) < 40 else None)
            ax.fill_between(df.index, smooth(df["lo"], window), smooth(df["hi"], window), alpha=0.15, color=line.get_color())
        ax.set_title(f"{key} (mean over seeds, band: min–max; running mean of {window})")
        ax.set_xlabel("training step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def problem_flips(results: list[dict], point_keys: list[str]) -> pd.DataFrame:
    """Per (grid point, seed, held-out problem): solve rate before and after, and whether it flipped."""
    frames = []
    for r in results:
        if r.get("failed"):
            continue
        before, after = solve_rates(r, "base"), solve_rates(r, "final")
        if before is None or after is None:
            continue
        df = pd.concat([before.rename("solved before"), after.rename("solved after")], axis=1)
        df = df.rename_axis("problem_id").reset_index()
        for k in point_keys:
            df[k] = str(r[k])
        df["seed"] = r["seed"]
        df["flip"] = ["fail->pass" if x == 0 and y > 0 else "pass->fail" if x > 0 and y == 0 else ""
                      for x, y in zip(df["solved before"], df["solved after"])]
        frames.append(df)
    cols = [*point_keys, "seed", "problem_id", "solved before", "solved after", "flip"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


def paired_by_problem(flips: pd.DataFrame, point_keys: list[str]) -> list[dict]:
    """Held-out pass@1 change per grid point, paired by problem: each problem's change averaged over
    the seeds, then the mean and 95% t-interval over problems. The interval over seeds (n = seeds)
    asks whether training reliably helps; this one (n = problems) asks whether the change holds
    across held-out problems for these trained models: a tighter, different question."""
    out = []
    if flips.empty:
        return out
    flips = flips.assign(change=flips["solved after"] - flips["solved before"])
    for key, df in flips.groupby(point_keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        per_problem = df.groupby("problem_id")["change"].mean()
        m, h = mean_ci(per_problem.tolist())
        out.append({**dict(zip(point_keys, key)), "problems": len(per_problem), "seeds": df["seed"].nunique(),
                    "change": m, "change ±95%": h, "improved": int((per_problem > 0).sum()),
                    "worsened": int((per_problem < 0).sum())})
    return out


def paired_markdown(rows: list[dict], point_keys: list[str]) -> str:
    head = [*point_keys, "problems", "seeds", "pass@1 change (± 95%, over problems)", "problems improved",
            "problems worsened"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join([*(str(r[k]) for k in point_keys), str(r["problems"]), str(r["seeds"]),
                                        f"{r['change']:+.3f} ± {r['change ±95%']:.3f}", str(r["improved"]),
                                        str(r["worsened"])]) + " |")
    return "\n".join(lines) + "\n"


RESULT_KEYS = {"seed", "run_dir", "failed", "steps", *SUMMARY_KEYS, "train reward first quarter", "metrics", "solved",
               "report", "flow_run"}


def recompare(sweep_dirs: list[str | Path], out: str | Path | None = None) -> dict[str, Path]:
    """Rebuild a sweep's comparison from its runs.json (e.g. after changing the code), or merge
    several sweeps' runs into one comparison in `out` (an experiment split over machines or
    sessions: one sweep per algorithm or per seed). Merged sweeps must vary the same grid keys,
    and a (grid point, seed) may come from one of them only."""
    dirs = [Path(d) for d in sweep_dirs]
    if not dirs:
        raise ValueError("no sweep directory given")
    if len(dirs) > 1 and out is None:
        raise ValueError("merging several sweeps needs an output directory")
    runs: list[dict] = []
    keys: list[str] | None = None
    for d in dirs:
        rows = json.loads((d / "runs.json").read_text())
        if not rows:
            raise ValueError(f"{d / 'runs.json'}: no runs")
        mine = [k for k in rows[0] if k not in RESULT_KEYS]
        if keys is not None and sorted(mine) != sorted(keys):
            raise ValueError(f"{d / 'runs.json'}: grid keys {mine} differ from {keys} of {dirs[0] / 'runs.json'}")
        keys = mine
        runs += rows
    seen: set[str] = set()
    for r in runs:
        ident = json.dumps({k: r[k] for k in [*keys, "seed"]}, sort_keys=True)
        if ident in seen:
            raise ValueError(f"run {ident} appears in more than one of the merged sweeps")
        seen.add(ident)
    return write_comparison(runs, keys, Path(out) if out is not None else dirs[0])  # with the merged runs.json


PHASES = {"rollouts": ("time/rollout",), "execution (sandbox)": ("time/execution",),
          "M-step (teacher scoring + update)": ("time/teacher_scoring", "time/update"), "E-step": ("time/estep",),
          "critiques": ("time/critique",)}


def point_label(result: dict, point_keys: list[str], unnamed: str = "") -> str:
    """A grid point's name in tables ("algorithm=vpd, optim.lr=1e-05"); `unnamed` without grid keys."""
    return ", ".join(f"{k}={result[k]}" for k in point_keys) or unnamed


def step_times(results: list[dict], point_keys: list[str], unnamed: str = "") -> list[dict]:
    """Per grid point: mean seconds per training step and the share of each phase (over all seeds'
    steps; the E-step's cost is spread over the steps, as it runs every F of them)."""
    points: dict[str, list[dict]] = {}
    for r in results:
        if not r.get("failed"):
            points.setdefault(point_label(r, point_keys, unnamed), []).extend(metrics_rows(r))
    out = []
    for label, rows in points.items():
        total = sum(x.get("time/step", 0.0) for x in rows)
        row = {"point": label, "steps": len(rows), "seconds per step": total / max(len(rows), 1)}
        for phase, keys in PHASES.items():
            row[phase] = sum(x.get(k, 0.0) for x in rows for k in keys) / max(total, 1e-9)
        row["other"] = 1.0 - sum(row[p] for p in PHASES)
        out.append(row)
    return out


def step_times_markdown(rows: list[dict]) -> str:
    if not rows:
        return ""
    cols = ["seconds per step", *PHASES, "other"]
    lines = ["| point | steps | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 2)]
    for r in rows:
        cells = [f"{r['seconds per step']:.1f}", *(f"{100 * r[c]:.0f}%" for c in cols[1:])]
        lines.append(f"| {r['point']} | {r['steps']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def diagnostics_markdown(results: list[dict], point_keys: list[str], unnamed: str = "") -> str:
    """Teacher diagnostics per grid point and measured step: student and teacher pass rate and
    their gap, mean over seeds (empty when no run measured them)."""
    acc: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for r in results:
        if r.get("failed"):
            continue
        label = point_label(r, point_keys, unnamed)
        for x in metrics_rows(r):
            if "teacher/pass_rate" in x:
                acc.setdefault((label, int(x["diagnostics/at_step"])), []).append(
                    (x["student/pass_rate"], x["teacher/pass_rate"]))
    if not acc:
        return ""
    lines = ["| point | at step | runs | student pass rate | teacher pass rate | gap (± 95%) |", "|---|---|---|---|---|---|"]
    for (label, step), vals in sorted(acc.items()):
        s, _ = mean_ci([v[0] for v in vals])
        t, _ = mean_ci([v[1] for v in vals])
        g, h = mean_ci([v[1] - v[0] for v in vals])
        gap = f"{g:+.3f}" + ("" if math.isnan(h) else f" ± {h:.3f}")
        lines.append(f"| {label} | {step} | {len(vals)} | {s:.3f} | {t:.3f} | {gap} |")
    return "\n".join(lines) + "\n"


def write_comparison(results: list[dict], point_keys: list[str], out_dir: str | Path) -> dict[str, Path]:
    """comparison.md / .json, per-run results, learning_curves.png and problems.csv under out_dir."""
    out = Path(out_dir)
    rows = summarize_points(results, point_keys)
    md = markdown_table(rows, point_keys) + "\n### Time per training step\n\n" + step_times_markdown(
        step_times(results, point_keys))
    diag = diagnostics_markdown(results, point_keys)
    if diag:
        md += "\n### Teacher diagnostics (fixed probe set of training problems)\n\n" + diag
    flips = problem_flips(results, point_keys)
    paired = paired_by_problem(flips, point_keys)
    if paired:
        md += "\n### Held-out change paired by problem\n\n" + paired_markdown(paired, point_keys)
    files = {"table_md": out / "comparison.md", "table_json": out / "comparison.json", "runs": out / "runs.json",
             "figure": out / "learning_curves.png", "problems": out / "problems.csv", "curves": out / "curves.json"}
    write_text_atomic(files["table_md"], md)
    write_text_atomic(files["table_json"], json.dumps(rows, indent=1, default=str))
    write_text_atomic(files["runs"], json.dumps(results, indent=1, default=str))
    learning_curves_png(results, point_keys, files["figure"])
    with atomic_output(files["problems"]) as tmp:
        flips.to_csv(tmp, index=False)
    # DVC plots: one row per (point, step), the same keys in every row
    curve_rows = [{"point": label, "step": int(step), "reward": float(v)}
                  for label, df in curves_by_point(results, point_keys).items() for step, v in df["mean"].items()]
    write_text_atomic(files["curves"], json.dumps(curve_rows, indent=1))
    return files
