"""Atomic file writes (a temporary file beside the target, then a rename), and input reads that
fail with one clear error naming the file."""

from __future__ import annotations

import gzip
import json
import os
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import VPDError


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write to; rename it over `path` on success.

    The temporary name keeps the suffix, so writers that pick a format from it (parquet,
    matplotlib) still work. On an exception the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_output(path) as tmp, open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def write_jsonl_atomic(path: str | Path, rows: list[dict]) -> None:
    write_text_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def read_jsonl(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not valid JSON: {e}") from None
    return rows


def read_text_input(path: str | Path, what: str = "file", error: type[VPDError] = VPDError) -> str:
    """A UTF-8 text input (gzip-compressed when the name ends in .gz). Unreadable, a directory, or not UTF-8 (binary, Latin-1, UTF-16):
    `error` naming the path and, for bad bytes, the first offending byte and its offset."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, expected a {what}") from None
    except OSError as e:
        raise error(f"{path}: cannot read the {what}: {e.strerror}") from None
    if path.suffix == ".gz":  # e.g. HumanEval.jsonl.gz as released
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise error(f"{path}: not a readable gzip file ({e})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{path}: the {what} is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})") from None
