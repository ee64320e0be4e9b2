"""Ingestion: every format and shape, every bad-row kind, quarantine, idempotence, CLI."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import _store_fixtures
from tunegate.cli import main
from tunegate.config import Workflow, parse_workflow, starter_yaml
from tunegate.errors import InputError
from tunegate.io import (
    export_file,
    ingest_file,
    quarantine_path,
    read_jsonl,
    read_records,
    write_jsonl,
)
from tunegate.records import Decision, Example, Override, Route, Ticket
from tunegate.store import Store

store = _store_fixtures.store
store_url = _store_fixtures.store_url  # fixtures

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


def tickets(n: int) -> list[Ticket]:
    return [
        Ticket(
            id=f"t{i}",
            text=f"VPN drops, MFA push {i}" if i % 2 else f"printer {i}",
            created_at=T0 + timedelta(minutes=i),
            metadata={"shift": "night", "i": i},
        )
        for i in range(n)
    ]


def decisions(n: int) -> list[Decision]:
    return [
        Decision(
            id=f"d{i}",
            ticket_id=f"t{i}",
            model_version="zs-1",
            probabilities={"vpn_issue": 0.3, "hardware": 0.7},
            label="hardware",
            h_norm=0.88,
            route=Route.CLARIFY,
            latency_ms=3.25,
            shadow=bool(i % 2),
            created_at=T0 + timedelta(minutes=i),
        )
        for i in range(n)
    ]


def overrides(n: int) -> list[Override]:
    return [
        Override(
            id=f"o{i}",
            ticket_id=f"t{i}",
            final_label="vpn_issue",
            reason_code="R2",
            note='multi\nline, "quoted" note',
            created_at=T0 + timedelta(hours=i),
        )
        for i in range(n)
    ]


def examples(n: int) -> list[Example]:
    return [
        Example(
            id=f"e{i}",
            text=f"authenticator push spam {i}",
            label="security_incident",
            metadata={"shift": "night"},
            created_at=T0,
        )
        for i in range(n)
    ]


MAKERS = {"tickets": tickets, "decisions": decisions, "overrides": overrides, "examples": examples}


def stored(store: Store, kind: str) -> list[Any]:
    return {
        "tickets": store.tickets,
        "decisions": lambda: store.decisions(shadow=None),
        "overrides": store.overrides,
        "examples": store.examples,
    }[kind]()


def jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


# -- formats ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(MAKERS))
@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_every_format_round_trips(kind: str, fmt: str, tmp_path: Path, workflow: Workflow) -> None:
    source = Store(f"sqlite:///{tmp_path / 'a.db'}")
    records = MAKERS[kind](7)
    source.add(kind, records)  # type: ignore[arg-type]
    path = tmp_path / f"{kind}.{fmt}"
    assert export_file(source, kind, path) == 7
    target = Store(f"sqlite:///{tmp_path / 'b.db'}")
    if kind == "overrides":  # an override needs its ticket in the store
        target.add_tickets(tickets(7))
    report = ingest_file(target, kind, path, workflow=workflow)  # type: ignore[arg-type]
    assert (report.rows, report.added, report.quarantined) == (7, 7, 0), report.problems
    got = stored(target, kind)
    if kind == "examples":  # ingestion tags slices from the workflow
        assert all(e.slice_tags == ["mfa_related", "night_shift"] for e in got)
        got = [e.model_copy(update={"slice_tags": []}) for e in got]
    assert sorted(got, key=lambda r: r.id) == sorted(records, key=lambda r: r.id)
    again = ingest_file(target, kind, path, workflow=workflow)  # type: ignore[arg-type]
    assert (again.added, again.existing, again.quarantined) == (0, 7, 0)
    assert not (tmp_path / "quarantine").exists()


def test_ingest_on_both_databases(store: Store, tmp_path: Path, workflow: Workflow) -> None:
    path = tmp_path / "t.jsonl"
    write_jsonl(path, tickets(30))
    report = ingest_file(
        store, "tickets", path, workflow=workflow, batch_size=7, quarantine_dir=tmp_path / "q"
    )
    assert (report.added, report.batches) == (30, 5)
    assert store.tickets() == tickets(30)


def test_format_flag_and_unknown_suffix(tmp_path: Path, workflow: Workflow) -> None:
    st_ = Store("sqlite://")
    path = jsonl(tmp_path / "t.txt", [t.model_dump(mode="json") for t in tickets(2)])
    with pytest.raises(InputError, match="--format"):
        ingest_file(st_, "tickets", path, workflow=workflow)
    assert (
        ingest_file(
            st_, "tickets", path, workflow=workflow, fmt="jsonl", quarantine_dir=tmp_path
        ).added
        == 2
    )


def test_jsonl_helpers(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "x.jsonl"
    assert write_jsonl(path, tickets(3)) == 3
    assert read_jsonl(path, Ticket) == tickets(3)
    path.write_text(path.read_text() + '{"id": "z"}\n')
    with pytest.raises(InputError, match=r"x.jsonl:4: not a valid Ticket"):
        read_jsonl(path, Ticket)


# -- shapes ----------------------------------------------------------------------------------------


def test_openai_evals_shape(tmp_path: Path, workflow: Workflow) -> None:
    path = jsonl(
        tmp_path / "evals.jsonl",
        [
            {"input": "my laptop screen is cracked", "ideal": "hardware"},
            {
                "input": [
                    {"role": "system", "content": "Classify the ticket."},
                    {"role": "user", "content": "old"},
                    {"role": "assistant", "content": "x"},
                    {"role": "user", "content": "VPN refuses to connect"},
                ],
                "ideal": ["vpn_issue", "network"],
            },
            {
                "input": [{"role": "user", "content": [{"type": "text", "text": "install Excel"}]}],
                "ideal": "software_install",
                "difficulty": "easy",
            },
        ],
    )
    recs, problems = read_records("examples", path, workflow=workflow, shape="openai-evals")
    assert problems == []
    got = [(r.text, r.label) for r in recs]  # type: ignore[attr-defined]
    assert got == [
        ("my laptop screen is cracked", "hardware"),
        ("VPN refuses to connect", "vpn_issue"),
        ("install Excel", "software_install"),
    ]
    assert recs[2].metadata == {"difficulty": "easy"}  # type: ignore[attr-defined]


def test_inspect_shape(tmp_path: Path, workflow: Workflow) -> None:
    path = jsonl(
        tmp_path / "inspect.jsonl",
        [
            {
                "id": 17,
                "input": "phishing email asking for my password",
                "target": "security_incident",
                "metadata": {"shift": "night"},
            },
            {
                "id": "b",
                "input": [{"role": "user", "content": "mailbox full"}],
                "target": ["email_issue"],
            },
        ],
    )
    recs, problems = read_records("examples", path, workflow=workflow, shape="inspect")
    assert problems == []
    assert [r.id for r in recs] == ["17", "b"]  # type: ignore[attr-defined]
    assert recs[0].slice_tags == ["night_shift"]  # type: ignore[attr-defined]
    assert recs[1].label == "email_issue"  # type: ignore[attr-defined]


def test_hf_shape_with_index_labels(tmp_path: Path, workflow: Workflow) -> None:
    names = workflow.label_names
    path = jsonl(
        tmp_path / "hf.jsonl",
        [
            {"text": "need access to the finance share", "label": names.index("access_request")},
            {"text": "printer jam", "label": "hardware"},
            {"text": "out of range", "label": 99},
        ],
    )
    recs, problems = read_records(
        "examples", path, workflow=workflow, shape="hf", label_names=names
    )
    assert [r.label for r in recs] == ["access_request", "hardware"]  # type: ignore[attr-defined]
    assert [(p.line, "out of range" in p.reason) for p in problems] == [(3, True)]
    csv_path = tmp_path / "hf.csv"
    csv_path.write_text(f"text,label\nmonitor flickers,{names.index('hardware')}\n")
    recs, problems = read_records(
        "examples", csv_path, workflow=workflow, shape="hf", label_names=names
    )
    assert [r.label for r in recs] == ["hardware"] and not problems  # type: ignore[attr-defined]


def test_column_map_via_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 0
    (tmp_path / "docs.csv").write_text(
        'Document,Topic_group,Extra\n"VPN drops, again",vpn_issue,x\nlaptop dead,hardware,y\n'
    )
    code = main(
        [
            "ingest",
            "examples",
            "docs.csv",
            "--map",
            "Document=text",
            "--map",
            "Topic_group=label",
            "--shape",
            "hf",
        ]
    )
    assert code == 0
    with Store(f"sqlite:///{tmp_path / 'tunegate.db'}") as st_:
        got = {(e.text, e.label, e.metadata.get("Extra")) for e in st_.examples()}
    assert got == {("VPN drops, again", "vpn_issue", "x"), ("laptop dead", "hardware", "y")}
    with pytest.raises(InputError, match="SOURCE=DESTINATION"):
        read_records(
            "examples",
            tmp_path / "docs.csv",
            workflow=parse_workflow(starter_yaml()),
            column_map=["Document"],
        )


def test_shapes_apply_to_examples_only(tmp_path: Path, workflow: Workflow) -> None:
    with pytest.raises(InputError, match="examples only"):
        read_records("tickets", tmp_path / "x.jsonl", workflow=workflow, shape="hf")


# -- bad rows --------------------------------------------------------------------------------------

GOOD = {"id": "g1", "text": "vpn down", "label": "vpn_issue"}


@pytest.mark.parametrize(
    ("kind", "bad", "reason"),
    [
        ("examples", '{"id": "x", "text": "a"', "malformed JSON"),
        ("examples", '["a list"]', "expected a JSON object"),
        ("examples", '{"id": "x", "label": "vpn_issue"}', "missing field 'text'"),
        ("examples", '{"id": "x", "text": "hi", "label": "weather"}', "unknown label 'weather'"),
        ("examples", '{"id": "x", "text": "   ", "label": "vpn_issue"}', "empty"),
        (
            "examples",
            '{"id": "x", "text": "a", "label": "vpn_issue", "created_at": "13/13/13"}',
            "bad timestamp in 'created_at'",
        ),
        ("examples", b'{"id": "x", "text": "caf\xe9", "label": "vpn_issue"}', "invalid UTF-8"),
        (
            "examples",
            '{"id": "g1", "text": "other text", "label": "vpn_issue"}',
            "duplicate id 'g1' with different content (first seen on line 1)",
        ),
        (
            "examples",
            '{"id": "x", "text": "a", "label": "vpn_issue", "metadata": "{oops"}',
            "'metadata' is not valid JSON",
        ),
        ("tickets", '{"id": "", "text": "a"}', "id"),
        (
            "overrides",
            '{"ticket_id": "t", "final_label": "hardware", "reason_code": "R2"}',
            "missing field 'created_at'",
        ),
        (
            "overrides",
            '{"ticket_id": "t", "final_label": "hardware", "reason_code": "R9", '
            '"created_at": "2024-01-01T00:00:00Z"}',
            "reason_code",
        ),
        (
            "decisions",
            '{"ticket_id": "t", "model_version": "m", "label": "hardware", '
            '"probabilities": {"hardware": 0.2}, "h_norm": 0.1, "route": "auto", '
            '"created_at": "2024-01-01T00:00:00Z"}',
            "distribution",
        ),
        (
            "decisions",
            '{"ticket_id": "t", "model_version": "m", "label": "hardware", '
            '"probabilities": {"hardware": NaN}, "h_norm": 0.1, "route": "auto", '
            '"created_at": "2024-01-01T00:00:00Z"}',
            "malformed JSON",
        ),
        (
            "decisions",
            '{"ticket_id": "t", "model_version": "m", "label": "hardware", "x": 1}',
            "unknown field",
        ),
    ],
)
def test_each_bad_row_kind_is_quarantined(
    kind: str, bad: str | bytes, reason: str, tmp_path: Path, workflow: Workflow
) -> None:
    good: dict[str, Any] = {
        "examples": GOOD,
        "tickets": {"id": "g1", "text": "vpn down", "created_at": "2024-01-01T00:00:00Z"},
        "overrides": {
            "id": "g1",
            "ticket_id": "t",
            "final_label": "hardware",
            "reason_code": "R2",
            "created_at": "2024-01-01T00:00:00Z",
        },
        "decisions": {
            "id": "g1",
            "ticket_id": "t",
            "model_version": "m",
            "label": "hardware",
            "probabilities": {"hardware": 1.0},
            "h_norm": 0.0,
            "route": "auto",
            "created_at": "2024-01-01T00:00:00Z",
        },
    }[kind]
    raw = bad if isinstance(bad, bytes) else bad.encode()
    path = tmp_path / "rows.jsonl"
    path.write_bytes(json.dumps(good).encode() + b"\n" + raw + b"\n\n" + b'{"id": "g1"}'[:0])
    st_ = Store(f"sqlite:///{tmp_path / 's.db'}")
    if kind == "overrides":  # the good override's ticket
        st_.add_tickets([Ticket(id="t", text="vpn down", created_at=T0)])
    report = ingest_file(st_, kind, path, workflow=workflow)  # type: ignore[arg-type]
    assert (report.rows, report.added, report.quarantined) == (2, 1, 1)
    assert report.problems[0].line == 2 and reason in report.problems[0].reason, report.problems
    assert st_.count(kind) == 1
    qfile = quarantine_path(st_, path, kind, None)
    assert report.quarantine_file == str(qfile)
    entry = json.loads(qfile.read_text().splitlines()[0])
    assert (entry["file"], entry["line"], entry["kind"]) == (str(path), 2, kind)
    assert reason in entry["reason"]
    if isinstance(bad, bytes):
        assert base64.b64decode(entry["raw_base64"]) == bad
    else:
        assert entry["raw"] == bad
    again = ingest_file(st_, kind, path, workflow=workflow)  # type: ignore[arg-type]
    assert (again.added, again.existing, again.quarantined) == (0, 1, 1)


def test_conflict_with_the_store_is_quarantined(tmp_path: Path, workflow: Workflow) -> None:
    st_ = Store(f"sqlite:///{tmp_path / 's.db'}")
    st_.add_examples([Example(id="g1", text="printer jam", label="hardware")])
    path = jsonl(tmp_path / "e.jsonl", [GOOD, {**GOOD, "id": "g2"}])
    report = ingest_file(st_, "examples", path, workflow=workflow, quarantine_dir=tmp_path / "q")
    assert (report.added, report.quarantined) == (1, 1)
    assert "already in the store with different content" in report.problems[0].reason
    assert report.problems[0].line == 1
    assert report.quarantine_file == str(quarantine_path(st_, path, "examples", tmp_path / "q"))


def test_malformed_csv_rows(tmp_path: Path, workflow: Workflow) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(
        b"id,text,created_at\n"
        b"a,fine,2024-01-01T00:00:00Z\n"
        b'b,"bad"quote,2024-01-01T00:00:00Z\n'
        b"c,too,many,fields\n"
        b'd,"multi\nline text",2024-01-01T00:00:00Z\n'
        b"e,caf\xe9,2024-01-01T00:00:00Z\n"
        b"f,,2024-01-01T00:00:00Z\n"
        b"g,late,not a time\n"
    )
    st_ = Store("sqlite://")
    report = ingest_file(st_, "tickets", path, workflow=workflow, quarantine_dir=tmp_path)
    assert sorted(t.id for t in st_.tickets()) == ["a", "d"]
    lines = {p.line: p.reason for p in report.problems}
    assert set(lines) == {3, 4, 7, 8, 9}
    assert "malformed CSV" in lines[3] and "expected 3 fields" in lines[4]
    assert "invalid UTF-8" in lines[7] and "missing field 'text'" in lines[8]
    assert "bad timestamp" in lines[9]
    assert st_.get_ticket("d").text == "multi\nline text"


def test_parquet_bad_rows(tmp_path: Path, workflow: Workflow) -> None:
    path = tmp_path / "e.parquet"
    pq.write_table(
        pa.table({"text": ["vpn", "", "x"], "label": ["vpn_issue", "hardware", "nope"]}), path
    )
    report = ingest_file(
        Store("sqlite://"), "examples", path, workflow=workflow, quarantine_dir=tmp_path
    )
    assert report.added == 1
    assert [
        (p.line, "empty" in p.reason or "unknown label" in p.reason) for p in report.problems
    ] == [(2, True), (3, True)]


def test_cli_exit_codes_and_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    main(["init"])
    jsonl(tmp_path / "e.jsonl", [GOOD, "{broken"])
    assert main(["ingest", "examples", "e.jsonl"]) == 1
    capsys.readouterr()
    assert main(["ingest", "examples", "e.jsonl", "--allow-quarantine", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert (payload["added"], payload["existing"], payload["quarantined"]) == (0, 1, 1)
    assert payload["problems"][0]["line"] == 2
    assert Path(payload["quarantine_file"]).parent == tmp_path / "quarantine"
    assert Path(payload["quarantine_file"]).exists()
    assert main(["ingest", "examples", "missing.jsonl"]) == 2
    assert main(["export", "examples", "out.parquet", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["records"] == 1


# -- property: garbage never crashes the loader and never costs a good row -------------------------

_garbage_json = st.dictionaries(
    st.sampled_from(["id", "text", "created_at", "metadata", "x"]),
    st.one_of(st.integers(), st.text(max_size=8), st.none(), st.lists(st.integers(), max_size=2)),
    max_size=4,
).map(json.dumps)
_garbage = st.one_of(
    st.binary(max_size=40).filter(lambda b: b"\n" not in b),
    st.text(max_size=40).filter(lambda s: "\n" not in s and "\r" not in s).map(str.encode),
    _garbage_json.map(str.encode),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.tuples(st.booleans(), _garbage), min_size=1, max_size=25))
def test_garbage_never_crashes_or_loses_good_rows(
    tmp_path: Path, rows: list[tuple[bool, bytes]]
) -> None:
    wf = parse_workflow(starter_yaml())
    lines: list[bytes] = []
    good: list[Ticket] = []
    for n, (is_good, junk) in enumerate(rows):
        if is_good:
            t = Ticket(id=f"good-{n}", text=f"text {n}", created_at=T0 + timedelta(seconds=n))
            good.append(t)
            lines.append(t.model_dump_json().encode())
        else:
            lines.append(junk)
    path = tmp_path / f"g{abs(hash(tuple(lines)))}.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    st_ = Store("sqlite://")
    report = ingest_file(st_, "tickets", path, workflow=wf, quarantine_dir=tmp_path / "q")
    stored_by_id = {t.id: t for t in st_.tickets()}
    for t in good:
        assert stored_by_id.get(t.id) == t
    nonblank = sum(1 for line in lines if line.strip())
    assert report.rows == nonblank
    assert report.added + report.existing + report.quarantined == nonblank
    csv_path = path.with_suffix(".csv")
    csv_path.write_bytes(b"id,text,created_at\n" + b"\n".join(lines) + b"\n")
    report = ingest_file(st_, "tickets", csv_path, workflow=wf, quarantine_dir=tmp_path / "q")
    assert report.added + report.existing + report.quarantined == report.rows
