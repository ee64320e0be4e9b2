"""Ingestion hardening (issues #18 and #25): no good row lost to a bad one, whatever the bad
row holds; one validation path with the HTTP API; overrides need their ticket; quarantine files
that never collide; unterminated CSV quotes; undated tickets; label hints; explicit hf indexes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tunegate.cli import main
from tunegate.config import Workflow, parse_workflow, starter_yaml
from tunegate.io import ingest_file, quarantine_path, read_records
from tunegate.records import (
    MAX_TEXT_CHARS,
    STORED,
    Decision,
    Example,
    Override,
    Ticket,
    utcnow,
    validation_message,
)
from tunegate.store import Store

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
WHEN = "2024-05-01T08:00:00Z"


def good_ticket(n: int) -> str:
    return json.dumps({"id": f"g{n}", "text": f"vpn drops {n}", "created_at": WHEN})


def with_good_rows(tmp_path: Path, bad: str, name: str = "t.jsonl") -> Path:
    """20 good rows, the bad one (line 21), 21 more good rows: 41 good rows in all."""
    lines = [good_ticket(n) for n in range(20)] + [bad] + [good_ticket(n) for n in range(20, 41)]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- #18 a + b: any bad row is quarantined with file, line and reason; 41 of 41 good rows land ---

BAD_ROWS = {
    "offset out of range": (
        '{"id": "b", "text": "x", "created_at": "0001-01-01T00:30:00+01:00"}',
        "created_at: timestamp 0001-01-01T00:30:00+01:00 is out of range once converted to UTC",
    ),
    "offset out of range, top": (
        '{"id": "b", "text": "x", "created_at": "9999-12-31T23:30:00-01:00"}',
        "out of range once converted to UTC",
    ),
    "surrogate in a metadata key": (
        '{"id": "b", "text": "x", "created_at": "' + WHEN + '", "metadata": {"\\ud800": 1}}',
        "metadata (a key) holds an unpaired surrogate (\\ud800",
    ),
    "surrogate in the text": (
        '{"id": "b", "text": "x\\udfff", "created_at": "' + WHEN + '"}',
        "text holds an unpaired surrogate (\\udfff",
    ),
    "surrogate in the id": (
        '{"id": "b\\ud800", "text": "x", "created_at": "' + WHEN + '"}',
        "id holds an unpaired surrogate",
    ),
    "300-deep metadata": (
        '{"id": "b", "text": "x", "created_at": "'
        + WHEN
        + '", "metadata": '
        + '{"a":' * 300
        + "1"
        + "}" * 300
        + "}",
        "metadata is nested more than 32 levels deep",
    ),
    "text over the API limit": (
        json.dumps({"id": "b", "text": "x" * (MAX_TEXT_CHARS + 1), "created_at": WHEN}),
        "text has 20,001 characters, more than the limit of 20,000",
    ),
    "infinite metadata": (
        '{"id": "b", "text": "x", "created_at": "' + WHEN + '", "metadata": {"a": 1e999}}',
        "metadata holds inf",
    ),
}


@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_a_bad_row_never_costs_the_good_ones(case: str, tmp_path: Path, workflow: Workflow) -> None:
    bad, reason = BAD_ROWS[case]
    path = with_good_rows(tmp_path, bad)
    st_ = Store("sqlite://")
    report = ingest_file(st_, "tickets", path, workflow=workflow, quarantine_dir=tmp_path / "q")
    assert (report.rows, report.added, report.quarantined) == (42, 41, 1), report.problems
    problem = report.problems[0]
    assert (problem.file, problem.line) == (str(path), 21)
    assert reason in problem.reason
    entry = json.loads(Path(str(report.quarantine_file)).read_text(encoding="utf-8"))
    assert (entry["file"], entry["line"], entry["reason"]) == (str(path), 21, problem.reason)
    assert st_.count("tickets") == 41


def test_an_unexpected_exception_in_one_row_is_that_rows_reason(
    tmp_path: Path, workflow: Workflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever exception type a row raises (here a bug planted in the slice tagging), the
    row is quarantined with it and the others land."""
    real = Workflow.slice_tags

    def flaky(self: Workflow, text: str, metadata: Any) -> list[str]:
        if text == "boom":
            raise KeyError("planted")
        return real(self, text, metadata)

    monkeypatch.setattr(Workflow, "slice_tags", flaky)
    rows = [{"id": f"e{n}", "text": f"vpn {n}", "label": "vpn_issue"} for n in range(3)]
    rows.insert(1, {"id": "x", "text": "boom", "label": "vpn_issue"})
    path = tmp_path / "e.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = ingest_file(
        Store("sqlite://"), "examples", path, workflow=workflow, quarantine_dir=tmp_path
    )
    assert (report.added, report.quarantined) == (3, 1)
    assert report.problems[0].line == 2 and "KeyError" in report.problems[0].reason


