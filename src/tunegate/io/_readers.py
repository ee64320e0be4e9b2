"""Raw row readers: JSONL, CSV and Parquet into dicts, with line numbers and per-row errors.

A reader never raises for a bad row; it yields a :class:`RawRow` whose ``error`` says what is
wrong, keeping the original text (and, for invalid UTF-8, the exact bytes) for the quarantine.
File-level problems (missing file, unreadable Parquet, CSV without a header) raise
:class:`~tunegate.errors.InputError`.
"""

from __future__ import annotations

import base64
import csv
import json
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tunegate.errors import InputError

__all__ = [
    "FORMATS",
    "Format",
    "RawRow",
    "check_file",
    "detect_format",
    "iter_rows",
    "jsonl_lines",
    "jsonl_row",
    "progress_total",
]

Format = Literal["jsonl", "csv", "parquet"]
FORMATS: dict[str, Format] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_BOM = b"\xef\xbb\xbf"

Progress = Callable[[int], None]


@dataclass(frozen=True)
class RawRow:
    """One row as read: its line (CSV: first physical line; Parquet: 1-based row number)."""

    line: int
    raw: str
    data: dict[str, Any] | None = None
    error: str | None = None
    raw_base64: str | None = None
    """The exact bytes, when they are not valid UTF-8."""


def detect_format(path: Path, fmt: str | None = None) -> Format:
    """The format named by ``fmt`` or by the file suffix (``.jsonl``, ``.csv``, ``.parquet``)."""
    if fmt is not None:
        value = fmt.lower().lstrip(".")
        value = {"ndjson": "jsonl", "json": "jsonl", "pq": "parquet"}.get(value, value)
        if value not in ("jsonl", "csv", "parquet"):
            raise InputError(f"unknown format {fmt!r}; expected one of jsonl, csv, parquet")
        return value  # type: ignore[return-value]
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise InputError(
            f"{path}: cannot tell the format from the suffix {path.suffix!r}; name the file "
            f"*.jsonl, *.csv or *.parquet, or pass --format jsonl|csv|parquet"
        )
    return found


