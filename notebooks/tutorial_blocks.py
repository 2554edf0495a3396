"""The cell kinds the tutorial is written in (Markdown in two languages, shared code, exercises)."""

from __future__ import annotations


def md(en: str, pt: str) -> dict[str, str]:
    return {"type": "markdown", "en": en, "pt": pt}


def code(source: str, hidden: bool = False) -> dict[str, str]:
    """A code cell, the same in both notebooks (`__LANG__` becomes the notebook's language tag);
    `hidden`: stored collapsed, for an exercise's solution."""
    return {"type": "code", "source": source, "hidden": hidden}


def exercise(en: str, pt: str, solution: str, en_after: str, pt_after: str) -> list[dict[str, str]]:
    """An exercise: its question, a collapsed solution that runs (CI runs it in quick mode), and
    what the solution shows."""
    return [md(en=f"**Exercise.** {en.strip()}", pt=f"**Exercício.** {pt.strip()}"),
            code(solution, hidden=True), md(en=en_after, pt=pt_after)]
