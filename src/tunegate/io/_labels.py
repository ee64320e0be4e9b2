"""The labels of a data file (CSV, JSONL or Parquet): what ``tunegate init --from`` reads.

The label column is ``--label-column`` or, when not given, the first column named (case
insensitive) ``label``, ``category``, ``intent``, ``class``, ``target`` or ``labels``. The text
column is ``--text-column`` or the first of ``text``, ``document``, ``query``, ``utterance``,
``sentence``, ``input``, ``content``; rows with a blank text are not counted. Rows without a
label, and rows labelled ``out_of_scope`` (the label suites reserve for queries no class
fits), are counted apart and give no class.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunegate.errors import InputError
from tunegate.io._readers import detect_format, iter_rows
from tunegate.records import OUT_OF_SCOPE_LABEL

__all__ = ["LABEL_COLUMNS", "TEXT_COLUMNS", "LabelSummary", "read_label_counts"]

LABEL_COLUMNS = ("label", "category", "intent", "class", "target", "labels")
"""Column names taken as the label column, in this order, when none is given."""
TEXT_COLUMNS = ("text", "document", "query", "utterance", "sentence", "input", "content")
"""Column names taken as the text column, in this order, when none is given."""

_SCAN_ROWS = 200


@dataclass(frozen=True)
class LabelSummary:
    """What :func:`read_label_counts` found in a data file."""

    file: str
    label_column: str
    text_column: str | None
    """``None`` when the file has no recognised text column (labels only)."""
    counts: dict[str, int] = field(default_factory=dict)
    """Label -> rows, sorted by label."""
    rows: int = 0
    """Rows read (bad rows included)."""
    unlabelled: int = 0
    """Rows without a label (or without a text)."""
    out_of_scope: int = 0
    """Rows labelled ``out_of_scope``."""
    bad_rows: int = 0
    """Rows the reader could not parse."""


def _pick(
    columns: list[str], given: str | None, known: tuple[str, ...], what: str, path: Path
) -> str | None:
    if given is not None:
        if given not in columns:
            raise InputError(
                f"{path}: no column {given!r} for the {what}; the columns are {columns}"
            )
        return given
    lowered = {c.lower(): c for c in columns}
    for name in known:
        if name in lowered:
            return lowered[name]
    return None


def read_label_counts(
    path: str | Path,
    *,
    label_column: str | None = None,
    text_column: str | None = None,
    fmt: str | None = None,
) -> LabelSummary:
    """Count the rows per label of a CSV, JSONL or Parquet file (see the module docstring).

    Raises :class:`InputError` when the file is missing or unreadable, when no label column is
    found (naming the columns and ``--label-column``) or when the labels are integers (class
    indices without names).
    """
    p = Path(path)
    rows = list(iter_rows(p, detect_format(p, fmt)))
    good = [r.data for r in rows if r.data is not None]
    columns: list[str] = []
    for data in good[:_SCAN_ROWS]:
        columns += [str(k) for k in data if str(k) not in columns]
    if not good:
        raise InputError(f"{p}: no readable rows; check the file and its format")
    label_col = _pick(columns, label_column, LABEL_COLUMNS, "labels", p)
    if label_col is None:
        raise InputError(
            f"{p}: no label column found (looked for {list(LABEL_COLUMNS)}); the columns are "
            f"{columns}; name it with --label-column COLUMN"
        )
    text_col = _pick(columns, text_column, TEXT_COLUMNS, "texts", p)
    counts: Counter[str] = Counter()
    unlabelled = oos = 0
    indices = 0
    for data in good:
        value: Any = data.get(label_col)
        if text_col is not None and not str(data.get(text_col) or "").strip():
            unlabelled += 1
            continue
        if value is None or not str(value).strip():
            unlabelled += 1
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            indices += 1
        label = str(value).strip()
        if label == OUT_OF_SCOPE_LABEL:
            oos += 1
            continue
        counts[label] += 1
    if counts and (indices == sum(counts.values()) or all(k.isdigit() for k in counts)):
        raise InputError(
            f"{p}: the labels in column {label_col!r} are class indices ({sorted(counts)[:5]}"
            f"...), not names; write the class names into the file (the zero-shot model reads "
            f"them as descriptions)"
        )
    return LabelSummary(
        file=str(p),
        label_column=label_col,
        text_column=text_col,
        counts=dict(sorted(counts.items())),
        rows=len(rows),
        unlabelled=unlabelled,
        out_of_scope=oos,
        bad_rows=len(rows) - len(good),
    )
