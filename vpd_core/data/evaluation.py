"""Scores per sample -> mean@k, unbiased pass@k, breakdowns, tables (parquet + markdown).

One results file per (checkpoint, benchmark): `<out>/<benchmark>.parquet` with one
row per (problem, sample), plus `<benchmark>_summary.parquet` and `.md`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..fileio import atomic_output, write_text_atomic


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimator 1 - C(n-c, k) / C(n, k), computed stably (LiveCodeBench's pass_k_utils)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def summarize(samples: pd.DataFrame, ks: list[int] | None = None, by: list[str] = ()) -> pd.DataFrame:
    """samples: one row per (problem_id, sample) with a boolean `correct` and group columns.

    Returns one row per group (or one overall row): problems, samples per problem, mean@k
    (= the mean of per-problem c/n, i.e. pass@1) and pass@k for every k <= the smallest n.
    """
    per_problem = samples.groupby(["problem_id", *by], dropna=False).agg(n=("correct", "size"), c=("correct", "sum")).reset_index()
    n_min = int(per_problem["n"].min())
    ks = [k for k in (ks or [1, 2, 4, 8, 16, 32, 64]) if k <= n_min]

    def row(g: pd.DataFrame) -> dict:
        out = {"problems": len(g), "samples": int(g["n"].sum()), f"mean@{n_min}": float((g["c"] / g["n"]).mean())}
        for k in ks:
            out[f"pass@{k}"] = float(np.mean([pass_at_k(int(n), int(c), k) for n, c in zip(g["n"], g["c"])]))
        return out

    if not by:
        return pd.DataFrame([row(per_problem)])
    rows = [{**dict(zip(by, key if isinstance(key, tuple) else (key,))), **row(g)}
            for key, g in per_problem.groupby(list(by), dropna=False)]
    return pd.DataFrame(rows)


def to_markdown(df: pd.DataFrame) -> str:
    def fmt(v):
        return f"{v:.4f}" if isinstance(v, float) and not math.isnan(v) else str(v)

    head = "| " + " | ".join(map(str, df.columns)) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(fmt(v) for v in r) + " |" for r in df.itertuples(index=False)]
    return "\n".join([head, sep, *body]) + "\n"


def _write_parquet_atomic(df: pd.DataFrame, path: Path) -> None:
    with atomic_output(path) as tmp:
        df.to_parquet(tmp, index=False)


def write_results(samples: pd.DataFrame, out_dir: str | Path, benchmark: str, groups: list[str] = ()) -> dict[str, pd.DataFrame]:
    """Write per-sample scores and summary tables for one (checkpoint, benchmark)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = {"overall": summarize(samples)}
    for g in groups:
        if g in samples and samples[g].notna().any():
            tables[f"by_{g}"] = summarize(samples, by=[g])
    _write_parquet_atomic(samples, out / f"{benchmark}.parquet")
    summary = pd.concat([t.assign(table=name) for name, t in tables.items()], ignore_index=True)
    _write_parquet_atomic(summary, out / f"{benchmark}_summary.parquet")
    md = "".join(f"## {benchmark}: {name}\n\n{to_markdown(t)}\n" for name, t in tables.items())
    write_text_atomic(out / f"{benchmark}.md", md)
    return tables
