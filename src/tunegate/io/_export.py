"""Export stored records to JSONL, CSV or Parquet (files that ``ingest`` reads back)."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tunegate.errors import InputError
from tunegate.io._jsonl import write_jsonl
from tunegate.io._readers import detect_format
from tunegate.store import Store
from tunegate.store._hashing import RECORD_TYPES

__all__ = ["export_file", "flat_row"]


def _records(store: Store, kind: str) -> list[BaseModel]:
    if kind == "tickets":
        return list(store.tickets())
    if kind == "decisions":
        return list(store.decisions(shadow=None))
    if kind == "overrides":
        return list(store.overrides())
    if kind == "examples":
        return list(store.examples())
    raise InputError(f"unknown kind {kind!r}; expected one of {sorted(RECORD_TYPES)}")


def flat_row(record: BaseModel, *, keep_datetimes: bool = False) -> dict[str, Any]:
    """One record as a flat row: nested values (dicts, lists) JSON-encoded as strings."""
    data = record.model_dump(mode="json")
    out: dict[str, Any] = {}
    for name, value in data.items():
        if isinstance(value, dict | list):
            out[name] = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        elif keep_datetimes and name == "created_at":
            out[name] = getattr(record, name)
        else:
            out[name] = value
    return out


def export_file(store: Store, kind: str, path: str | Path, *, fmt: str | None = None) -> int:
    """Write every stored record of ``kind`` to ``path`` (format by suffix or ``fmt``);
    returns the number of records. The file round-trips through ``ingest_file``."""
    target = Path(path)
    the_fmt = detect_format(target, fmt)
    records = _records(store, kind)
    if the_fmt == "jsonl":
        return write_jsonl(target, records)
    columns = list(RECORD_TYPES[kind].model_fields)
    target.parent.mkdir(parents=True, exist_ok=True)
    if the_fmt == "csv":
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(columns)
                for rec in records:
                    row = flat_row(rec)
                    writer.writerow([_cell(row.get(c)) for c in columns])
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return len(records)
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [flat_row(rec, keep_datetimes=True) for rec in records]
    table = pa.Table.from_pylist(rows) if rows else pa.table({c: [] for c in columns})
    pq.write_table(table, target)
    return len(records)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
