"""Rows to records: the validation of one row, by the fast path (pydantic straight from a
JSONL line's bytes) or the general one (any format and shape), with the reason for a bad row.

Every failure of a row, whatever raises it, becomes that row's reason; nothing here stops an
ingest. :mod:`tunegate.io._ingest` stores the good rows and quarantines the bad ones.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from tunegate.config import Workflow
from tunegate.io._readers import Format, RawRow, check_file, iter_rows, jsonl_lines, jsonl_row
from tunegate.io._shapes import RowError, Shape, apply_shape
from tunegate.records import (
    Decision,
    Example,
    Override,
    check_json_value,
    utcnow,
    validation_message,
)
from tunegate.store._hashing import RECORD_TYPES, record_hash, record_hash_plain

__all__ = ["Parsed", "build_record", "parse_rows", "raw_row", "unknown_label_reason"]

_JSON_FIELDS = ("metadata", "probabilities", "rule_hits", "slice_tags")
_FOLD_EXTRA = ("tickets", "examples")  # unknown columns become metadata for these kinds
_ID_PREFIX = {"decisions": "dec", "overrides": "ovr", "examples": "ex"}
_NEEDS_TIME = ("decisions", "overrides")
_UNDATED = datetime(1970, 1, 1, tzinfo=UTC)
"""Stands for the defaulted ``created_at`` of an undated ticket in its identity hash."""


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


def parse_rows(
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


def raw_row(line: int, raw: RawRow | bytes) -> RawRow:
    return raw if isinstance(raw, RawRow) else RawRow(line, raw.decode("utf-8"))
