"""Text from results files and users (labels, error messages, commands, paths) made safe for where it is
written: a terminal (no escape sequences), Markdown that CI posts or a browser renders (no links,
images, HTML, table cells or headings it did not mean). Identity columns are validated on read
(results.reader); everything else that is free text goes through one of these on the way out."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Markdown and the HTML inside it: what could open a link or image ([..](..), ![..](..)), a tag (<img>,
# <details open>, <script>), a code span or fence (`), a table cell (|), or escape the escaping (\).
_MARKDOWN = re.compile(r"([\\`\[\]])")
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def term(text) -> str:
    """One line with every control character shown as \\xNN: an ANSI escape (colours, cursor moves, a
    terminal title) in a kernel name or label prints as text and never reaches the terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", " ".join(str(text).splitlines()))


def md(text, cell: bool = False) -> str:
    """One line of literal text inside Markdown: no control characters, `&<>` as HTML entities, and
    backslash, backtick and brackets escaped, so it cannot open a link, image, tag or code block, or
    start a heading on a line of its own. cell: also | (a table row written by hand; markdown.table
    escapes its cells' | itself)."""
    one = _MARKDOWN.sub(r"\\\1", term(text))
    one = "".join(_HTML.get(c, c) for c in one)
    return one.replace("|", "\\|") if cell else one


def md_deep(obj):
    """md() applied to every string inside dicts, lists and tuples (a sidecar, for the report)."""
    if isinstance(obj, str):
        return md(obj)
    if isinstance(obj, dict):
        return {k: md_deep(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(md_deep(v) for v in obj)
    return obj
