"""Markdown pieces shared by the report's sections."""

from __future__ import annotations


def table(header: list[str], rows: list[list], align: str | None = None) -> list[str]:
    """A Markdown table, one line per row; align: 'l' or 'r' per column ('r' for numbers)."""
    align = align or "l" * len(header)
    sep = ["---:" if a == "r" else "---" for a in align]
    cell = lambda v: str(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    return ["| " + " | ".join(map(cell, r)) + " |" for r in [header, sep, *rows]]
