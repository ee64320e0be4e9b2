"""Identity hashes: what "the same record" means when an id is added twice.

Two records with the same id are the same when their identity hashes agree. The hash covers
every field a producer supplies and leaves out the fields the store itself changes later
(``review_status`` and ``reviewer``, set by review), plus an example's ``created_at``
(bookkeeping, defaulted to "now" when a file has none) and ``slice_tags`` (derived from the
workflow's slices, which may change), so re-ingesting a file after review, or after editing
the slices, still adds nothing and flags nothing.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC
from typing import Any, Literal

from pydantic import BaseModel

from tunegate.records import Decision, Example, Override, Ticket

__all__ = ["RECORD_TYPES", "RecordKind", "record_hash"]

RecordKind = Literal["tickets", "decisions", "overrides", "examples"]

RECORD_TYPES: dict[str, type[BaseModel]] = {
    "tickets": Ticket,
    "decisions": Decision,
    "overrides": Override,
    "examples": Example,
}

_EXCLUDED: dict[str, set[str]] = {
    "tickets": set(),
    "decisions": set(),
    "overrides": {"review_status"},
    "examples": {"review_status", "reviewer", "created_at", "slice_tags"},
}


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def record_hash(kind: str, record: BaseModel) -> str:
    """SHA-256 (hex, 64 chars) over ``record``'s identity fields for table ``kind``."""
    data = record.model_dump(mode="json", exclude=_EXCLUDED[kind])
    if "created_at" in data:  # one canonical spelling of the instant, whatever the input offset
        data["created_at"] = getattr(record, "created_at").astimezone(UTC).isoformat()  # noqa: B009
    return hashlib.sha256(_canonical(data).encode("utf-8")).hexdigest()
