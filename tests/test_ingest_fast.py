"""The fast ingestion path gives exactly what the general path gives.

JSONL lines of native-shaped rows are validated by pydantic straight from the bytes and hashed
from the record's attributes; every other row takes the general path (``json.loads``, then
``build_record``). These tests pin that the shortcut never changes a verdict, a record or an
identity hash, and that the store's fast SQLite parameters equal the generic conversion.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import _store_fixtures
from tunegate.config import Workflow
from tunegate.io import ingest_file
from tunegate.io._readers import jsonl_row
from tunegate.io._rows import _fast_record, _general
from tunegate.records import Decision, Example, Override, RuleHit, Ticket
from tunegate.store import Store
from tunegate.store import _schema as schema
from tunegate.store._bulk import _sqlite_datetime, _sqlite_params, _sqlite_params_generic
from tunegate.store._hashing import json_encoder, record_hash, record_hash_plain

store = _store_fixtures.store
store_url = _store_fixtures.store_url  # fixtures

IST = timezone(timedelta(hours=5, minutes=30))

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


def _records() -> list[tuple[str, Any]]:
    return [
        (
            "tickets",
            Ticket(
                id="t1",
                text='héllo ✓ \u2028 "quoted"',
                created_at=datetime(2024, 1, 1, 3, tzinfo=IST),
                metadata={"b": [1, 2.5, {"z": None, "a": True}], "a": "x", "é": -0.0, "n": 1e16},
            ),
        ),
        ("tickets", Ticket(id="t2", text="x", created_at=datetime(2024, 1, 1))),
        (
            "decisions",
            Decision(
                id="d",
                ticket_id="t",
                model_version="m",
                probabilities={"b": 0.25, "a": 0.75},
                label="a",
                h_norm=0.5,
                route="auto",
                latency_ms=3,
                created_at=datetime(2024, 1, 1, tzinfo=UTC),
                rule_hits=[RuleHit(rule="r", label="a", matched=["x", "y"])],
                shadow=True,
            ),
        ),
        (
            "overrides",
            Override(
                id="o",
                ticket_id="t",
                final_label="a",
                reason_code="R2",
                created_at=datetime(2024, 2, 1, 0, 0, 0, 5, tzinfo=IST),
                review_status="reviewed",
            ),
        ),
        (
            "examples",
            Example(
                id="e",
                text="t",
                label="a",
                reviewer="bob",
                slice_tags=["x"],
                metadata={"k": {"n": 1}},
                ticket_id="t",
            ),
        ),
    ]


@pytest.mark.parametrize(("kind", "record"), _records())
def test_plain_hash_equals_record_hash(kind: str, record: Any) -> None:
    assert record_hash_plain(kind, record) == record_hash(kind, record)


@settings(max_examples=150, deadline=None)
@given(metadata=st.dictionaries(st.text(max_size=6), json_values, max_size=4))
def test_plain_hash_equals_record_hash_for_any_json_metadata(metadata: dict[str, Any]) -> None:
    ticket = Ticket(id="t", text="x", created_at=datetime(2024, 1, 1), metadata=metadata)
    assert record_hash_plain("tickets", ticket) == record_hash("tickets", ticket)


def test_plain_hash_refuses_non_finite_floats() -> None:
    ticket = Ticket.model_construct(  # the record itself refuses inf; the hash must too
        id="t", text="x", created_at=datetime(2024, 1, 1, tzinfo=UTC), metadata={"x": math.inf}
    )
    with pytest.raises(ValueError):
        record_hash_plain("tickets", ticket)


@settings(max_examples=150, deadline=None)
@given(value=json_values)
def test_json_encoder_equals_json_dumps(value: Any) -> None:
    for sort_keys in (False, True):
        encode = json_encoder(sort_keys=sort_keys)
        expected = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys)
        assert encode(value) == expected


def test_fast_sqlite_params_equal_generic() -> None:
    entries = [
        (rec.id, record_hash(kind, rec), rec) for kind, rec in _records() if kind == "tickets"
    ]
    fast = _sqlite_params("tickets", schema.tickets, entries)
    assert fast == _sqlite_params_generic("tickets", schema.tickets, entries)
    assert fast[0][2] == "2023-12-31 21:30:00.000000"  # UTC, SQLAlchemy's storage format


T = '"created_at":"2024-05-01T08:00:00+02:00"'
GOOD = [
    ("tickets", '{"id":"t1","text":"VPN down",' + T + ',"metadata":{"a":[1,2.5],"b":null}}'),
    ("tickets", '{"id":"t2","text":"ünïcode ✓",' + T + "}"),
    ("tickets", '{"id":"t3","text":"x","created_at":1714550400}'),
    (
        "decisions",
        '{"id":"d1","ticket_id":"t1","model_version":"m","label":"vpn_issue",'
        '"probabilities":{"vpn_issue":0.9,"hardware":0.1},"h_norm":0.3,"route":"auto",'
        '"rule_hits":[{"rule":"r","label":"vpn_issue","matched":["vpn"]}],' + T + "}",
    ),
    (
        "overrides",
        '{"id":"o1","ticket_id":"t1","final_label":"hardware","reason_code":"R2",' + T + "}",
    ),
    (
        "examples",
        '{"id":"e1","text":"MFA push spam at night","label":"account_unlock",'
        '"metadata":{"shift":"night"}}',
    ),
]
# Lines the fast path must hand to the general path (which accepts or rejects them itself).
GENERAL = [
    ("tickets", '{"id":"t1","text":"x",' + T + ',"metadata":{"a":NaN}}'),  # bad constant
    ("tickets", '{"id":"t1","text":"x",' + T + ',"metadata":{"a":-Infinity}}'),
    ("tickets", '{"id":"t1","text":"x",' + T + ',"metadata":{"a":1e400}}'),  # overflows to inf
    ("tickets", '{"id":"t1","text":"\\ud800",' + T + "}"),  # lone surrogate: json.loads takes it
    ("tickets", '{"id":"t1","text":"x",' + T + ',"shift":"night"}'),  # extra -> metadata
    ("tickets", '{"id":7,"text":"x",' + T + "}"),  # numeric id -> "7"
    ("tickets", '{"id":"t1","text":"x",' + T + ',"metadata":"{\\"a\\": 1}"}'),  # JSON string
    ("tickets", '{"id":"t1","text":"  ",' + T + "}"),  # empty text
    ("tickets", '{"id":"t1","text":"x","created_at":"yesterday"}'),
    ("tickets", "[1, 2]"),
    ("tickets", '{"id":"t1","text":"a\tb",' + T + "}"),  # raw control character
    ("tickets", '{"id":"t1","text":"x",' + T + "} trailing"),
    (
        "overrides",
        '{"ticket_id":"t1","final_label":"hardware","reason_code":"R2",' + T + "}",
    ),  # no id: derived from the content
    (
        "overrides",
        '{"id":"","ticket_id":"t1","final_label":"hardware","reason_code":"R2",' + T + "}",
    ),
    ("overrides", '{"id":"o1","ticket_id":"t1","final_label":"hardware","reason_code":"R2"}'),
    ("overrides", '{"id":"o1","ticket_id":"t1","final_label":"nope","reason_code":"R2",' + T + "}"),
    ("examples", '{"id":"e1","text":"x","label":"not_a_label"}'),
]


@pytest.mark.parametrize(("kind", "line"), GOOD)
def test_fast_path_gives_the_general_record(kind: str, line: str, workflow: Workflow) -> None:
    fast = _fast_record(kind, line.encode(), workflow)
    assert fast is not None, "a plain native row should take the fast path"
    _, _, record, digest = _general(kind, jsonl_row(1, line.encode()), "native", {}, workflow)
    assert record is not None
    fast_record, fast_digest = fast
    if isinstance(record, Example):  # created_at defaults to "now" on both paths
        fast_record = fast_record.model_copy(update={"created_at": record.created_at})
    assert fast_record == record
    assert fast_digest == digest == record_hash(kind, record)


@pytest.mark.parametrize(("kind", "line"), GENERAL)
def test_fast_path_defers_to_the_general_path(kind: str, line: str, workflow: Workflow) -> None:
    raw = line.encode()
    assert _fast_record(kind, raw, workflow) is None


def test_ingest_mixes_both_paths_and_quarantines_exactly(
    store: Store, tmp_path: Path, workflow: Workflow
) -> None:
    lines = [line for kind, line in GOOD if kind == "tickets"]
    lines += [line for kind, line in GENERAL if kind == "tickets"]
    path = tmp_path / "t.jsonl"
    path.write_bytes(("\n".join(lines) + "\n").encode())
    report = ingest_file(store, "tickets", path, workflow=workflow, quarantine_dir=tmp_path)
    # good: t1, t2, t3 (fast) and the numeric id "7" (general path); the extra column and the
    # JSON-string metadata are good rows of the general path but reuse t1 with other content
    bad_lines = {p.line: p.reason for p in report.problems}
    assert report.rows == len(lines)
    assert report.added == 4  # t1, t2, t3, "7"
    assert sorted(bad_lines) == [4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15]
    assert "non-standard JSON constant NaN" in bad_lines[4]
    assert "Infinity" in bad_lines[5]
    assert "metadata holds inf, which JSON cannot represent" in bad_lines[6]
    assert "text holds an unpaired surrogate (\\ud800" in bad_lines[7]
    assert "duplicate id 't1'" in bad_lines[8]
    assert "not valid JSON" not in bad_lines[10] and "duplicate id 't1'" in bad_lines[10]
    assert "empty" in bad_lines[11]
    assert "bad timestamp" in bad_lines[12]
    assert "expected a JSON object" in bad_lines[13]
    assert "malformed JSON" in bad_lines[14] and "malformed JSON" in bad_lines[15]
    assert {t.id for t in store.tickets()} == {"t1", "t2", "t3", "7"}
    # a changed fast-path row versus the store: quarantined with its original text
    changed = tmp_path / "changed.jsonl"
    changed.write_text('{"id":"t2","text":"other",' + T + "}\n" + lines[0] + "\n")
    again = ingest_file(store, "tickets", changed, workflow=workflow, quarantine_dir=tmp_path)
    assert (again.added, again.existing, again.quarantined) == (0, 1, 1)
    entry = json.loads(Path(str(again.quarantine_file)).read_text().splitlines()[0])
    assert entry["line"] == 1 and "already in the store" in entry["reason"]
    assert entry["raw"] == '{"id":"t2","text":"other",' + T + "}"


@pytest.mark.parametrize(
    "value",
    [
        datetime(2024, 1, 1, tzinfo=UTC),
        datetime(5, 2, 3, 4, 5, 6, 7),
        datetime(2024, 5, 1, 8, 0, 0, 123, tzinfo=timezone(timedelta(hours=-5))),
        datetime(2024, 7, 5, 23, 30, tzinfo=IST),
        Ticket.model_validate_json(
            '{"id":"t","text":"x","created_at":"2024-01-01T00:00:17Z"}'
        ).created_at,
    ],
)
def test_sqlite_datetime_is_sqlalchemys_format(value: datetime) -> None:
    v = value.astimezone(UTC) if value.tzinfo is not None else value
    expected = (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d} {v.hour:02d}:{v.minute:02d}:"
        f"{v.second:02d}.{v.microsecond:06d}"
    )
    assert _sqlite_datetime(value) == expected
