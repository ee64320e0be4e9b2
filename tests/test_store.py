"""The store on SQLite and PostgreSQL: migrations, CRUD, idempotence, atomic batches."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import _store_fixtures
from tunegate.documents import (
    DOCUMENT_TYPES,
    DatasetManifest,
    Document,
    Finding,
    LabelIssues,
    MlflowRun,
    MonitorReference,
    TriageLabel,
    document_type,
)
from tunegate.errors import InputError, NotFoundError, StoreError
from tunegate.records import (
    Attempt,
    AttemptKind,
    Decision,
    EvalRun,
    EvalSuite,
    Example,
    ModelKind,
    ModelStatus,
    ModelVersion,
    Override,
    ReasonCode,
    Route,
    RuleHit,
    SuiteExample,
    SuiteSlice,
    Ticket,
)
from tunegate.store import AddResult, Store
from tunegate.store._schema import documents as documents_table
from tunegate.store._schema import metadata
from tunegate.store.migrate import head_revision

store = _store_fixtures.store
store_url = _store_fixtures.store_url  # fixtures

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def ticket(i: int, **kw: object) -> Ticket:
    data: dict[str, object] = {
        "id": f"t{i:05d}",
        "text": f"ticket number {i}",
        "created_at": T0 + timedelta(minutes=i),
        "metadata": {"site": "oslo", "n": i},
    }
    data.update(kw)
    return Ticket.model_validate(data)


def decision(i: int, **kw: object) -> Decision:
    data: dict[str, object] = {
        "id": f"d{i:05d}",
        "ticket_id": f"t{i:05d}",
        "model_version": "zs-1",
        "probabilities": {"vpn_issue": 0.1 + 1e-17 * i, "hardware": 0.9 - 1e-17 * i},
        "label": "hardware",
        "h_norm": 0.4690159945,
        "route": Route.AUTO,
        "latency_ms": 12.5,
        "created_at": T0 + timedelta(minutes=i),
        "rule_hits": [RuleHit(rule="r1", label="hardware", matched=["laptop"])],
    }
    data.update(kw)
    return Decision.model_validate(data)


def override(i: int, **kw: object) -> Override:
    data: dict[str, object] = {
        "id": f"o{i:05d}",
        "ticket_id": f"t{i:05d}",
        "decision_id": f"d{i:05d}",
        "model_label": "hardware",
        "final_label": "vpn_issue",
        "reason_code": ReasonCode.R2,
        "note": "missed the VPN",
        "analyst": "ana",
        "created_at": T0 + timedelta(hours=i),
    }
    data.update(kw)
    return Override.model_validate(data)


def example(i: int, **kw: object) -> Example:
    data: dict[str, object] = {
        "id": f"e{i:05d}",
        "text": f"vpn keeps dropping {i}",
        "label": "vpn_issue",
        "slice_tags": ["night_shift"],
        "metadata": {"k": [1, 2]},
        "created_at": T0 + timedelta(seconds=i),
    }
    data.update(kw)
    return Example.model_validate(data)


# -- migrations ------------------------------------------------------------------------------------


def test_migrated_database_matches_schema(store: Store) -> None:
    with store.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diffs == []
    assert store.revision == head_revision()


def test_reopening_is_a_noop_and_keeps_data(store_url: str) -> None:
    with Store(store_url) as first:
        first.add_tickets([ticket(1)])
    with Store(store_url) as again:
        assert again.count("tickets") == 1


def test_unknown_revision_is_a_clear_store_error(store_url: str) -> None:
    with Store(store_url) as st, st.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'f00dcafe9999'"))
    with pytest.raises(StoreError, match=r"revision 'f00dcafe9999'.*does not know.*upgrade"):
        Store(store_url)


def test_sqlite_pragmas(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'p.db'}") as st, st.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000


def test_in_memory_sqlite_works() -> None:
    with Store("sqlite://") as st:
        assert st.add_tickets([ticket(1)]) == AddResult(added=1, existing=0)
        assert st.get_ticket("t00001") == ticket(1)


def test_bad_url_is_an_input_error() -> None:
    with pytest.raises(InputError, match="sqlite:///"):
        Store("mysql://x/y")


# -- tickets ---------------------------------------------------------------------------------------


def test_tickets_round_trip_and_idempotence(store: Store) -> None:
    batch = [ticket(i) for i in range(50)]
    assert store.add_tickets(batch) == AddResult(added=50, existing=0)
    assert store.add_tickets([*batch[:10], ticket(50)]) == AddResult(added=1, existing=10)
    got = store.tickets()
    assert got == [*batch, ticket(50)]
    assert all(t.created_at.tzinfo is UTC for t in got)
    assert store.get_ticket("t00007") == batch[7]
    with pytest.raises(NotFoundError, match="t99999"):
        store.get_ticket("t99999")


def test_same_id_different_content_raises_and_writes_nothing(store: Store) -> None:
    store.add_tickets([ticket(1)])
    changed = ticket(1, text="a different text")
    with pytest.raises(InputError, match="t00001"):
        store.add_tickets([ticket(2), ticket(3), changed])
    assert store.count("tickets") == 1  # the whole batch was rolled back
    with pytest.raises(InputError, match="appear twice"):
        store.add_tickets([ticket(4), ticket(4, text="other")])
    assert store.count("tickets") == 1


def test_on_conflict_skip_reports_conflicts(store: Store) -> None:
    store.add_tickets([ticket(1)])
    result = store.add(
        "tickets", [ticket(1, text="changed"), ticket(2), ticket(2)], on_conflict="skip"
    )
    assert result == AddResult(added=1, existing=1, conflicts=("t00001",))
    assert store.get_ticket("t00001") == ticket(1)


def test_wrong_record_type_is_rejected(store: Store) -> None:
    with pytest.raises(InputError, match="expects Ticket"):
        store.add_tickets([override(1)])  # type: ignore[list-item]


def test_timestamps_are_utc_in_and_out(store: Store) -> None:
    plus2 = timezone(timedelta(hours=2))
    store.add_tickets(
        [
            ticket(1, created_at=datetime(2024, 3, 1, 12, 0, tzinfo=plus2)),  # 10:00 UTC
            ticket(2, created_at=datetime(2024, 3, 1, 11, 0)),  # naive -> UTC
            ticket(3, created_at="2024-03-01T09:30:00-01:00"),  # 10:30 UTC
        ]
    )
    got = store.tickets()
    assert [t.id for t in got] == ["t00001", "t00003", "t00002"]
    assert got[0].created_at == datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
    assert all(t.created_at.utcoffset() == timedelta(0) for t in got)
    window = store.tickets(
        since=datetime(2024, 3, 1, 12, 15, tzinfo=plus2),
        until=datetime(2024, 3, 1, 11, 0, tzinfo=UTC),
    )
    assert [t.id for t in window] == ["t00003"]
    assert [t.id for t in store.tickets(ids=["t00002", "t00001", "nope"])] == ["t00001", "t00002"]


# -- decisions, overrides, examples ----------------------------------------------------------------


def test_decisions_filters_and_exact_floats(store: Store) -> None:
    routes = [Route.AUTO, Route.CLARIFY, Route.ESCALATE]
    decs = [decision(i, route=routes[i % 3]) for i in range(6)]
    decs.append(decision(6, model_version="lora-2", shadow=True))
    assert store.add_decisions(decs).added == 7
    assert store.add_decisions(decs).existing == 7
    assert store.decisions() == decs[:6]
    assert store.decisions(shadow=True) == [decs[6]]
    assert len(store.decisions(shadow=None)) == 7
    assert store.decisions(model_version="lora-2", shadow=None) == [decs[6]]
    assert store.decisions(ticket_ids=["t00002", "t00004"]) == [decs[2], decs[4]]
    assert store.decisions(since=T0 + timedelta(minutes=4)) == decs[4:6]
    for route in ("auto", "clarify", "escalate"):
        assert store.decisions(routes=[route]) == [d for d in decs[:6] if d.route.value == route]
    queue = store.decisions(routes=[Route.CLARIFY, Route.ESCALATE])
    assert queue == [d for d in decs[:6] if d.route != Route.AUTO]
    assert store.decisions(routes=[]) == []
    got = store.decisions()[3]
    assert got.probabilities == decs[3].probabilities  # bit-exact floats
    assert got.rule_hits == decs[3].rule_hits
    assert math.isclose(sum(got.probabilities.values()), 1.0)


def test_overrides_review_and_reingest(store: Store) -> None:
    ovs = [override(i, reason_code="R1" if i % 2 else "R2") for i in range(6)]
    store.add_overrides(ovs)
    assert [o.id for o in store.overrides(reason_code="R1")] == ["o00001", "o00003", "o00005"]
    assert [o.id for o in store.overrides(until=T0 + timedelta(hours=2))] == ["o00000", "o00001"]
    assert (
        store.set_review_status("override", ["o00001", "o00002", "zzz"], "reviewed", reviewer="rev")
        == 2
    )
    assert store.overrides()[1].review_status == "reviewed"
    # the original file ingested again after review is not a conflict
    assert store.add_overrides(ovs) == AddResult(added=0, existing=6)
    with pytest.raises(InputError, match="not one of"):
        store.set_review_status("override", ["o00001"], "approved")
    with pytest.raises(InputError, match="kind must be"):
        store.set_review_status("ticket", ["t"], "reviewed")  # type: ignore[arg-type]


def test_examples_filters_and_review(store: Store) -> None:
    exs = [example(i) for i in range(4)] + [example(9, label="hardware", source="override")]
    store.add_examples(exs)
    assert store.examples() == exs
    assert store.examples(label="hardware") == [exs[4]]
    assert store.examples(source="override") == [exs[4]]
    store.set_review_status("example", ["e00000", "e00002"], "reviewed", reviewer="kim")
    reviewed = store.examples(review_status="reviewed")
    assert [e.id for e in reviewed] == ["e00000", "e00002"]
    assert {e.reviewer for e in reviewed} == {"kim"}
    assert store.add_examples(exs) == AddResult(added=0, existing=5)
    assert store.examples()[0].metadata == {"k": [1, 2]}


# -- suites, models, aliases, attempts, runs -------------------------------------------------------


def _suite(name: str = "core-v1", n: int = 3) -> EvalSuite:
    return EvalSuite(
        name=name,
        examples=[
            SuiteExample(
                id=f"s{i}",
                text=f"text {i}",
                label="vpn_issue",
                slice=SuiteSlice.CORE,
                tags=["mfa_related"],
            )
            for i in range(n)
        ],
    )


def test_suites(store: Store) -> None:
    suite = _suite()
    store.save_suite(suite)
    store.save_suite(suite)  # idempotent
    frozen = suite.frozen()
    assert store.get_suite("core-v1") == frozen
    assert store.get_suite(frozen.hash) == frozen
    assert store.get_suite(frozen.hash[:10]) == frozen
    bigger = _suite(n=5).frozen()
    store.save_suite(bigger.model_copy(update={"created_at": frozen.created_at + timedelta(1)}))
    assert len(store.get_suite("core-v1").examples) == 5  # newest by name
    assert len(store.suites()) == 2
    with pytest.raises(NotFoundError, match="core-v1"):
        store.get_suite("nope")


def test_model_versions_and_aliases(store: Store) -> None:
    a = ModelVersion(id="zs-1", kind=ModelKind.ZERO_SHOT, base_model="minilm")
    b = ModelVersion(id="lora-2", kind=ModelKind.LORA, parent="zs-1", config={"r": 8})
    store.save_model_version(a)
    store.save_model_version(b)
    store.save_model_version(a)
    with pytest.raises(InputError, match="zs-1"):
        store.save_model_version(a.model_copy(update={"base_model": "other"}))
    assert store.model_versions() == [a, b] or store.model_versions() == [b, a]
    store.update_model_status("lora-2", "champion")
    assert store.get_model_version("lora-2").status == ModelStatus.CHAMPION
    with pytest.raises(NotFoundError):
        store.get_model_version("nope")
    assert store.get_alias("champion") is None
    store.set_alias("champion", "zs-1", actor="ci")
    store.set_alias("champion", "lora-2", actor="ana", reason="verdict pass")
    store.set_alias("champion", "zs-1", actor="ana", reason="rollback")
    assert store.get_alias("champion") == "zs-1"
    history = store.alias_history("champion")
    assert [(h.version_id, h.previous) for h in history] == [
        ("zs-1", None),
        ("lora-2", "zs-1"),
        ("zs-1", "lora-2"),
    ]
    assert history[1].reason == "verdict pass" and history[1].at.tzinfo is UTC
    with pytest.raises(NotFoundError, match="register it first"):
        store.set_alias("champion", "ghost", actor="x")
    assert len(store.alias_history()) == 3


def test_attempts_upsert(store: Store) -> None:
    att = Attempt(kind=AttemptKind.INSTRUCTIONS, baseline_version="a", candidate_version="b")
    store.save_attempt(att)
    updated = att.model_copy(update={"details": {"fixed": 0.6}})
    store.save_attempt(updated)
    assert store.attempts() == [updated]
    assert store.attempts(kind="rules") == []


def test_eval_runs_large_payload(store: Store) -> None:
    n, k = 3000, 8
    proba = [[(i * 7 + j) % 11 / 55 + 1e-9 for j in range(k)] for i in range(n)]
    run = EvalRun(
        model_version="zs-1",
        suite_hash="h" * 64,
        labels=[f"l{j}" for j in range(k)],
        metrics={"overall": {"accuracy": 0.81}, "per_class": {"l0": {"f1": 0.5}}},
        example_ids=[f"x{i}" for i in range(n)],
        y_true=[i % k for i in range(n)],
        proba=proba,
        latency_ms=[1.5] * n,
        seed=3,
    )
    store.save_eval_run(run)
    store.save_eval_run(run)
    assert store.get_eval_run(run.id) == run
    assert store.eval_runs(model_version="zs-1") == [run]
    assert store.eval_runs(suite_hash="other") == []
    with pytest.raises(InputError, match="immutable"):
        store.save_eval_run(run.model_copy(update={"seed": 4}))
    with pytest.raises(NotFoundError):
        store.get_eval_run("nope")


def test_a_document_kind_is_declared_once() -> None:
    assert DOCUMENT_TYPES["finding"] is Finding and document_type("triage") is TriageLabel
    with pytest.raises(ValueError, match=r"already declared by tunegate\.documents\.Finding"):

        class Other(Document):
            KIND: ClassVar[str] = "finding"

    with pytest.raises(KeyError, match="known kinds"):
        document_type("attribution")


# Payloads exactly as the untyped ``Store.put(kind, key, dict)`` wrote them.
_LEGACY: list[tuple[str, dict[str, Any]]] = [
    (
        "finding",
        {
            "id": "fnd_1",
            "kind": "attribution",
            "reason_code": "R2",
            "label": "security",
            "model_labels": {"hardware": 3},
            "tokens": [
                {
                    "term": "mfa",
                    "label": "security",
                    "z": 3.1,
                    "overrides_with": 4,
                    "reference_with": 0,
                    "attr_analyst": 0.01,
                    "attr_predicted": 0.03,
                    "margin": -0.02,
                    "cue": "misleading",
                }
            ],
            "reference_level": 0.05,
            "method": "ig",
            "n_steps": 20,
            "n_overrides": 3,
            "n_reference": 10,
            "n_reference_counted": 40,
            "confirmed": True,
            "confirmed_by": "lead",
            "created_at": "2026-01-01T00:00:00+00:00",
            "confirmed_at": "2026-01-02T00:00:00+00:00",
            "note": "",
        },
    ),
    (
        "triage",
        {
            "category": "model_error",
            "suggested_category": None,
            "rule": None,
            "confirmed": True,
            "reviewer": "bo",
            "confirmed_at": "2026-01-01T00:00:00+00:00",
            "note": "",
            "source": None,
            "reason_code": "R2",
            "model_label": None,
            "final_label": None,
        },
    ),
    (
        "token",
        {
            "id": "tok_1",
            "name": "alice",
            "role": "analyst",
            "created_at": "2026-01-01T00:00:00+00:00",
            "revoked": True,
            "revoked_at": "2026-01-03T00:00:00+00:00",
        },
    ),
    ("monitor_reference", {"texts": ["printer toner", "vpn down"]}),
    (
        "mlflow_run",
        {
            "tracking_uri": "file:///m",
            "experiment": "e",
            "run_id": "r1",
            "registered_model": None,
            "registered_version": None,
            "aliases": [],
            "note": "",
        },
    ),
    (
        "label_issues",
        {
            "n_examples": 10,
            "n_flagged": 1,
            "flagged_share": 0.1,
            "oof_accuracy": 0.9,
            "n_folds": 5,
            "flagged_per_given_label": {"a": 1},
            "issues": [{"id": "ex_1"}],
        },
    ),
    (
        "dataset",
        {
            "hash": "h",
            "manifest": {"n_examples": 0},
            "target_report": [],
            "leakage_report": {},
            "dedup_report": {},
            "example_ids": [],
            "examples": [],
        },
    ),
    (
        "simulation",
        {"seed": 7, "weeks": 12, "summary": {"n": 1}, "eval_examples": "/x", "ground_truth": "/y"},
    ),
]


def _keeps(dumped: Any, stored: Any) -> bool:
    """``dumped`` holds every value of ``stored`` (nested), perhaps with more fields."""
    if isinstance(stored, dict):
        return isinstance(dumped, dict) and all(
            k in dumped and _keeps(dumped[k], v) for k, v in stored.items()
        )
    if isinstance(stored, list):
        return (
            isinstance(dumped, list)
            and len(dumped) == len(stored)
            and all(_keeps(d, v) for d, v in zip(dumped, stored, strict=True))
        )
    return bool(dumped == stored)


@pytest.mark.parametrize(("kind", "payload"), _LEGACY, ids=[k for k, _ in _LEGACY])
def test_documents_stored_before_typing_still_load(
    store: Store, kind: str, payload: dict[str, Any]
) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(documents_table).values(
                kind=kind, key="k1", payload=payload, updated_at=datetime.now(UTC)
            )
        )
    cls = document_type(kind)
    doc = store.documents(cls).get("k1")
    assert isinstance(doc, cls)
    dumped = doc.model_dump(mode="json")
    # every stored field round-trips unchanged; fields added later come with their defaults
    assert _keeps(dumped, payload)
    store.documents(cls).put("k2", doc)
    with store.engine.connect() as conn:
        again = conn.execute(
            sa.select(documents_table.c.payload).where(documents_table.c.key == "k2")
        ).scalar()
    assert again == dumped


def test_the_payloads_the_writers_build_validate_as_their_documents() -> None:
    """``tunegate label-issues`` and ``tunegate finetune`` store these dicts as documents."""
    import numpy as np

    from tunegate.mlflow_export import MlflowExport
    from tunegate.train import LabelIssue, LabelIssueReport

    exported = MlflowExport("file:///m", "exp", "run1", "tunegate-x", "3", ["candidate"])
    assert MlflowRun.model_validate(exported.to_dict()).model_dump() == exported.to_dict()
    issue = LabelIssue("ex_1", "text", "a", "b", 0.123456)
    report = LabelIssueReport([issue], 4, ["a", "b"], np.full((4, 2), 0.5), 0.75, 2)
    summary = report.summary()
    assert LabelIssues.model_validate(summary).model_dump(mode="json") == summary


def test_a_stored_document_that_no_longer_validates_is_a_store_error(store: Store) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(documents_table).values(
                kind="monitor_reference",
                key="v1",
                payload={"texts": 3},
                updated_at=datetime.now(UTC),
            )
        )
    with pytest.raises(StoreError, match="monitor_reference document 'v1'"):
        store.documents(MonitorReference).get("v1")


def test_documents_and_audit(store: Store) -> None:
    triage = store.documents(TriageLabel)
    triage.put("b", TriageLabel(category="model_error"))
    triage.put("a", TriageLabel(category="label_noise", note="two\nlines", rule="r1"))
    triage.put("b", TriageLabel(category="data_gap"))
    store.documents(Finding).put("a", Finding(id="a", reason_code="R2", label="x"))
    got = triage.get("b")
    assert isinstance(got, TriageLabel) and got.category == "data_gap"
    assert triage.get("zz") is None
    assert [(k, d.category) for k, d in triage.items()] == [("a", "label_noise"), ("b", "data_gap")]
    assert triage.keys() == ["a", "b"] and store.documents(Finding).keys() == ["a"]
    assert triage.delete("a") and not triage.delete("a")
    with pytest.raises(InputError, match="JSON"):
        bad = DatasetManifest(hash="c", manifest={"w": object()})
        store.documents(DatasetManifest).put("c", bad)
    with pytest.raises(InputError, match="expected a TriageLabel"):
        triage.put("c", Finding(id="c", reason_code="R2", label="x"))  # type: ignore[arg-type]
    for name in ("put", "get", "list", "delete"):
        assert not hasattr(store, name), name
    store.audit("promote", "ana", {"version": "lora-2"})
    store.audit("rollback", "bot", {"trigger": "fnr"})
    log = store.audit_log()
    assert [e["action"] for e in log] == ["promote", "rollback"]
    assert store.audit_log("rollback")[0]["details"] == {"trigger": "fnr"}
    assert log[0]["at"].tzinfo is UTC
