"""A run's report: `report/report.md` and one self-contained `report/report.html` (figure inlined).

What a reader needs to judge a run without opening other files: the params it changed from the
defaults, the learning curves, held-out pass@1 before and after with the number of problems and
95% intervals, the training reward, entropy and truncation by quarter, the teacher diagnostics,
wall time and peak memory per stage, time per step by phase, and the held-out problems whose
outcome flipped, with a generated program and its feedback.
"""

from __future__ import annotations

import base64
import json
import math
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from .compare import diagnostics_markdown, eval_samples, mean_ci, quarter_means, step_times, step_times_markdown
from .config import Params, changed_keys
from .fileio import atomic_output, read_jsonl, write_text_atomic
from .loop import lookup, plot_rows
from .memory import peak_rss_mb, reset_peak_rss
from .publish import publish_run

STAGES = "stages.json"


# --- wall time and peak memory per stage ---------------------------------------------------------

@contextmanager
def stage(run_dir: str | Path, name: str):
    """Record a stage's wall time and peak memory in <run_dir>/stages.json (merged, atomic)."""
    reset_peak_rss()
    t0 = time.perf_counter()
    yield
    path = Path(run_dir) / STAGES
    stages = json.loads(path.read_text()) if path.exists() else {}
    stages[name] = {"wall_s": round(time.perf_counter() - t0, 1), "peak_rss_mb": round(peak_rss_mb())}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(stages, indent=1) + "\n")


# --- figure --------------------------------------------------------------------------------------

def learning_curves_figure(plots: dict[str, list[dict]], path) -> None:
    """One row of panels from the run's plot files (loop.PLOTS); a panel with no data is left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    panels = [(name, rows) for name, rows in plots.items() if rows]
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(4 * max(len(panels), 1), 3.2), squeeze=False)
    for ax, (name, rows) in zip(axes[0], panels):
        for key in [k for k in rows[0] if k != "step"]:
            ax.plot([r["step"] for r in rows], [r[key] for r in rows], marker="o", label=key)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


def data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(png).read_bytes()).decode()


# --- sections ------------------------------------------------------------------------------------

def _ci(m: float, h: float, signed: bool = False) -> str:
    text = f"{m:+.3f}" if signed else f"{m:.3f}"
    return text + ("" if math.isnan(h) else f" ± {h:.3f}")


def _code(value, width: int = 80) -> str:
    """A JSON value as a markdown table cell: shortened, pipes escaped, fenced with enough backticks."""
    text = json.dumps(value)
    text = (text[: width - 3] + "…") if len(text) > width else text
    fence = "``" if "`" in text else "`"
    return f"{fence} {text.replace('|', chr(92) + '|')} {fence}"


def params_section(params: Params) -> str:
    current, defaults = params.model_dump(mode="json"), Params().model_dump(mode="json")
    keys = changed_keys(defaults, current)
    if not keys:
        return "## Params\n\nAll defaults.\n"

    lines = ["## Params (changed from the code's defaults)\n", "| key | value | default |", "|---|---|---|"]
    lines += [f"| `{k}` | {_code(lookup(current, k))} | {_code(lookup(defaults, k))} |" for k in keys]
    return "\n".join(lines) + "\n"


def per_problem(run_dir: Path) -> pd.DataFrame | None:
    """Held-out solve rate per problem before and after (None without both evaluations)."""
    before, after = eval_samples(run_dir, "base"), eval_samples(run_dir, "final")
    if before is None or after is None:
        return None
    b = before.groupby("problem_id")["correct"].mean().rename("before")
    a = after.groupby("problem_id")["correct"].mean().rename("after")
    return pd.concat([b, a], axis=1).dropna()


def evaluation_section(run_dir: Path) -> str:
    lines = ["## Held-out evaluation\n", "| checkpoint | problems | samples | pass@1 (± 95% over problems) |", "|---|---|---|---|"]
    for name in ("base", "final"):
        df = eval_samples(run_dir, name)
        if df is not None:
            m, h = mean_ci(df.groupby("problem_id")["correct"].mean().tolist())
            lines.append(f"| {name} | {df['problem_id'].nunique()} | {len(df)} | {_ci(m, h)} |")
    table = per_problem(run_dir)
    if table is not None and len(table):
        m, h = mean_ci((table["after"] - table["before"]).tolist())
        up, down = int((table["after"] > table["before"]).sum()), int((table["after"] < table["before"]).sum())
        lines.append(f"\nChange, paired by problem: **{_ci(m, h, signed=True)}** over {len(table)} problems "
                     f"({up} improved, {down} worsened).")
    return "\n".join(lines) + "\n"


def training_section(rows: list[dict]) -> str:
    if not rows:
        return "## Training\n\nNo steps yet.\n"
    lines = ["## Training (first vs last quarter of the steps)\n", "| metric | first quarter | last quarter | change |",
             "|---|---|---|---|"]
    for label, key in [("reward", "reward/mean"), ("problems solved", "reward/problems_solved"),
                       ("student entropy", "student/entropy"), ("responses cut at the length limit", "response/truncated_frac"),
                       ("response length (tokens)", "response/length_mean")]:
        series = [r[key] for r in rows if key in r]
        if series:
            first, last = quarter_means(series)
            lines.append(f"| {label} | {first:.3f} | {last:.3f} | {last - first:+.3f} |")
    return "\n".join(lines) + "\n"


def stages_section(run_dir: Path) -> str:
    path = run_dir / STAGES
    if not path.exists():
        return ""
    stages = json.loads(path.read_text())
    lines = ["## Wall time and peak memory per stage\n", "| stage | wall time (s) | peak memory (MB) |", "|---|---|---|"]
    lines += [f"| {name} | {s['wall_s']:.0f} | {s['peak_rss_mb']:.0f} |" for name, s in stages.items()]
    return "\n".join(lines) + "\n"


def flips_section(run_dir: Path, limit: int = 12) -> str:
    """Problems solved in no sample before and some after (and back), with a final-model answer."""
    table, after = per_problem(run_dir), eval_samples(run_dir, "final")
    if table is None or after is None:
        return ""
    gained = table[(table["before"] == 0) & (table["after"] > 0)].index.tolist()
    lost = table[(table["before"] > 0) & (table["after"] == 0)].index.tolist()
    lines = [f"## Held-out problems that flipped\n\n{len(gained)} fail → pass, {len(lost)} pass → fail "
             f"(solved in no sample ↔ in at least one).\n"]
    has_text = "response" in after.columns
    for title, ids in (("fail → pass", gained), ("pass → fail", lost)):
        for pid in ids[:limit]:
            sample = after[after["problem_id"] == pid].sort_values("correct", ascending=(title == "pass → fail")).iloc[0]
            lines.append(f"<details><summary>{title}: <code>{pid}</code> "
                         f"({table.loc[pid, 'before']:.2f} → {table.loc[pid, 'after']:.2f})</summary>\n")
            if has_text:
                lines.append(f"\n```\n{str(sample['response']).strip()}\n```\n")
                if sample.get("feedback"):
                    lines.append(f"Feedback: {str(sample['feedback'])[:600]}\n")
            lines.append("</details>\n")
        if len(ids) > limit:
            lines.append(f"… and {len(ids) - limit} more {title} (`eval/*/tables/*.parquet`).\n")
    return "\n".join(lines) + "\n"


# --- the report ----------------------------------------------------------------------------------

HTML = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px}}img{{max-width:100%}}
pre{{background:#f6f6f6;padding:8px;overflow:auto}}</style></head><body>
{body}
</body></html>
"""


