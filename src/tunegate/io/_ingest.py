"""Validated ingestion: rows -> records -> store, with every bad row quarantined.

Each bad row (malformed JSON/CSV, missing field, unknown label, empty text, bad timestamp,
invalid UTF-8, a duplicate id with different content within the file or versus the store) is
reported with file, line and reason, written to a quarantine JSONL file and counted. Good rows
land in batches, one transaction per batch, so a crash leaves whole batches only; ingesting the
same file again adds nothing.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, Field, ValidationError

from tunegate._progress import make_progress
from tunegate.config import Workflow
from tunegate.errors import InputError
from tunegate.io._readers import (
    Format,
    RawRow,
    check_file,
    detect_format,
    iter_rows,
    jsonl_lines,
    jsonl_row,
    progress_total,
)
from tunegate.io._shapes import (
    SHAPES,
    RowError,
    Shape,
    apply_shape,
    parse_column_map,
    parse_label_names,
)
from tunegate.records import (
    Decision,
    Example,
    Override,
    check_json_value,
    utcnow,
    validation_message,
)
from tunegate.store import Store
from tunegate.store._hashing import RECORD_TYPES, record_hash, record_hash_plain

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "KINDS",
    "IngestReport",
    "Kind",
    "Problem",
    "build_record",
    "ingest_file",
    "quarantine_path",
    "read_records",
]

Kind = Literal["tickets", "decisions", "overrides", "examples"]
KINDS: tuple[str, ...] = ("tickets", "decisions", "overrides", "examples")
DEFAULT_BATCH_SIZE = 5000
MAX_PROBLEMS = 1000
"""Problems kept in the report (the quarantine file has all of them)."""

_JSON_FIELDS = ("metadata", "probabilities", "rule_hits", "slice_tags")
_FOLD_EXTRA = ("tickets", "examples")  # unknown columns become metadata for these kinds
_ID_PREFIX = {"decisions": "dec", "overrides": "ovr", "examples": "ex"}
_NEEDS_TIME = ("decisions", "overrides")
_UNDATED = datetime(1970, 1, 1, tzinfo=UTC)
"""Stands for the defaulted ``created_at`` of an undated ticket in its identity hash."""


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


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _plain(value: Any, depth: int = 0) -> bool:
    """True when ``value`` is already JSON-safe (str keys, finite floats, basic types)."""
    if value is None or isinstance(value, str | bool | int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if depth > 20:
        return False
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v, depth + 1) for v in value)
    return False


def _jsonable(value: Any, field: str) -> Any:
    """``value`` made JSON-safe (other types via ``str``); NaN/Infinity, nesting deeper than
    the records allow or an unpaired surrogate is a row error (the records' own message)."""
    if _plain(value):
        return value
    try:
        check_json_value(value, field)
        return json.loads(json.dumps(value, ensure_ascii=False, allow_nan=False, default=str))
    except (ValueError, RecursionError) as exc:
        raise RowError(str(exc)) from None


def _derived_id(kind: str, row: Mapping[str, Any]) -> str:
    blob = json.dumps(row, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))
    return f"{_ID_PREFIX[kind]}_{hashlib.sha256(blob.encode('utf-8')).hexdigest()[:20]}"


_LISTED_LABELS = 8
"""Up to this many labels, an unknown label's reason lists them all; above, near misses only."""


def _check_label(label: Any, workflow: Workflow, field: str) -> None:
    if label not in workflow.labels:
        raise RowError(unknown_label_reason(label, workflow.label_names, field))


def unknown_label_reason(label: Any, names: list[str], field: str) -> str:
    """Why ``label`` is refused, short whatever the number of labels: the closest names
    ("did you mean ...?") and, for a small workflow, all of them."""
    shown = _short(label)
    close = difflib.get_close_matches(str(label), names, n=3, cutoff=0.6)
    if not close and isinstance(label, str):  # e.g. a different case or separator
        folded = {name.lower().replace("-", "_").replace(" ", "_"): name for name in names}
        key = label.strip().lower().replace("-", "_").replace(" ", "_")
        close = [folded[key]] if key in folded else []
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    if len(names) <= _LISTED_LABELS:
        known = f"the workflow's labels are {names}"
    else:
        known = f"the workflow has {len(names)} labels (`tunegate.yaml`, labels:)"
    return f"unknown label {shown} in {field!r}{hint} ({known}; add it there or fix the row)"


