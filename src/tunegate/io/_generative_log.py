"""Production logs of ``answer`` / ``tool_call`` workflows: ``tunegate ingest outputs``.

One row per output served, flat (JSONL, CSV or Parquet):

* ``question`` (required): what the user asked; ``asked_at`` (required): when, ISO 8601
  (naive = UTC); ``escalated`` (default false): a human took over;
* the fields of :class:`~tunegate.records.GenerativeOutput`: ``id`` (the store key; derived
  from the row's content when absent), ``model_version`` (required), ``answer``, ``cited``
  (``[{"id": ..., "version": ...}]``), ``abstained``, ``tool_call`` (``{"name", "arguments"}``),
  ``prompt_tokens``, ``completion_tokens``, ``latency_ms``, ``created_at`` (default
  ``asked_at``), ``example_id`` (default the id), ``kind`` (default and only value: the
  workflow's kind), ``metadata``.

A row written by a generator, i.e. a plain ``GenerativeOutput`` whose ``metadata`` carries
``question``, ``asked_at`` and ``escalated``, is read the same way (the three keys are moved
out of ``metadata``). In CSV, ``cited``, ``tool_call`` and ``metadata`` are JSON strings.

Every row becomes a :class:`~tunegate.records.GenerativeLogEntry` stored as a
``generative_log`` document keyed by the output id. Ingestion is idempotent (the same row
again adds nothing); a bad row - unknown or missing field, bad timestamp, a kind other than
the workflow's, an id already stored with other content - is quarantined with file, line
and the field at fault, counted, and makes ``tunegate ingest`` exit 1: nothing is dropped
silently.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from tunegate.config import Workflow
from tunegate.io._readers import RawRow, check_file, detect_format, iter_rows
from tunegate.io._shapes import RowError
from tunegate.records import (
    GenerativeLogEntry,
    GenerativeOutput,
    content_hash,
    validation_message,
)

if TYPE_CHECKING:
    from tunegate.io._ingest import IngestReport, Problem
    from tunegate.store import Store

__all__ = [
    "LOG_ENTRY_FIELDS",
    "ingest_generative_log",
    "log_entry_from_row",
    "parse_generative_log",
    "read_generative_log",
    "stored_generative_log",
]

LOG_ENTRY_FIELDS: tuple[str, ...] = ("question", "asked_at", "escalated")
"""The fields of a log row beside the output's own (also read from its ``metadata``)."""
_JSON_FIELDS = ("cited", "tool_call", "metadata")

Parsed = tuple[RawRow, GenerativeLogEntry | None, str]
"""A row, its entry (``None`` when bad) and its identity hash (or the reason it is bad)."""


def _check_workflow(workflow: Workflow) -> None:
    workflow.require_kind("ingesting outputs (production logs)", "answer", "tool_call")


def log_entry_from_row(data: Mapping[str, Any], workflow: Workflow) -> GenerativeLogEntry:
    """One log row as an entry; :class:`~tunegate.io.RowError` naming the field at fault."""
    row = dict(data)
    for name in _JSON_FIELDS:
        value = row.get(name)
        if isinstance(value, str):
            try:
                row[name] = json.loads(value)
            except ValueError as exc:
                raise RowError(f"{name}: not valid JSON ({exc})") from None
    meta = row.get("metadata")
    if isinstance(meta, dict) and any(k in meta for k in LOG_ENTRY_FIELDS):
        meta = dict(meta)
        for key in LOG_ENTRY_FIELDS:
            if key in meta:
                value = meta.pop(key)
                if key in row:
                    raise RowError(f"{key} is given both as a field and in metadata; keep one")
                row[key] = value
        row["metadata"] = meta
    entry_fields = {k: row.pop(k) for k in LOG_ENTRY_FIELDS if k in row}
    for key in ("question", "asked_at"):
        if entry_fields.get(key) in (None, ""):
            raise RowError(
                f"missing field {key!r} (a production log row needs the question and the ISO "
                f"time it was asked at)"
            )
    kind = row.get("kind", workflow.kind)
    if kind != workflow.kind:
        raise RowError(
            f"kind: {kind!r} does not match the workflow's kind {workflow.kind!r}; ingest it "
            f"with the workflow it came from"
        )
    row["kind"] = workflow.kind
    try:
        entry = GenerativeLogEntry.model_validate(
            {**entry_fields, "output": {"example_id": "?", "model_version": "?", "kind": kind}}
        )
    except ValidationError as exc:
        raise RowError(validation_message(exc)) from None
    row.setdefault("created_at", entry.asked_at.isoformat())
    if "id" not in row:
        digest = content_hash(sorted(row.items()), sorted(entry_fields.items()))
        row["id"] = f"gout_{digest[:24]}"
    row.setdefault("example_id", row["id"])
    try:
        output = GenerativeOutput.model_validate(row)
    except ValidationError as exc:
        raise RowError(validation_message(exc)) from None
    return entry.model_copy(update={"output": output})


