"""One entry point over the readers: by source name, for a path or the embedded sets."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from .livecodebench import read_livecodebench
from .math500 import read_math500
from .minicode import read_minicode
from .schema import DataError, ReadResult
from .sciknoweval import read_sciknoweval

EMBEDDED = Path(__file__).resolve().parents[2] / "data" / "embedded"
SOURCES = ("livecodebench", "sciknoweval", "math500", "minicode")


def embedded_path(source: str, split: str) -> Path:
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', got '{split}'")
    return EMBEDDED / source / f"{split}.jsonl"


def read_source(source: str, path: str | Path, *, on_error: str = "strict", **kwargs) -> ReadResult:
    if source == "livecodebench":
        return read_livecodebench(path, on_error=on_error, **kwargs)
    if source == "sciknoweval":
        return read_sciknoweval(path, on_error=on_error, **kwargs)
    if source == "math500":
        return read_math500(path, on_error=on_error, **kwargs)
    if source == "minicode":
        return read_minicode(path, on_error=on_error, **kwargs)
    raise DataError(f"unknown source '{source}' (one of {', '.join(SOURCES)})")


def inspect_summary(source: str, result: ReadResult) -> dict:
    """What `vpd data inspect` prints: counts, skipped records, breakdowns."""
    ps = result.problems
    out = {"source": source, "records": len(ps), "skipped": len(result.skipped), "skipped_records": result.skipped}
    if source == "livecodebench":
        out["by_difficulty"] = dict(Counter(p.difficulty for p in ps))
        out["by_platform"] = dict(Counter(p.platform for p in ps))
        out["by_testtype"] = dict(Counter("functional" if p.fn_name else "stdin" for p in ps))
        out["tests"] = sum(len(p.tests) for p in ps)
        dates = sorted(p.metadata["contest_date"][:10] for p in ps)
        out["contest_dates"] = [dates[0], dates[-1]] if dates else []
    elif source == "sciknoweval":
        out["by_domain"] = dict(Counter(p.domain for p in ps))
        out["by_level"] = dict(Counter(p.metadata["level"] for p in ps))
        out["by_type"] = dict(Counter(p.metadata["type"] for p in ps))
    elif source == "minicode":
        out["by_category"] = dict(Counter(p.domain for p in ps))
        out["by_template"] = dict(Counter(p.difficulty for p in ps))
        out["tests"] = sum(len(p.tests) for p in ps)
    else:
        out["by_subject"] = dict(Counter(p.domain for p in ps))
        out["by_level"] = dict(Counter(p.difficulty for p in ps))
    return out