def test_a_row_the_store_refuses_is_quarantined_alone(
    tmp_path: Path, workflow: Workflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    st_ = Store("sqlite://")
    real = Store.add

    def picky(self: Store, kind: Any, records: Any, **kw: Any) -> Any:
        records = list(records)
        if any(r.id == "g5" for r in records):
            raise RuntimeError("planted refusal")
        return real(self, kind, records, **kw)

    monkeypatch.setattr(Store, "add", picky)
    path = tmp_path / "t.jsonl"
    path.write_text("".join(good_ticket(n) + "\n" for n in range(10)))
    report = ingest_file(st_, "tickets", path, workflow=workflow, quarantine_dir=tmp_path)
    assert (report.added, report.quarantined) == (9, 1)
    assert report.problems[0].line == 6 and "planted refusal" in report.problems[0].reason


# -- #18 b: the records themselves refuse; the file path gives the records' own message -------


@pytest.mark.parametrize(
    ("model", "data", "match"),
    [
        (Ticket, {"text": "x" * 20_001}, "text has 20,001 characters"),
        (Example, {"text": "x" * 20_001, "label": "a"}, "limit of 20,000"),
        (Ticket, {"metadata": {"a": float("nan")}}, "metadata holds nan"),
        (Ticket, {"metadata": {"a": [1.0, float("-inf")]}}, "metadata holds -inf"),
        (Example, {"metadata": {"a": float("inf")}, "label": "a"}, "metadata holds inf"),
        (Ticket, {"metadata": json.loads('{"a":' * 300 + "1" + "}" * 300)}, "32 levels deep"),
        (Ticket, {"text": "caf\ud800"}, r"text holds an unpaired surrogate \(\\ud800"),
        (Ticket, {"metadata": {"k": "\udc80"}}, "metadata holds an unpaired surrogate"),
        (Override, {"analyst": "bob\ud800"}, "analyst holds an unpaired surrogate"),
        (Example, {"slice_tags": ["ok", "\ud83d"], "label": "a"}, "slice_tags holds"),
        (Override, {"note": "n" * 2_001}, "note has 2,001 characters"),
        (
            Ticket,
            {"created_at": datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))},
            "out of range once converted to UTC",
        ),
    ],
)
def test_records_refuse_what_no_store_or_api_accepts(
    model: type[Any], data: dict[str, Any], match: str
) -> None:
    base: dict[str, Any] = {
        Ticket: {"id": "t", "text": "x", "created_at": T0},
        Example: {"text": "x"},
        Override: {"ticket_id": "t", "final_label": "a", "reason_code": "R1"},
    }[model]
    with pytest.raises(ValidationError, match=match):
        model.model_validate({**base, **data})


def test_a_file_row_gets_the_same_message_as_the_record(tmp_path: Path, workflow: Workflow) -> None:
    row = {"id": "b", "text": "x" * 30_000, "created_at": WHEN, "metadata": {"a": [[[1]]]}}
    with pytest.raises(ValidationError) as info:
        Ticket.model_validate(row)
    path = with_good_rows(tmp_path, json.dumps(row))
    _, problems = read_records("tickets", path, workflow=workflow)
    assert [p.reason for p in problems] == [validation_message(info.value)]
    assert "30,000 characters" in problems[0].reason


