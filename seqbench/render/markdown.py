"""Markdown pieces shared by the report's sections."""

from __future__ import annotations


def table(header: list[str], rows: list[list], align: str | None = None) -> list[str]:
    """A Markdown table, one line per row; align: 'l' or 'r' per column ('r' for numbers)."""
    align = align or "l" * len(header)
    sep = ["---:" if a == "r" else "---" for a in align]
    cell = lambda v: str(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    return ["| " + " | ".join(map(cell, r)) + " |" for r in [header, sep, *rows]]


def code(value) -> str:
    """A code span: formulas such as 4*B*T*d^2 and names with underscores stay as they are."""
    text = str(value)
    tick = "``" if "`" in text else "`"
    return f"{tick}{text}{tick}" if text and text != "-" else text


def plain(value) -> str:
    """Plain text in Markdown: characters that would start emphasis, code, links or HTML escaped."""
    import re

    return re.sub(r"([\\`*_\[\]<>])", r"\\\1", str(value))