def _bad_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _invalid_utf8(raw: bytes, number: int) -> RawRow | None:
    """A bad row for ``raw`` when it is not valid UTF-8 (keeping the exact bytes), else None."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        shown = raw.decode("utf-8", errors="backslashreplace").rstrip("\r\n")
        return RawRow(
            number,
            shown,
            error=f"invalid UTF-8 at byte {exc.start}",
            raw_base64=base64.b64encode(raw).decode("ascii"),
        )
    return None


def jsonl_lines(path: Path, progress: Progress) -> Iterator[tuple[int, bytes]]:
    """``(line number, bytes)`` of every non-blank line of a JSONL file, without the line end
    (and without a UTF-8 BOM on line 1). ``progress`` receives bytes read, about every 64 KB."""
    pending = 0
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            pending += len(raw)
            if pending >= 65536:
                progress(pending)
                pending = 0
            if number == 1:
                raw = raw.removeprefix(_BOM)
            raw = raw.rstrip(b"\r\n")
            if raw.strip():
                yield number, raw
    progress(pending)


def jsonl_row(number: int, raw: bytes) -> RawRow:
    """One JSONL line (see :func:`jsonl_lines`) parsed into a :class:`RawRow`."""
    bad = _invalid_utf8(raw, number)
    if bad is not None:
        return bad
    text = raw.decode("utf-8")
    try:
        data = json.loads(text, parse_constant=_bad_constant)
    except json.JSONDecodeError as exc:
        return RawRow(number, text, error=f"malformed JSON: {exc.msg} at column {exc.colno}")
    except (ValueError, RecursionError) as exc:
        return RawRow(number, text, error=f"malformed JSON: {exc}")
    if not isinstance(data, dict):
        return RawRow(
            number,
            text,
            error=f"expected a JSON object per line, got {type(data).__name__}",
        )
    return RawRow(number, text, data=data)


def _jsonl(path: Path, progress: Progress) -> Iterator[RawRow]:
    for number, raw in jsonl_lines(path, progress):
        yield jsonl_row(number, raw)


_UNTERMINATED = (
    "malformed CSV: a quoted field opened on this line is not closed properly (unterminated "
    "or stray quote), so it ran into the following lines; this line was set aside and reading "
    'resumed on the next line. Close the quote, or double a quote inside a quoted field ("")'
)


def _swallowed(lines: list[tuple[int, str]], width: int) -> bool:
    """True when a record of several physical lines looks like an unterminated quote that
    swallowed whole rows: its first line, read with the quote as a plain character, already has
    the header's ``width`` fields, and a line in between is itself a complete row of ``width``
    fields. (A genuine multi-line text has fewer fields on its first line.)"""
    first = next(csv.reader([lines[0][1]], quoting=csv.QUOTE_NONE), [])
    if len(first) != width:
        return False
    for _, text in lines[1:-1]:
        try:
            row = next(csv.reader([text], strict=True), [])
        except csv.Error:
            continue
        if len(row) == width:
            return True
    return False


def _csv(path: Path, progress: Progress) -> Iterator[RawRow]:
    bad_utf8: list[RawRow] = []
    queue: deque[tuple[int, str]] = deque()  # lines given back after an unterminated quote
    record: list[tuple[int, str]] = []  # the physical lines of the record being read

    def physical() -> Iterator[tuple[int, str]]:
        with path.open("rb") as fh:
            for number, raw in enumerate(fh, 1):
                progress(len(raw))
                if number == 1:
                    raw = raw.removeprefix(_BOM)
                bad = _invalid_utf8(raw, number)
                if bad is not None:
                    bad_utf8.append(bad)
                    continue
                yield number, raw.decode("utf-8")

    source = physical()

    def feed() -> Iterator[str]:
        while True:
            item = queue.popleft() if queue else next(source, None)
            if item is None:
                return
            record.append(item)
            yield item[1]

    reader = csv.reader(feed(), strict=True)
    header: list[str] | None = None
    while True:
        try:
            fields = next(reader)
            error = None
        except StopIteration:
            break
        except csv.Error as exc:
            fields, error = [], f"malformed CSV: {exc}"
        lines = record[:]
        record.clear()
        yield from bad_utf8
        bad_utf8.clear()
        if not lines:
            continue
        line = lines[0][0]
        raw = "".join(text for _, text in lines).rstrip("\r\n")
        if (
            len(lines) > 1
            and header is not None
            and (error is not None or len(fields) != len(header) or _swallowed(lines, len(header)))
        ):  # an unterminated quote: set its line aside, read the lines it took once more
            queue.extendleft(reversed(lines[1:]))
            reader = csv.reader(feed(), strict=True)
            yield RawRow(line, lines[0][1].rstrip("\r\n"), error=_UNTERMINATED)
            continue
        if error is not None:
            yield RawRow(line, raw, error=error)
            continue
        if not fields or all(not f.strip() for f in fields):
            continue
        if header is None:
            header = [f.strip() for f in fields]
            dupes = sorted({h for h in header if header.count(h) > 1})
            if dupes or any(not h for h in header):
                raise InputError(
                    f"{path}:{line}: the CSV header has duplicate or empty column "
                    f"names {dupes or ['']}; fix the header row"
                )
            continue
        if len(fields) != len(header):
            yield RawRow(
                line,
                raw,
                error=f"malformed CSV: expected {len(header)} fields (as in the header), "
                f"got {len(fields)}",
            )
            continue
        data = {name: value for name, value in zip(header, fields, strict=True) if value != ""}
        yield RawRow(line, raw, data=data)
    yield from bad_utf8
    if header is None:
        raise InputError(
            f"{path}: the CSV file has no header row; the first row must name the "
            f"columns (e.g. id,text,created_at)"
        )


def _parquet(path: Path, progress: Progress) -> Iterator[RawRow]:
    import pyarrow.parquet as pq

    try:
        pfile = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from exc
    number = 0
    for batch in pfile.iter_batches(batch_size=5000):
        for row in batch.to_pylist():
            number += 1
            progress(1)
            raw = json.dumps(row, ensure_ascii=False, default=str)
            yield RawRow(number, raw, data=row)


def check_file(path: Path) -> None:
    """:class:`InputError` unless ``path`` is an existing file."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a file")


def iter_rows(path: Path, fmt: Format, *, progress: Progress | None = None) -> Iterator[RawRow]:
    """Every row of ``path`` (bad ones carry ``error``). ``progress`` receives bytes (JSONL,
    CSV) or rows (Parquet) as they are consumed."""
    check_file(path)
    tick: Progress = progress or (lambda _n: None)
    if fmt == "jsonl":
        return _jsonl(path, tick)
    if fmt == "csv":
        return _csv(path, tick)
    return _parquet(path, tick)


def progress_total(path: Path, fmt: Format) -> int:
    """The total :func:`iter_rows` reports progress against (bytes, or Parquet rows)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return int(pq.ParquetFile(path).metadata.num_rows)
        except Exception:
            return 0
    return path.stat().st_size
