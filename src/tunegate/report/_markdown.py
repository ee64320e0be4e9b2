"""Markdown helpers (pull-request comments, CLI summaries)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["md_escape", "md_table"]


def md_escape(value: object) -> str:
    """Escape table-breaking characters in a cell."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def md_table(headers: Sequence[object], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = [
        "| " + " | ".join(md_escape(h) for h in headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
