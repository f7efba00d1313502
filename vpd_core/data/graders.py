"""Graders that run in-process: multiple-choice letters (SciKnowEval's accuracy rule) and math answers.

Code is graded by the sandbox (sandboxes.jobs.job_from_problem + a sandbox's run_batch).
"""

from __future__ import annotations

import re
from fractions import Fraction

_THINK = re.compile(r"<think>.*?</think>", flags=re.DOTALL)


def final_text(response: str) -> str:
    """The answer part of a response: reasoning inside <think>...</think> removed."""
    return _THINK.sub("", response).strip()


# ----------------------------------------------------------------------------- multiple choice


def mcq_prediction(response: str, labels: list[str]) -> str | None:
    """The official fallback: the first of the labels, last to first (D, C, B, A), that appears as
    `X.`, `X)`, `X `, `X\\n`, `"X` or `X"`; otherwise the response's first character."""
    r = final_text(response)
    if not r:
        return None
    if len(r) == 1:
        return r
    for x in sorted(labels, reverse=True):
        if any(p in r for p in (f"{x}.", f"{x})", f"{x} ", f"{x}\n", f'"{x}', f'{x}"')):
            return x
    return r[0]


def mcq_correct(response: str, answer: str, labels: list[str], texts: list[str]) -> bool:
    """SciKnowEval's get_score_CLS for MCQ: empty is wrong; one character must be the key; the correct
    option's text present with no wrong option's text is right; else the letter rule above."""
    r = final_text(response)
    if not r:
        return False
    if len(r) == 1:
        return r == answer
    if answer in labels and texts:
        right = texts[labels.index(answer)]
        wrong = [t for lab, t in zip(labels, texts) if lab != answer]
        if right and right in r and not any(w and w in r for w in wrong):
            return True
    return mcq_prediction(r, labels) == answer


# ----------------------------------------------------------------------------- math


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}), braces balanced."""
    starts = [m.end() for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text)]
    if not starts:
        return None
    i = start = starts[-1]
    depth = 1
    while i < len(text) and depth:
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    return text[start : i - 1] if depth == 0 else None


_ANSWER_IS = re.compile(r"answer is[:\s]*\$?([^\s$]+)", flags=re.IGNORECASE)


def extract_math_answer(response: str) -> str | None:
    text = final_text(response)
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    m = _ANSWER_IS.findall(text)
    return m[-1].rstrip(".") if m else None


def _strip_text_macros(s: str) -> str:
    return re.sub(r"\\(?:text|textbf|mathrm|mbox)\s*\{([^{}]*)\}", r"\1", s)


def normalize_math(s: str) -> str:
    s = _strip_text_macros(str(s))
    for a, b in (("\\left", ""), ("\\right", ""), ("\\!", ""), ("\\,", ""), ("\\;", ""), ("\\ ", ""),
                 ("dfrac", "frac"), ("tfrac", "frac"), ("^\\circ", ""), ("^{\\circ}", ""), ("\\%", ""), ("%", ""),
                 ("$", ""), ("\\displaystyle", "")):
        s = s.replace(a, b)
    s = re.sub(r"\s+", "", s)
    s = re.sub(r"^[a-zA-Z]\s*=", "", s)  # "x=3" -> "3"
    s = re.sub(r"(\d),(\d{3})(?!\d)", r"\1\2", s)  # 1,000 -> 1000
    s = s.rstrip(".")
    s = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", s)  # \frac12 -> \frac{1}{2}
    s = re.sub(r"\\sqrt(\d+)", r"\\sqrt{\1}", s)  # \sqrt3 -> \sqrt{3}
    return s


def _number(s: str) -> Fraction | None:
    m = re.fullmatch(r"(-?)\\frac\{(-?[\d.]+)\}\{(-?[\d.]+)\}", s)
    try:
        if m:
            value = Fraction(m.group(2)) / Fraction(m.group(3))
            return -value if m.group(1) else value
        m = re.fullmatch(r"(-?[\d.]+)/(-?[\d.]+)", s)
        if m:
            return Fraction(m.group(1)) / Fraction(m.group(2))
        if re.fullmatch(r"-?\d+(\.\d+)?|-?\.\d+", s):
            return Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None
    return None


def math_equivalent(predicted: str | None, gold: str) -> bool:
    """Equal after normalisation, or equal as exact rationals (fractions, decimals, integers)."""
    if predicted is None:
        return False
    a, b = normalize_math(predicted), normalize_math(gold)
    if a == b:
        return True
    na, nb = _number(a), _number(b)
    return na is not None and na == nb


def math_correct(response: str, gold: str) -> bool:
    return math_equivalent(extract_math_answer(response), gold)

