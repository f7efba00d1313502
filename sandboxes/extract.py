"""Code from a model response: the last fenced block (LiveCodeBench's extract_code)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class Extracted:
    code: str
    outcome: Literal["ok", "no_code_block", "truncated"]


def extract_code(response: str, truncated: bool = False) -> Extracted:
    """Lines between the last two lines containing ``` (the opening fence carries the language tag).

    Fewer than two fence lines: nothing to run — "truncated" when the generation hit its
    length limit (the block was probably cut off), else "no_code_block".
    """
    lines = response.split("\n")
    fences = [i for i, line in enumerate(lines) if "```" in line]
    if len(fences) < 2:
        return Extracted("", "truncated" if truncated else "no_code_block")
    return Extracted("\n".join(lines[fences[-2] + 1 : fences[-1]]), "ok")
