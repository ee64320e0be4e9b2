"""Validated ingestion: rows -> records -> store, with every bad row quarantined.

Each bad row (malformed JSON/CSV, missing field, unknown label, empty text, bad timestamp,
invalid UTF-8, a value over the records' limits, an override of a ticket not in the store, a
duplicate id with different content within the file or versus the store — any failure of a
row, whatever raises it) is reported with file, line and reason, written to a quarantine JSONL
file and counted. Good rows land in batches, one transaction per batch, so a crash leaves whole
batches only; ingesting the same file again adds nothing. Row validation: :mod:`._rows`.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, Field

from tunegate._progress import make_progress
from tunegate.config import Workflow
from tunegate.errors import InputError
from tunegate.io._generative import ingest_generative, read_generative
from tunegate.io._generative_log import ingest_generative_log, read_generative_log
from tunegate.io._readers import RawRow, check_file, detect_format, progress_total
from tunegate.io._rows import parse_rows, raw_row
from tunegate.io._shapes import SHAPES, Shape, parse_column_map, parse_label_names
from tunegate.records import utcnow
from tunegate.store import Store

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "KINDS",
    "IngestReport",
    "Kind",
    "Problem",
    "ingest_file",
    "quarantine_path",
    "read_records",
]

Kind = Literal["tickets", "decisions", "overrides", "examples", "outputs"]
KINDS: tuple[str, ...] = ("tickets", "decisions", "overrides", "examples", "outputs")
"""``outputs`` are production logs of answer / tool_call workflows (:mod:`._generative_log`)."""
DEFAULT_BATCH_SIZE = 5000
MAX_PROBLEMS = 1000
"""Problems kept in the report (the quarantine file has all of them)."""


class Problem(BaseModel):
    """One bad row: where and why."""

    file: str
    line: int
    """1-based line of the file (CSV: the row's first line; Parquet: the row number)."""
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


class IngestReport(BaseModel):
    """What an ingest did."""

    kind: str
    file: str
    format: str
    shape: str
    rows: int = 0
    """Rows read (good and bad; blank lines are not rows)."""
    added: int = 0
    """Records inserted."""
    existing: int = 0
    """Records already stored (or repeated in the file) with the same content."""
    quarantined: int = 0
    """Bad rows written to the quarantine file."""
    quarantine_file: str | None = None
    batches: int = 0
    """Transactions committed."""
    seconds: float = 0.0
    problems: list[Problem] = Field(default_factory=list)
    """The first ``MAX_PROBLEMS`` bad rows (all of them are in the quarantine file)."""

    @property
    def ok(self) -> bool:
        return self.quarantined == 0

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def _generative(kind: str, workflow: Workflow) -> bool:
    """True when ``kind`` rows of ``workflow`` are generative examples; refuses the kinds an
    ``answer`` / ``tool_call`` workflow has no use for (they carry labels)."""
    if workflow.is_classify:
        return False
    if kind in ("decisions", "overrides"):
        workflow.require_kind(f"ingesting {kind}")
    return kind == "examples"


def _outputs_args(shape: str | None, column_map: Any, label_names: Any) -> None:
    if shape not in (None, "native"):
        raise InputError(f"shape {shape!r} applies to examples; outputs use their own shape")
    if column_map:
        raise InputError("--map applies to tickets and examples, not to outputs")
    if label_names is not None:
        raise InputError("label names map class indexes; outputs have no labels")


def _check_args(kind: str, shape: str | None, label_names: Any = None) -> Shape:
    if kind not in KINDS:
        raise InputError(f"unknown kind {kind!r}; expected one of {list(KINDS)}")
    if shape is not None and shape.lower() in ("auto", "deepeval", "promptfoo"):
        raise InputError(
            f"shape {shape!r} reads answer and tool_call examples; this workflow classifies "
            f"(use native, openai-evals, inspect or hf, or set kind: in tunegate.yaml)"
        )
    value = (shape or "native").lower().replace("_", "-")
    if value in ("openai", "evals"):
        value = "openai-evals"
    if value not in SHAPES:
        raise InputError(f"unknown shape {shape!r}; expected one of {list(SHAPES)}")
    if value != "native" and kind != "examples":
        raise InputError(f"shape {value!r} applies to examples only; {kind} use the native shape")
    if label_names is not None and value != "hf":
        raise InputError(
            "label names map integer labels of the Hugging Face shape; pass them with --shape hf"
        )
    return value  # type: ignore[return-value]


def read_records(
    kind: Kind,
    path: str | Path,
    *,
    workflow: Workflow,
    fmt: str | None = None,
    shape: str | None = None,
    column_map: Mapping[str, str] | list[str] | None = None,
    label_names: Sequence[str] | None = None,
) -> tuple[list[BaseModel], list[Problem]]:
    """Load and validate a file without a store: (good records, problems).

    Repeated ids with the same content are kept once; with different content the later row
    is a problem. ``label_names``: see :func:`ingest_file`. On an ``answer`` / ``tool_call``
    workflow, examples are :class:`~tunegate.records.GenerativeExample` records read in the
    generative shapes (:mod:`tunegate.io._generative`; ``shape`` default ``auto``), and
    ``outputs`` are production log entries (:mod:`tunegate.io._generative_log`).
    """
    if kind == "outputs":
        _outputs_args(shape, column_map, label_names)
        entries, log_problems = read_generative_log(path, workflow=workflow, fmt=fmt)
        return list(entries), log_problems
    if _generative(kind, workflow):
        if label_names is not None:
            raise InputError("label names map class indexes; this workflow has no labels")
        examples, found = read_generative(
            path, workflow=workflow, shape=shape, column_map=parse_column_map(column_map), fmt=fmt
        )
        return list(examples), found
    source = Path(path)
    the_shape = _check_args(kind, shape, label_names)
    the_fmt = detect_format(source, fmt)
    mapping = parse_column_map(column_map)
    names = parse_label_names(list(label_names) if label_names is not None else None)
    records: list[BaseModel] = []
    problems: list[Problem] = []
    seen: dict[str, tuple[str, int]] = {}
    for line, _raw, record, digest in parse_rows(
        kind, source, the_fmt, the_shape, mapping, workflow, label_names=names
    ):
        if record is None:
            problems.append(Problem(file=str(source), line=line, reason=_printable(digest)))
            continue
        rid: str = record.id  # type: ignore[attr-defined]
        prev = seen.get(rid)
        if prev is None:
            seen[rid] = (digest, line)
            records.append(record)
        elif prev[0] != digest:
            problems.append(Problem(file=str(source), line=line, reason=_dup_reason(rid, prev[1])))
    return records, problems


def _printable(reason: str) -> str:
    """``reason`` with any unpaired surrogate escaped, so it can be printed and written."""
    return reason if reason.isascii() else reason.encode("utf-8", "backslashreplace").decode()


def _dup_reason(rid: str, first_line: int) -> str:
    return f"duplicate id {rid!r} with different content (first seen on line {first_line})"


def quarantine_path(store: Store, path: str | Path, kind: str, quarantine_dir: Path | None) -> Path:
    """Where the bad rows of ingesting ``path`` as ``kind`` go.

    Default folder: ``quarantine/`` next to a SQLite store's file, else ``./quarantine``.
    The file is ``<file name>.<kind>.<8 hex digits>.quarantine.jsonl``, the digits from the
    file's absolute path, so distinct files (``a/t.jsonl``, ``b/t.jsonl``) never share one. It
    is rewritten by every ingest of that file (and removed when an ingest finds no bad row).
    """
    if quarantine_dir is None:
        db = store.sqlite_path
        quarantine_dir = (db.parent if db is not None else Path.cwd()) / "quarantine"
    source = Path(path)
    where = str(source.resolve()).encode("utf-8", "surrogateescape")
    tag = hashlib.sha256(where).hexdigest()[:8]
    return Path(quarantine_dir) / f"{source.name}.{kind}.{tag}.quarantine.jsonl"


class _Quarantine:
    """Writes bad rows as JSONL: file, line, kind, reason, raw (and raw_base64 for bad bytes)."""

    def __init__(self, target: Path, source: Path, kind: str) -> None:
        self.target = target
        self.source = source
        self.kind = kind
        self.count = 0
        self.problems: list[Problem] = []
        self._fh: Any = None
        self._at = utcnow().isoformat()

    def add(self, raw: RawRow, reason: str) -> None:
        if self._fh is None:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.target.open("w", encoding="utf-8", errors="backslashreplace")
        reason = _printable(reason)
        entry: dict[str, Any] = {
            "file": str(self.source),
            "line": raw.line,
            "kind": self.kind,
            "reason": reason,
            "raw": raw.raw,
            "at": self._at,
        }
        if raw.raw_base64 is not None:
            entry["raw_base64"] = raw.raw_base64
        self._fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self.count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(file=str(self.source), line=raw.line, reason=reason))

    def __enter__(self) -> _Quarantine:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fh is not None:
            self._fh.close()
        elif et is None:
            self.target.unlink(missing_ok=True)  # no bad rows this time: drop a stale file