def test_rows_stored_before_the_limits_still_load() -> None:
    """A store may hold what ingestion accepted before the limits: read back with the STORED
    context, such rows load (the store's one-line change); new records are refused."""
    row = {"id": "t", "text": "x" * 30_000, "created_at": T0, "metadata": {"a": float("nan")}}
    with pytest.raises(ValidationError):
        Ticket.model_validate(row)
    assert len(Ticket.model_validate(row, context=STORED).text) == 30_000
    note = {"ticket_id": "t", "final_label": "a", "reason_code": "R1", "note": "n" * 3000}
    assert Override.model_validate(note, context=STORED).note == note["note"]
    probs = {"a": float("nan"), "b": 1.0}
    decision = {"ticket_id": "t", "model_version": "m", "probabilities": probs, "label": "b"}
    decision |= {"h_norm": 0.5, "route": "auto"}
    with pytest.raises(ValidationError, match="finite"):
        Decision.model_validate(decision)
    assert Decision.model_validate(decision, context=STORED).label == "b"


def test_records_keep_accepting_ordinary_values() -> None:
    at = datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=-1)))  # in range in UTC
    t = Ticket(
        id="t", text="ü" * MAX_TEXT_CHARS, created_at=at, metadata={"a": [{"b": 1.5}], "😀": None}
    )
    assert t.created_at == at and len(t.text) == MAX_TEXT_CHARS


# -- #18 c: overrides of tickets that are not in the store ---------------------------------------


def test_override_of_an_unknown_ticket_is_quarantined(tmp_path: Path, workflow: Workflow) -> None:
    st_ = Store("sqlite://")
    st_.add_tickets([Ticket(id="t1", text="vpn down", created_at=T0)])
    rows = [
        {"id": f"o{n}", "ticket_id": tid, "final_label": "hardware", "reason_code": "R2"}
        | {"created_at": WHEN}
        for n, tid in enumerate(["t1", "ghost", "t1"])
    ]
    path = tmp_path / "o.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = ingest_file(st_, "overrides", path, workflow=workflow, quarantine_dir=tmp_path)
    assert (report.rows, report.added, report.quarantined) == (3, 2, 1)
    assert report.problems[0].line == 2
    assert "ticket 'ghost' is not in the store" in report.problems[0].reason
    assert "ingest the tickets first" in report.problems[0].reason
    assert sorted(o.id for o in st_.overrides()) == ["o0", "o2"]


# -- #18 d: quarantine files of distinct source files never collide ------------------------------


def test_quarantine_files_of_same_named_files_do_not_collide(
    tmp_path: Path, workflow: Workflow
) -> None:
    st_ = Store("sqlite://")
    qdir = tmp_path / "q"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = with_good_rows(tmp_path / "a", "{broken a")
    b = with_good_rows(tmp_path / "b", "{broken b")
    report_a = ingest_file(st_, "tickets", a, workflow=workflow, quarantine_dir=qdir)
    report_b = ingest_file(st_, "tickets", b, workflow=workflow, quarantine_dir=qdir)
    assert report_a.quarantine_file != report_b.quarantine_file
    assert quarantine_path(st_, a, "tickets", qdir) != quarantine_path(st_, b, "tickets", qdir)
    evidence_a = Path(str(report_a.quarantine_file)).read_text()
    assert "{broken a" in evidence_a
    assert "{broken b" in Path(str(report_b.quarantine_file)).read_text()
    # b fixed and ingested again: b's stale file goes, a's evidence stays untouched
    b.write_text("".join(good_ticket(n) + "\n" for n in range(41)))
    clean = ingest_file(st_, "tickets", b, workflow=workflow, quarantine_dir=qdir)
    assert clean.quarantined == 0 and not Path(str(report_b.quarantine_file)).exists()
    assert Path(str(report_a.quarantine_file)).read_text() == evidence_a
    # the same file named another way (relative path) still maps to its own quarantine file
    assert quarantine_path(st_, a, "tickets", qdir) == quarantine_path(
        st_, a.parent / ".." / "a" / a.name, "tickets", qdir
    )


