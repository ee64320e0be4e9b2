"""Tickets to classify from a file or stdin: JSONL of tickets, or plain text, one per line.

The format is detected from the first non-blank line (``{`` means JSONL).

JSONL rows: ``text`` (required, a non-blank string), ``id`` (default: ``<id_prefix>_`` and a
hash of the text and line number; the prefix is the workflow's ``id_prefix``, ``tkt`` by
default), ``created_at`` (ISO 8601, default: now), ``metadata`` (an object). Any other
top-level field is moved into ``metadata`` (kept verbatim; models ignore metadata, named slices
in tunegate.yaml read it). Plain lines get an id hashed from the text and line number. Every row
is validated; bad rows are returned with their line numbers rather than raised, so a caller can
stop or skip them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from tunegate.errors import InputError
from tunegate.records import Ticket, content_hash, utcnow

__all__ = ["TicketFile", "parse_tickets"]

_TICKET_FIELDS = {"id", "text", "created_at", "metadata"}


class TicketFile(NamedTuple):
    """What :func:`parse_tickets` read (unpacks as ``tickets, problems, blank_lines``)."""

    tickets: list[Ticket]
    """Valid tickets in file order (ids unique)."""
    problems: list[tuple[int, str]]
    """``(line number, reason)`` of rows that are not valid tickets (1-based lines)."""
    blank_lines: int
    """Blank or whitespace-only lines, skipped."""


def _lines(source: str) -> Iterator[tuple[int, str]]:
    if source == "-":
        for number, line in enumerate(sys.stdin, start=1):
            yield number, line.rstrip("\n")
        return
    path = Path(source)
    if not path.is_file():
        raise InputError(
            f"{source}: no such file; pass a JSONL file of tickets, a text file "
            f"with one ticket per line, or - for stdin"
        )
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                yield number, line.rstrip("\n")
    except UnicodeDecodeError as exc:
        raise InputError(f"{source}: not valid UTF-8 ({exc}); re-encode the file") from exc


def _row_ticket(number: int, row: Any, id_prefix: str = "tkt") -> Ticket:
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
    if "text" not in row:
        raise ValueError("missing field 'text'")
    text = row["text"]
    if not isinstance(text, str):
        raise ValueError(f"'text' must be a string, got {type(text).__name__}")
    if not text.strip():
        raise ValueError("'text' is empty or whitespace only")
    metadata = row.get("metadata", {})
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise ValueError(f"'metadata' must be an object, got {type(metadata).__name__}")
    extra = {k: v for k, v in row.items() if k not in _TICKET_FIELDS}
    metadata = {**extra, **metadata}
    ticket_id = row.get("id")
    if ticket_id is None:
        ticket_id = f"{id_prefix}_{content_hash(text, number)[:16]}"
    elif not isinstance(ticket_id, str | int) or not str(ticket_id).strip():
        raise ValueError(f"'id' must be a non-empty string or integer, got {ticket_id!r}")
    created = row.get("created_at") or utcnow()
    if isinstance(created, str):
        try:
            created = datetime.fromisoformat(created)
        except ValueError as exc:
            raise ValueError(f"'created_at' is not an ISO 8601 time: {created!r}") from exc
    return Ticket(id=str(ticket_id), text=text, created_at=created, metadata=metadata)


def parse_tickets(source: str, *, id_prefix: str = "tkt") -> TicketFile:
    """Read tickets from a file path or ``-`` (stdin); rows without an id get
    ``<id_prefix>_<hash>`` (the workflow's ``id_prefix``).

    Raises :class:`~tunegate.errors.InputError` when the file is missing or not UTF-8; rows
    that are not valid tickets (bad JSON, no text, a duplicate id...) go to ``problems``.
    """
    tickets: list[Ticket] = []
    problems: list[tuple[int, str]] = []
    blank = 0
    mode: str | None = None
    seen: set[str] = set()
    for number, line in _lines(source):
        if not line.strip():
            blank += 1
            continue
        if mode is None:
            mode = "jsonl" if line.lstrip().startswith("{") else "text"
        try:
            if mode == "jsonl":
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
                ticket = _row_ticket(number, row, id_prefix)
            else:
                ticket = Ticket(
                    id=f"{id_prefix}_{content_hash(line, number)[:16]}",
                    text=line,
                    created_at=utcnow(),
                )
        except ValueError as exc:
            problems.append((number, str(exc).splitlines()[0]))
            continue
        if ticket.id in seen:
            problems.append((number, f"duplicate id {ticket.id!r}"))
            continue
        seen.add(ticket.id)
        tickets.append(ticket)
    return TicketFile(tickets, problems, blank)