_Entry = tuple[BaseModel, int, "RawRow | bytes", str]
"""A good row waiting for its batch: ``(record, line, raw, identity hash)``."""


def _with_known_tickets(
    store: Store, entries: list[_Entry], quarantine: _Quarantine
) -> list[_Entry]:
    """``entries`` whose override names a ticket in the store; the others are quarantined."""
    wanted = sorted({entry[0].ticket_id for entry in entries})  # type: ignore[attr-defined]
    known = _stored_ids(store, "tickets", wanted)
    kept: list[_Entry] = []
    for entry in entries:
        ticket_id = entry[0].ticket_id  # type: ignore[attr-defined]
        if ticket_id in known:
            kept.append(entry)
        else:
            quarantine.add(
                raw_row(entry[1], entry[2]),
                f"ticket {ticket_id!r} is not in the store, so this override corrects nothing; "
                f"ingest the tickets first (`tunegate ingest tickets FILE`), or fix ticket_id",
            )
    return kept


def _stored_ids(store: Store, table: str, ids: list[str]) -> set[str]:
    """The ``ids`` stored in ``table``: a primary-key lookup that builds no records (loading
    the tickets themselves would make an override ingest about twice as slow)."""
    column: sa.ColumnClause[str] = sa.column("id")
    query = sa.select(column).select_from(sa.table(table, column))
    found: set[str] = set()
    with store.engine.connect() as conn:
        for start in range(0, len(ids), 900):  # SQLite's bound-parameter limit, with room
            chunk = ids[start : start + 900]
            if conn.dialect.name == "sqlite":  # driver SQL: no per-chunk compile
                marks = ", ".join("?" for _ in chunk)
                sql = f"SELECT id FROM {table} WHERE id IN ({marks})"
                found.update(row[0] for row in conn.exec_driver_sql(sql, tuple(chunk)))
            else:
                found.update(conn.execute(query.where(column.in_(chunk))).scalars())
    return found