def build_record(kind: str, row: dict[str, Any], workflow: Workflow) -> BaseModel:
    """Validate one native-shaped row into a record of ``kind``; :class:`RowError` if bad."""
    model = RECORD_TYPES[kind]
    row = dict(row)
    for name in _JSON_FIELDS:
        value = row.get(name)
        if isinstance(value, str):
            try:
                row[name] = json.loads(value)
            except json.JSONDecodeError:
                raise RowError(f"field {name!r} is not valid JSON: {_short(value)}") from None
    fields = model.model_fields
    extra = [k for k in row if k not in fields]
    if extra and kind in _FOLD_EXTRA:
        meta = row.get("metadata", {})
        if not isinstance(meta, dict):
            raise RowError(f"field 'metadata' must be an object, got {_short(meta)}")
        row["metadata"] = {**{k: row.pop(k) for k in extra}, **meta}
    elif extra:
        raise RowError(
            f"unknown field(s) {extra}; allowed: {sorted(fields)} "
            f"(rename columns with --map SRC=DST)"
        )
    if "metadata" in row:
        row["metadata"] = _jsonable(row["metadata"], "metadata")
    if row.get("created_at") is None:
        if kind in _NEEDS_TIME:
            raise RowError(
                f"missing field 'created_at' ({kind} need a timestamp: trends and "
                f"monitors are computed over time)"
            )
        if kind == "tickets":  # as `tunegate classify` does: an undated ticket arrives now
            row["created_at"] = utcnow()
    if kind != "tickets" and row.get("id") in (None, ""):
        row["id"] = _derived_id(kind, {k: v for k, v in row.items() if k != "id"})
    elif "id" in row and isinstance(row["id"], int | float) and not isinstance(row["id"], bool):
        row["id"] = str(row["id"])
    try:
        record = model.model_validate(row)
    except ValidationError as exc:
        raise RowError(validation_message(exc)) from None
    return _finish(record, workflow)


def _finish(record: BaseModel, workflow: Workflow) -> BaseModel:
    """Workflow checks on a validated record: known labels; an example's slice tags."""
    if isinstance(record, Example):
        _check_label(record.label, workflow, "label")
        tags = workflow.slice_tags(record.text, record.metadata)
        tags += [t for t in record.slice_tags if t not in tags]
        record = record.model_copy(update={"slice_tags": tags})
    elif isinstance(record, Override):
        _check_label(record.final_label, workflow, "final_label")
    elif isinstance(record, Decision):
        _check_label(record.label, workflow, "label")
        for name in record.probabilities:
            _check_label(name, workflow, "probabilities")
    return record


def _fast_record(kind: str, line: bytes, workflow: Workflow) -> tuple[BaseModel, str] | None:
    """``(record, identity hash)`` of a native-shaped JSONL line, validated by pydantic straight
    from the bytes — or ``None`` when the line needs the general path.

    Only a line that the general path (:func:`~tunegate.io._readers.jsonl_row`, then
    :func:`build_record`) would turn into the very same record is accepted here; anything else
    (bad JSON or UTF-8, ``NaN``/``Infinity``, extra columns, JSON-string fields, numeric or
    missing ids, a missing ``created_at``, non-finite metadata, unknown labels, any validation
    error, any other exception) returns ``None`` and goes the general way, which accepts it
    identically or says exactly why not. ``None`` is never a verdict.
    """
    if b"NaN" in line or b"Infinity" in line:  # json.loads rejects these constants; pydantic not
        return None
    try:  # = model_validate_json, without its Python wrapper
        record: BaseModel = RECORD_TYPES[kind].__pydantic_validator__.validate_json(line)
        if kind != "tickets":  # tickets have no workflow checks and must carry their id
            given = record.model_fields_set
            if "id" not in given or not record.id:  # type: ignore[attr-defined]
                return None  # the general path derives the id from the content
            if kind in _NEEDS_TIME and "created_at" not in given:
                return None
            record = _finish(record, workflow)
        # metadata is parsed JSON (str keys); a float overflowing to inf raises ValueError
        return record, record_hash_plain(kind, record)
    except Exception:  # never a verdict: the general path says why
        return None


Parsed = tuple[int, "RawRow | bytes", "BaseModel | None", str]
"""``(line, raw, record, digest)`` of a good row, ``(line, raw, None, reason)`` of a bad one;
``raw`` is the line's bytes when the fast path took it (valid UTF-8)."""