# -- #18 e: an unterminated CSV quote no longer swallows the following good rows ---------------

HEAD = b"id,text,created_at\n"
Z = b"2024-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("body", "landed"),
    [
        # silent before: row a's text swallowed b and c, and no problem was reported
        (
            b'a,"broken,' + Z + b"\nb,good one," + Z + b'\nc,ok",' + Z + b"\nd,x," + Z + b"\n",
            ["b", "c", "d"],
        ),
        # an error before, that cost b and c
        (
            b'a,"broken,' + Z + b"\nb,good one," + Z + b'\nc,"fine",' + Z + b"\nd,x," + Z + b"\n",
            ["b", "c", "d"],
        ),
        # an unterminated quote up to the end of the file
        (b"z,ok," + Z + b'\na,"broken,' + Z + b"\nb,good one," + Z + b"\n", ["b", "z"]),
    ],
)
def test_unterminated_csv_quote_keeps_the_following_rows(
    body: bytes, landed: list[str], tmp_path: Path, workflow: Workflow
) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(HEAD + body)
    records, problems = read_records("tickets", path, workflow=workflow)
    assert sorted(r.id for r in records) == landed  # type: ignore[attr-defined]
    assert len(problems) == 1 and "unterminated or stray quote" in problems[0].reason
    first_bad = body.split(b"\n").index(next(x for x in body.split(b"\n") if x.startswith(b"a,")))
    assert problems[0].line == first_bad + 2  # 1-based, after the header


def test_a_genuine_multiline_csv_text_stays_one_row(tmp_path: Path, workflow: Workflow) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(HEAD + b'a,"Hello,\nmy printer, the big one\nis broken",' + Z + b"\n")
    records, problems = read_records("tickets", path, workflow=workflow)
    assert not problems
    assert records[0].text == "Hello,\nmy printer, the big one\nis broken"  # type: ignore[attr-defined]


# -- #25 item 3: tickets without created_at are dated now, and re-ingesting adds nothing ---------


def test_undated_tickets_land_dated_now_and_stay_idempotent(
    tmp_path: Path, workflow: Workflow
) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"id": "u1", "text": "vpn down"}\n{"id": "u2", "text": "printer"}\n')
    st_ = Store("sqlite://")
    before = utcnow()
    report = ingest_file(st_, "tickets", path, workflow=workflow, quarantine_dir=tmp_path)
    assert (report.added, report.quarantined) == (2, 0), report.problems
    assert all(before <= t.created_at <= utcnow() for t in st_.tickets())
    again = ingest_file(st_, "tickets", path, workflow=workflow, quarantine_dir=tmp_path)
    assert (again.added, again.existing, again.quarantined) == (0, 2, 0)


# -- #25 item 5: an unknown label's reason is short and suggests the near miss -------------------


def big_workflow() -> Workflow:
    names = [f"intent_number_{i}" for i in range(148)] + ["weather", "transfer"]
    yaml = "name: intents\nlabels:\n" + "".join(f'  {n}:\n    description: "{n}"\n' for n in names)
    return parse_workflow(yaml)


def test_unknown_label_reason_has_a_hint_not_all_150_labels(tmp_path: Path) -> None:
    wf = big_workflow()
    path = tmp_path / "e.jsonl"
    path.write_text(
        '{"text": "is it raining", "label": "wether"}\n{"text": "send money", "label": "zzz"}\n'
    )
    _, problems = read_records("examples", path, workflow=wf)
    hint, none = problems[0].reason, problems[1].reason
    assert "did you mean 'weather'?" in hint
    assert len(hint) < 300 and len(none) < 300
    assert "150 labels" in hint and "intent_number_7" not in hint
    assert "did you mean" not in none