def write_report(run_dir: str | Path, params: Params) -> dict[str, Path]:
    """report.md (figure as a file beside it), report.html (everything inlined) and the figure."""
    import markdown

    run_dir = Path(run_dir)
    out = run_dir / "report"
    rows = read_jsonl(run_dir / "metrics.jsonl") if (run_dir / "metrics.jsonl").exists() else []
    png = out / "learning_curves.png"
    with atomic_output(png) as tmp:
        learning_curves_figure(plot_rows(rows), tmp)
    single = [{"run_dir": str(run_dir)}]
    times = step_times(single, [], unnamed="this run") if rows else []
    diagnostics = diagnostics_markdown(single, [], unnamed="this run") if rows else ""
    sections = [
        f"# Run report: `{run_dir}`\n\nalgorithm **{params.algorithm}**, {len(rows)} of {params.train.steps} steps, "
        f"model `{params.model.path}`, data `{params.data.source}`, seed {params.seed}\n",
        "![learning curves](learning_curves.png)\n",
        evaluation_section(run_dir),
        training_section(rows),
        "## Teacher diagnostics (probe set)\n\n" + diagnostics if diagnostics else "",
        stages_section(run_dir),
        "## Time per training step\n\n" + step_times_markdown(times) if times else "",
        flips_section(run_dir),
        params_section(params),
    ]
    text = "\n".join(s for s in sections if s)
    files = {"markdown": out / "report.md", "html": out / "report.html", "figure": png}
    write_text_atomic(files["markdown"], text)
    body = markdown.markdown(text.replace("(learning_curves.png)", f"({data_uri(png)})"),
                             extensions=["tables", "fenced_code"])
    write_text_atomic(files["html"], HTML.format(title=f"Run report: {run_dir.name}", body=body))
    publish_run(params)
    return files


def inline_figure(text: str, png: Path) -> str:
    """The markdown with its figure as a data URI (for viewers that cannot open files, e.g. the UI)."""
    return text.replace(f"({png.name})", f"({data_uri(png)})")