def _general(
    kind: str,
    raw: RawRow,
    shape: Shape,
    column_map: dict[str, str],
    workflow: Workflow,
    label_names: list[str] | None = None,
) -> Parsed:
    """The general path for one row. Every failure, whatever raises it, is the row's reason:
    one bad row never stops an ingest."""
    if raw.error is not None or raw.data is None:
        return raw.line, raw, None, raw.error or "unreadable row"
    try:
        native = apply_shape(kind, shape, raw.data, workflow, column_map, label_names)
        record = build_record(kind, native, workflow)
        if kind == "tickets" and native.get("created_at") is None:  # dated "now" by ingest:
            dated = record.model_copy(update={"created_at": _UNDATED})  # same hash each time
            return raw.line, raw, record, record_hash(kind, dated)
        return raw.line, raw, record, record_hash(kind, record)
    except RowError as exc:
        return raw.line, raw, None, str(exc)
    except UnicodeEncodeError as exc:  # json.loads accepts "\ud800"; no database stores it
        return raw.line, raw, None, _surrogate_reason(exc)
    except Exception as exc:  # any other failure is this row's, not the file's
        return raw.line, raw, None, _unexpected_reason(exc)


def _unexpected_reason(exc: BaseException) -> str:
    detail = str(exc).splitlines()[0] if str(exc) else ""
    detail = detail if len(detail) <= 200 else detail[:197] + "..."
    return (
        f"the row could not be validated ({type(exc).__name__}"
        f"{': ' + detail if detail else ''}); fix the row or report it as a tunegate bug"
    )


def _surrogate_reason(exc: UnicodeEncodeError) -> str:
    bad = exc.object[exc.start : exc.end] if isinstance(exc.object, str) else ""
    code = f"\\u{ord(bad[0]):04x}" if bad else "a surrogate"
    return (
        f"a string holds an unpaired surrogate escape ({code}), which is not valid Unicode; "
        f"fix the JSON escape (surrogates must come in high/low pairs)"
    )


def _parse(
    kind: str,
    path: Path,
    fmt: Format,
    shape: Shape,
    column_map: dict[str, str],
    workflow: Workflow,
    tick: Any = None,
    label_names: list[str] | None = None,
) -> Iterator[Parsed]:
    if fmt == "jsonl" and shape == "native" and not column_map:
        check_file(path)
        for number, line in jsonl_lines(path, tick or (lambda _n: None)):
            fast = _fast_record(kind, line, workflow)
            if fast is not None:
                yield number, line, fast[0], fast[1]
            else:
                yield _general(kind, jsonl_row(number, line), shape, column_map, workflow)
        return
    for raw in iter_rows(path, fmt, progress=tick):
        yield _general(kind, raw, shape, column_map, workflow, label_names)


def _raw_row(line: int, raw: RawRow | bytes) -> RawRow:
    return raw if isinstance(raw, RawRow) else RawRow(line, raw.decode("utf-8"))


def _check_args(kind: str, shape: str | None, label_names: Any = None) -> Shape:
    if kind not in KINDS:
        raise InputError(f"unknown kind {kind!r}; expected one of {list(KINDS)}")
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
    is a problem. ``label_names``: see :func:`ingest_file`.
    """
    source = Path(path)
    the_shape = _check_args(kind, shape, label_names)
    the_fmt = detect_format(source, fmt)
    mapping = parse_column_map(column_map)
    names = parse_label_names(list(label_names) if label_names is not None else None)
    records: list[BaseModel] = []
    problems: list[Problem] = []
    seen: dict[str, tuple[str, int]] = {}
    for line, _raw, record, digest in _parse(
        kind, source, the_fmt, the_shape, mapping, workflow, label_names=names
    ):
        if record is None:
            problems.append(Problem(file=str(source), line=line, reason=digest))
            continue
        rid: str = record.id  # type: ignore[attr-defined]
        prev = seen.get(rid)
        if prev is None:
            seen[rid] = (digest, line)
            records.append(record)
        elif prev[0] != digest:
            problems.append(Problem(file=str(source), line=line, reason=_dup_reason(rid, prev[1])))
    return records, problems


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
        reason = reason.encode("utf-8", "backslashreplace").decode("utf-8")  # printable
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
                _raw_row(entry[1], entry[2]),
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
    """
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
                        _raw_row(*by_id[rid]),
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
                    quarantine.add(_raw_row(line, raw), _store_reason(row_exc or exc))
            counts["batches"] += 1
            progress.update(task, status=f"{counts['added']} added")

        for line, raw, record, digest in _parse(
            kind, source, the_fmt, the_shape, mapping, workflow, tick, names
        ):
            counts["rows"] += 1
            if record is None:
                quarantine.add(_raw_row(line, raw), digest)
                continue
            rid: str = record.id  # type: ignore[attr-defined]
            prev = seen.get(rid)
            if prev is not None:
                if prev[0] == digest:
                    counts["existing"] += 1
                else:
                    quarantine.add(_raw_row(line, raw), _dup_reason(rid, prev[1]))
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