def test_a_small_workflow_still_lists_its_labels(tmp_path: Path, workflow: Workflow) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text('{"text": "x", "label": "hardwar"}\n')
    _, problems = read_records("examples", path, workflow=workflow)
    assert "did you mean 'hardware'?" in problems[0].reason
    assert str(workflow.label_names) in problems[0].reason


# -- #25 item 6: an integer hf label needs the data set's label names ---------------------------


def test_integer_hf_label_needs_explicit_names(tmp_path: Path, workflow: Workflow) -> None:
    path = tmp_path / "hf.jsonl"
    path.write_text('{"text": "printer jam", "label": 1}\n{"text": "vpn", "label": "vpn_issue"}\n')
    records, problems = read_records("examples", path, workflow=workflow, shape="hf")
    assert [r.label for r in records] == ["vpn_issue"]  # type: ignore[attr-defined]
    assert problems[0].line == 1 and "--label-names" in problems[0].reason
    # the data set's own order, not tunegate.yaml's (where index 1 is password_reset)
    records, problems = read_records(
        "examples", path, workflow=workflow, shape="hf", label_names=["vpn_issue", "hardware"]
    )
    assert [r.label for r in records] == ["hardware", "vpn_issue"] and not problems  # type: ignore[attr-defined]


def test_label_names_option_on_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    main(["init"])
    Path("hf.csv").write_text("text,label\nprinter jam,1\nlocked out,0\n")
    assert main(["ingest", "examples", "hf.csv", "--shape", "hf"]) == 1
    capsys.readouterr()
    args = ["ingest", "examples", "hf.csv", "--shape", "hf", "--json"]
    assert main([*args, "--label-names", "account_unlock,hardware"]) == 0
    assert json.loads(capsys.readouterr().out)["added"] == 2
    assert main(["ingest", "examples", "hf.csv", "--label-names", "a,b"]) == 2  # needs --shape hf


# -- #18 f: property — arbitrary bytes and arbitrary JSON rows through the loaders ---------------

_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.sampled_from(["\ud800", "a\udfffb", "x" * (MAX_TEXT_CHARS + 1)]),
)
_json_value = st.recursive(
    _json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=12,
)
_stamp = st.one_of(
    st.datetimes(timezones=st.timezones() | st.just(timezone(timedelta(hours=14)))).map(
        lambda d: d.isoformat()
    ),
    st.sampled_from(["0001-01-01T00:30:00+01:00", "9999-12-31T23:59:59-10:00", "soon"]),
    st.integers(min_value=-(2**40), max_value=2**40),
)
_json_row = st.dictionaries(
    st.sampled_from(["id", "text", "created_at", "metadata", "label", "other"]),
    st.one_of(_json_value, _stamp, st.just({"a": json.loads("[" * 60 + "]" * 60)})),
    max_size=5,
).map(lambda d: json.dumps(d).encode())  # NaN/Infinity become the non-standard constants
_line = st.one_of(
    st.binary(max_size=60),
    st.text(max_size=60).map(lambda s: s.encode("utf-8", "surrogatepass")),
    _json_row,
).map(lambda b: b.replace(b"\n", b" ").replace(b"\r", b" "))


_STORES: list[Store] = []


def _shared_store() -> Store:
    """One store for all examples of the property tests (opening one costs a migration); each
    example's good ids are unique, so examples do not interfere."""
    if not _STORES:
        _STORES.append(Store("sqlite://"))
    return _STORES[0]


_TAG = iter(range(10**9))