def _one_by_one(entries: list[_Entry], store_rows: Any) -> list[tuple[_Entry, Exception | None]]:
    """Store each entry in its own transaction; the ones the store refused, with why."""
    refused: list[tuple[_Entry, Exception | None]] = []
    for entry in entries:
        try:
            store_rows([entry])
        except Exception as exc:  # reported as the row's reason
            refused.append((entry, exc))
    return refused


def _store_reason(exc: BaseException) -> str:
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    detail = detail if len(detail) <= 200 else detail[:197] + "..."
    return f"the store refused the row ({type(exc).__name__}: {detail}); fix the row"


def ingest_file(
    store: Store,
    kind: Kind,
    path: str | Path,
    *,
    workflow: Workflow,
    fmt: str | None = None,
    shape: str | None = None,
    column_map: Mapping[str, str] | list[str] | None = None,
    quarantine_dir: str | Path | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    label_names: Sequence[str] | None = None,
) -> IngestReport:
    """Ingest a JSONL, CSV or Parquet file of ``kind`` records into ``store``.

    Good rows land in batches of ``batch_size`` (one transaction each); bad rows go to the
    quarantine file (see :func:`quarantine_path`) and into ``report.problems`` — whatever
    makes a row fail, one bad row never stops the others. Overrides of tickets that are not in
    the store are bad rows. Idempotent: ingesting the same file again adds nothing.

    ``label_names``: with ``shape="hf"``, the data set's class names in index order, which an
    integer label indexes (without them an integer label is a bad row).

    On an ``answer`` / ``tool_call`` workflow, examples are generative examples in the shapes
    of :mod:`tunegate.io._generative` (``shape`` default ``auto``: DeepEval, promptfoo,
    Inspect, OpenAI Evals or native, told apart by their fields), stored as
    ``generative_example`` documents, and ``outputs`` are production log entries stored as
    ``generative_log`` documents (:mod:`tunegate.io._generative_log`).
    """
    if kind == "outputs":
        _outputs_args(shape, column_map, label_names)
        log_report: IngestReport = ingest_generative_log(
            store, path, workflow=workflow, fmt=fmt, quarantine_dir=quarantine_dir
        )
        return log_report
    if _generative(kind, workflow):
        if label_names is not None:
            raise InputError("label names map class indexes; this workflow has no labels")
        report: IngestReport = ingest_generative(
            store,
            path,
            workflow=workflow,
            shape=shape,
            column_map=parse_column_map(column_map),
            fmt=fmt,
            quarantine_dir=quarantine_dir,
        )
        return report
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    source = Path(path)
    the_shape = _check_args(kind, shape, label_names)
    the_fmt = detect_format(source, fmt)
    check_file(source)
    mapping = parse_column_map(column_map)
    names = parse_label_names(list(label_names) if label_names is not None else None)
    target = quarantine_path(
        store, source, kind, Path(quarantine_dir) if quarantine_dir is not None else None
    )
    report = IngestReport(kind=kind, file=str(source), format=the_fmt, shape=the_shape)
    started = time.perf_counter()
    seen: dict[str, tuple[str, int]] = {}
    batch: list[_Entry] = []
    counts = {"rows": 0, "added": 0, "existing": 0, "batches": 0}  # the report's, set at the end

    with _Quarantine(target, source, kind) as quarantine, make_progress() as progress:
        task = progress.add_task(
            f"ingest {kind}", total=progress_total(source, the_fmt) or None, status=""
        )

        pending = [0]

        def tick(n: int) -> None:  # the bar is redrawn per ~64 KB, not per row
            pending[0] += n
            if pending[0] >= 65536:
                progress.advance(task, pending[0])
                pending[0] = 0

        def store_rows(entries: list[_Entry]) -> None:
            result = store.add(
                kind,
                [entry[0] for entry in entries],
                on_conflict="skip",
                hashes=[entry[3] for entry in entries],
            )
            counts["added"] += result.added
            counts["existing"] += result.existing
            if result.conflicts:
                by_id = {rec.id: (line, raw) for rec, line, raw, _ in entries}  # type: ignore[attr-defined]
                for rid in result.conflicts:
                    quarantine.add(
                        raw_row(*by_id[rid]),
                        f"id {rid!r} is already in the store with different content",
                    )

        def flush() -> None:
            if not batch:
                return
            entries = list(batch)
            batch.clear()
            if kind == "overrides":
                entries = _with_known_tickets(store, entries, quarantine)
            try:
                store_rows(entries)
            except Exception as exc:  # a row the store refuses: find it, keep the others
                refused = _one_by_one(entries, store_rows)
                if len(refused) == len(entries) > 1:
                    raise  # every row fails: the store, not the rows
                for (_, line, raw, _), row_exc in refused:
                    quarantine.add(raw_row(line, raw), _store_reason(row_exc or exc))
            counts["batches"] += 1
            progress.update(task, status=f"{counts['added']} added")

        for line, raw, record, digest in parse_rows(
            kind, source, the_fmt, the_shape, mapping, workflow, tick, names
        ):
            counts["rows"] += 1
            if record is None:
                quarantine.add(raw_row(line, raw), digest)
                continue
            rid: str = record.id  # type: ignore[attr-defined]
            prev = seen.get(rid)
            if prev is not None:
                if prev[0] == digest:
                    counts["existing"] += 1
                else:
                    quarantine.add(raw_row(line, raw), _dup_reason(rid, prev[1]))
                continue
            seen[rid] = (digest, line)
            batch.append((record, line, raw, digest))
            if len(batch) >= batch_size:
                flush()
        flush()
        progress.advance(task, pending[0])

    report.rows, report.added = counts["rows"], counts["added"]
    report.existing, report.batches = counts["existing"], counts["batches"]
    report.quarantined = quarantine.count
    report.problems = quarantine.problems
    report.quarantine_file = str(target) if quarantine.count else None
    report.seconds = round(time.perf_counter() - started, 6)
    if not math.isfinite(report.seconds):  # pragma: no cover
        report.seconds = 0.0
    return report
