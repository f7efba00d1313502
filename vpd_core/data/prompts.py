"""Prompts per benchmark: LiveCodeBench's official format, SciKnowEval with rendered choices, boxed math."""

from __future__ import annotations

import re

from ..config import PromptTemplates

_HOLE = re.compile(r"\{(\w+)\}")


def fill(template: str, **values: str) -> str:
    """Literal one-pass substitution: problem text full of braces (LaTeX, code) is safe."""
    return _HOLE.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def code_messages(question: str, starter: str, t: PromptTemplates | None = None) -> list[dict]:
    t = t or PromptTemplates()
    if starter.strip():
        user = fill(t.code_user, question=question, format=t.code_format_starter, starter=starter)
    else:
        user = fill(t.code_user, question=question, format=t.code_format_stdin, starter=t.code_stdin_placeholder)
    return [{"role": "system", "content": t.code_system}, {"role": "user", "content": user}]


def mcq_messages(system: str, question: str, labels: list[str], texts: list[str], t: PromptTemplates | None = None) -> list[dict]:
    t = t or PromptTemplates()
    options = "\n".join(fill(t.mcq_option, label=lab, text=txt) for lab, txt in zip(labels, texts))
    msgs = [{"role": "system", "content": system}] if system else []
    return msgs + [{"role": "user", "content": fill(t.mcq_user, question=question, options=options)}]


def math_messages(problem: str, t: PromptTemplates | None = None) -> list[dict]:
    t = t or PromptTemplates()
    return [{"role": "system", "content": t.math_system},
            {"role": "user", "content": fill(t.math_user, problem=problem)}]
