"""Prompt rendering shared by the benchmarks: literal placeholder filling and the default templates.

Each benchmark module owns its templates (their defaults are in its registry entry); the
validated set, with params overrides, is `config.PromptTemplates`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import PromptTemplates

_HOLE = re.compile(r"\{(\w+)\}")


def fill(template: str, **values: str) -> str:
    """Literal one-pass substitution: problem text full of braces (LaTeX, code) is safe."""
    return _HOLE.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def templates_or_default(t: PromptTemplates | None) -> PromptTemplates:
    from ..config import PromptTemplates  # the config builds its template model from the registry

    return t if t is not None else PromptTemplates()