def _check_file(path: Path, kind: str, wf: Workflow, good: dict[str, Any], total: int) -> None:
    st_ = _shared_store()
    report = ingest_file(st_, kind, path, workflow=wf, quarantine_dir=path.parent / "q")  # type: ignore[arg-type]
    assert report.added + report.existing + report.quarantined == report.rows
    assert report.rows >= total
    assert all(p.file == str(path) and p.line >= 1 and p.reason for p in report.problems)
    if report.quarantined:
        text = Path(str(report.quarantine_file)).read_text(encoding="utf-8")
        entries = [json.loads(line) for line in text.split("\n") if line]
        assert len(entries) == report.quarantined
        assert all(e["file"] == str(path) and e["line"] >= 1 and e["reason"] for e in entries)
    ids = list(good)
    found = st_.tickets(ids=ids) if kind == "tickets" else st_.examples()
    stored = {r.id: r for r in found}
    for rid, record in good.items():
        assert rid in stored, (rid, report.problems)
        if kind == "tickets":
            assert stored[rid] == record


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(st.tuples(st.booleans(), _line), min_size=1, max_size=20))
@example(
    rows=[
        (True, b""),
        (False, b'{"id": "b", "text": "x", "created_at": "0001-01-01T00:30:00+01:00"}'),
    ]
)
@example(
    rows=[
        (
            False,
            b'{"id":"b","text":"x","created_at":"2024-01-01T00:00:00Z","metadata":{"\\ud800":1}}',
        ),
        (True, b""),
    ]
)
def test_any_jsonl_bytes_lose_no_good_row(tmp_path: Path, rows: list[tuple[bool, bytes]]) -> None:
    wf = parse_workflow(starter_yaml())
    lines: list[bytes] = []
    good: dict[str, Any] = {}
    tag = next(_TAG)
    for n, (is_good, junk) in enumerate(rows):
        if is_good:
            t = Ticket(id=f"good-{tag}-{n}", text=f"text {n}", created_at=T0 + timedelta(seconds=n))
            good[t.id] = t
            lines.append(t.model_dump_json().encode())
        else:
            lines.append(junk)
    path = tmp_path / f"p{abs(hash(tuple(lines)))}.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    nonblank = sum(1 for line in lines if line.strip())
    _check_file(path, "tickets", wf, good, nonblank)
    records, problems = read_records("tickets", path, workflow=wf)  # the store-free path too
    assert {r.id for r in records} >= set(good)  # type: ignore[attr-defined]
    assert all(p.line >= 1 and p.reason for p in problems)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(st.tuples(st.booleans(), st.binary(max_size=40)), min_size=1, max_size=15),
    quote_at=st.integers(min_value=0, max_value=14),
)
def test_any_csv_bytes_lose_no_good_row(
    tmp_path: Path, rows: list[tuple[bool, bytes]], quote_at: int
) -> None:
    """Arbitrary bytes between good CSV rows, with at most one quote character in the file (two
    quotes can legitimately make the lines between them one quoted field)."""
    wf = parse_workflow(starter_yaml())
    lines: list[bytes] = []
    good: dict[str, Any] = {}
    tag = next(_TAG)
    for n, (is_good, junk) in enumerate(rows):
        if is_good:
            rid = f"good-{tag}-{n}"
            good[rid] = Example(id=rid, text=f"text {n}", label="hardware")
            lines.append(f"{rid},text {n},hardware".encode())
        else:
            junk = junk.replace(b'"', b"").replace(b"\n", b" ").replace(b"\r", b" ")
            lines.append((b'x,"' + junk) if n == quote_at else junk)
    path = tmp_path / f"p{abs(hash(tuple(lines)))}.csv"
    path.write_bytes(b"id,text,label\n" + b"\n".join(lines) + b"\n")
    _check_file(path, "examples", wf, good, len(good))


def test_the_store_reads_back_rows_stored_before_the_limits(tmp_path: Path) -> None:
    st_ = Store(f"sqlite:///{tmp_path / 's.db'}")
    legacy = Ticket.model_construct(id="old", text="x" * 30_000, created_at=T0, metadata={})
    st_.add_tickets([legacy])
    assert len(st_.get_ticket("old").text) == 30_000
