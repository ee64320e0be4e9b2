"""The triage review round trip: export suggestions to a file, import the reviewed file,
or confirm one failure; confirmed labels are stored as
:class:`~tunegate.documents.TriageLabel` documents (key: failure id).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunegate.diagnose._failures import FailureCase
from tunegate.diagnose._triage import TriageCategory, TriageSuggestion
from tunegate.documents import TriageLabel
from tunegate.errors import InputError
from tunegate.records import utcnow

if TYPE_CHECKING:
    from tunegate.store import Store

__all__ = [
    "TriageImportReport",
    "confirm_triage",
    "confirmed_triage",
    "export_triage",
    "import_triage",
]

_COLUMNS = [
    "failure_id",
    "source",
    "reason_code",
    "model_label",
    "final_label",
    "suggested_category",
    "rule",
    "evidence",
    "category",
    "note",
    "text",
]


def export_triage(
    path: str | Path, cases: Sequence[FailureCase], suggestions: Sequence[TriageSuggestion]
) -> int:
    """Write one row per case for review (CSV, or JSONL when the suffix is .jsonl).

    The ``category`` column is left empty: a reviewer fills it with a category (accepting or
    correcting ``suggested_category``); rows left empty are skipped on import. Returns rows.
    """
    p = Path(path)
    sug = {s.failure_id: s for s in suggestions}
    rows = []
    for c in cases:
        s = sug.get(c.id)
        rows.append(
            {
                "failure_id": c.id,
                "source": c.source,
                "reason_code": c.reason_code or "",
                "model_label": c.model_label or "",
                "final_label": c.final_label,
                "suggested_category": s.category.value if s else "",
                "rule": s.rule if s else "",
                "evidence": s.evidence if s else "",
                "category": "",
                "note": "",
                "text": c.text,
            }
        )
    if p.suffix.lower() == ".jsonl":
        with p.open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    else:
        with p.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    return len(rows)


@dataclass
class TriageImportReport:
    """What an import did."""

    confirmed: int = 0
    """Rows stored with a category."""
    corrected: int = 0
    """Of those, rows whose category differs from the suggestion."""
    skipped: int = 0
    """Rows with an empty category (not yet reviewed)."""
    errors: list[str] = field(default_factory=list)
    """``file:line: message`` per bad row (nothing is stored when there are any)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read_rows(p: Path) -> list[tuple[int, dict[str, Any]]]:
    if not p.exists():
        raise InputError(f"{p}: no such file; export one with `tunegate triage export {p}`")
    if p.suffix.lower() == ".jsonl":
        rows: list[tuple[int, dict[str, Any]]] = []
        for lineno, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                rows.append((lineno, {"__error__": f"not valid JSON: {exc.msg}"}))
                continue
            rows.append(
                (
                    lineno,
                    value if isinstance(value, dict) else {"__error__": "expected a JSON object"},
                )
            )
        return rows
    with p.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"failure_id", "category"} - set(reader.fieldnames or [])
        if missing:
            raise InputError(
                f"{p}:1: missing column(s) {sorted(missing)}; expected the columns "
                f"written by `tunegate triage export`: {_COLUMNS}"
            )
        return [(i, dict(row)) for i, row in enumerate(reader, start=2)]


def import_triage(
    path: str | Path, store: Store, *, reviewer: str = "unknown", known_ids: set[str] | None = None
) -> TriageImportReport:
    """Validate an edited export and store each reviewed row as ``("triage", failure_id)``.

    All rows are validated first; any error raises :class:`InputError` listing every bad line
    (``file:line: ...``) and nothing is stored. ``known_ids`` (optional) rejects unknown ids.
    """
    p = Path(path)
    report = TriageImportReport()
    allowed = [c.value for c in TriageCategory]
    staged: list[tuple[str, TriageLabel]] = []
    seen: dict[str, int] = {}
    for lineno, row in _read_rows(p):
        where = f"{p}:{lineno}"
        if "__error__" in row:
            report.errors.append(f"{where}: {row['__error__']}")
            continue
        fid = str(row.get("failure_id") or "").strip()
        category = str(row.get("category") or "").strip().lower()
        if not fid:
            report.errors.append(f"{where}: empty failure_id")
            continue
        if fid in seen:
            report.errors.append(f"{where}: failure_id {fid!r} repeats line {seen[fid]}")
            continue
        seen[fid] = lineno
        if known_ids is not None and fid not in known_ids:
            report.errors.append(f"{where}: unknown failure_id {fid!r}")
            continue
        if not category:
            report.skipped += 1
            continue
        if category not in allowed:
            report.errors.append(f"{where}: category {category!r} is not one of {allowed}")
            continue
        suggested = str(row.get("suggested_category") or "").strip() or None
        if suggested and suggested != category:
            report.corrected += 1
        staged.append(
            (
                fid,
                _triage_payload(
                    category,
                    reviewer=reviewer,
                    suggested=suggested,
                    rule=row.get("rule") or None,
                    note=str(row.get("note") or ""),
                    row=row,
                ),
            )
        )
    if report.errors:
        raise InputError(
            f"{len(report.errors)} bad row(s), nothing imported; fix them and "
            f"import again:\n" + "\n".join(report.errors)
        )
    for fid, payload in staged:
        store.documents(TriageLabel).put(fid, payload)
        report.confirmed += 1
    if staged:
        store.audit(
            "triage.import",
            reviewer,
            {"file": str(p), "confirmed": report.confirmed, "corrected": report.corrected},
        )
    return report


def _triage_payload(
    category: str,
    *,
    reviewer: str,
    suggested: str | None = None,
    rule: Any = None,
    note: str = "",
    row: Mapping[str, Any] | None = None,
) -> TriageLabel:
    row = row or {}
    return TriageLabel(
        category=category,
        suggested_category=suggested,
        rule=rule,
        confirmed=True,
        reviewer=reviewer,
        confirmed_at=utcnow().isoformat(),
        note=note,
        source=row.get("source") or None,
        reason_code=row.get("reason_code") or None,
        model_label=row.get("model_label") or None,
        final_label=row.get("final_label") or None,
    )


def confirm_triage(
    store: Store, failure_id: str, category: str, *, reviewer: str = "unknown", note: str = ""
) -> dict[str, Any]:
    """Confirm (or correct) one failure's category and store it; returns the stored payload."""
    value = category.strip().lower()
    allowed = [c.value for c in TriageCategory]
    if value not in allowed:
        raise InputError(f"category {category!r} is not one of {allowed}")
    found = store.documents(TriageLabel).get(failure_id)
    previous = found.model_dump() if found is not None else {}
    payload = _triage_payload(
        value,
        reviewer=reviewer,
        note=note,
        suggested=previous.get("suggested_category"),
        rule=previous.get("rule"),
        row=previous,
    )
    store.documents(TriageLabel).put(failure_id, payload)
    store.audit("triage.confirm", reviewer, {"failure_id": failure_id, "category": value})
    return payload.model_dump(mode="json")


def confirmed_triage(store: Store) -> dict[str, str]:
    """failure_id -> confirmed category, for every confirmed triage record in the store."""
    return {k: v.category for k, v in store.documents(TriageLabel).items() if v.confirmed}