def parse_generative_log(
    path: Path, workflow: Workflow, *, fmt: str | None = None
) -> Iterator[Parsed]:
    """Every row of ``path`` as an entry or a reason; one bad row never stops the others."""
    for raw in iter_rows(path, detect_format(path, fmt)):
        if raw.error is not None or raw.data is None:
            yield raw, None, raw.error or "unreadable row"
            continue
        try:
            entry = log_entry_from_row(raw.data, workflow)
        except RowError as exc:
            yield raw, None, str(exc)
            continue
        except Exception as exc:  # any other failure is this row's, not the file's
            detail = str(exc).splitlines()[0] if str(exc) else ""
            yield (
                raw,
                None,
                f"the row could not be validated ({type(exc).__name__}"
                f"{': ' + detail[:200] if detail else ''}); fix the row or report it as a bug",
            )
            continue
        yield raw, entry, entry.identity_hash


def read_generative_log(
    path: str | Path, *, workflow: Workflow, fmt: str | None = None
) -> tuple[list[GenerativeLogEntry], list[Problem]]:
    """Load and validate a production log without a store: ``(entries, problems)``."""

    _check_workflow(workflow)
    source = Path(path)
    check_file(source)
    from tunegate.io._generative import read_by_id

    return read_by_id(source, parse_generative_log(source, workflow, fmt=fmt))


def ingest_generative_log(
    store: Store,
    path: str | Path,
    *,
    workflow: Workflow,
    fmt: str | None = None,
    quarantine_dir: str | Path | None = None,
) -> IngestReport:
    """Store a production log as ``generative_log`` documents (key: output id), quarantining
    bad rows like :func:`~tunegate.io.ingest_file`; idempotent by id and content."""
    from tunegate.documents import GenerativeLogDocument
    from tunegate.io._generative import store_by_id
    from tunegate.io._ingest import IngestReport, _Quarantine, quarantine_path

    _check_workflow(workflow)
    source = Path(path)
    check_file(source)
    the_fmt = detect_format(source, fmt)
    target = quarantine_path(
        store, source, "outputs", Path(quarantine_dir) if quarantine_dir is not None else None
    )
    report = IngestReport(kind="outputs", file=str(source), format=the_fmt, shape="native")
    started = time.perf_counter()
    docs = store.documents(GenerativeLogDocument)
    with _Quarantine(target, source, "outputs") as quarantine:
        store_by_id(
            parse_generative_log(source, workflow, fmt=the_fmt),
            docs,
            lambda entry, digest: GenerativeLogDocument(entry=entry, digest=digest),
            report,
            quarantine,
        )
    report.batches = 1 if report.added else 0
    report.quarantined = quarantine.count
    report.problems = quarantine.problems
    report.quarantine_file = str(target) if quarantine.count else None
    report.seconds = round(time.perf_counter() - started, 6)
    return report


def stored_generative_log(store: Store) -> list[GenerativeLogEntry]:
    """Every production log entry in ``store``, oldest ``asked_at`` first (then by id)."""
    from tunegate.documents import GenerativeLogDocument

    entries = [doc.entry for _, doc in store.documents(GenerativeLogDocument).items()]
    return sorted(entries, key=lambda e: (e.asked_at, e.id))
