"""The serving use-cases called as library functions (no HTTP): classify and log, overrides,
the review queue, the champion (load, summary, promote, roll back) and the weekly figures;
plus the pieces they moved into io (ticket files), monitor (weekly figures) and report
(dashboard chart geometry)."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tunegate.config import Workflow
from tunegate.errors import InputError, NotFoundError
from tunegate.io import parse_tickets
from tunegate.monitor import weekly_figures
from tunegate.records import (
    Decision,
    ModelKind,
    ModelVersion,
    Override,
    ReasonCode,
    Route,
    Ticket,
    utcnow,
)
from tunegate.report import stacked_bar_chart
from tunegate.serving import (
    TicketClassifier,
    champion_summary,
    classify_tickets,
    load_champion,
    models_overview,
    open_queue,
    promote_version,
    recent_overrides,
    record_override,
    rollback_champion,
    service_figures,
    top_classes,
)
from tunegate.store import Store


class WordClassifier:
    """Scores each label by the words of its name found in the text (softmax of 3 x count);
    a text with none of them gets the uniform row (routed to clarify)."""

    version = "words-1"
    kind = ModelKind.ZERO_SHOT

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = list(labels)
        self._words = [set(name.split("_")) for name in self.labels]

    def predict_proba(self, texts: Sequence[str], metadata: Any = None) -> np.ndarray:
        rows = []
        for text in texts:
            words = set(re.findall(r"[a-z]+", text.lower()))
            scores = np.array([3.0 * len(words & w) for w in self._words])
            e = np.exp(scores - scores.max())
            rows.append(e / e.sum())
        return np.asarray(rows, dtype=np.float64).reshape(len(texts), len(self.labels))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'serving.db'}")
    yield s
    s.close()


def _tickets(*texts: str) -> list[Ticket]:
    now = utcnow()
    return [Ticket(id=f"t{i}", text=text, created_at=now) for i, text in enumerate(texts)]


def _classify(workflow: Workflow, store: Store, *texts: str) -> list[Decision]:
    clf = WordClassifier(workflow.label_names)
    return classify_tickets(workflow, clf, _tickets(*texts), store=store)


# -- classify and log ----------------------------------------------------------------------


def test_classify_tickets_decides_and_logs(workflow: Workflow, store: Store) -> None:
    decisions = _classify(workflow, store, "vpn issue", "hello there", "security incident")
    assert [d.route for d in decisions] == [Route.AUTO, Route.CLARIFY, Route.ESCALATE]
    assert [d.model_version for d in decisions] == ["words-1"] * 3
    assert {t.id for t in store.tickets()} == {"t0", "t1", "t2"}
    assert [d.id for d in store.decisions()] == [d.id for d in decisions]


def test_ticket_classifier_decide_writes_nothing_until_logged(
    workflow: Workflow, store: Store
) -> None:
    tc = TicketClassifier(workflow, WordClassifier(workflow.label_names), version="v9", store=store)
    tickets = _tickets("vpn issue")
    decisions = tc.decide(tickets)
    assert tc.version == "v9" and decisions[0].model_version == "v9"
    assert store.decisions() == []
    tc.log(tickets, decisions)
    assert [d.id for d in store.decisions()] == [decisions[0].id]


# -- overrides -----------------------------------------------------------------------------


def test_record_override_correction_and_confirmation(workflow: Workflow, store: Store) -> None:
    d_vpn, d_hello = _classify(workflow, store, "vpn issue", "hello there")
    fixed = record_override(
        workflow,
        store,
        ticket_id="t1",
        final_label="hardware",
        reason_code=ReasonCode.R2,
        analyst="alice",
        token_id="tok_1",
    )
    assert fixed.correction and fixed.override.decision_id == d_hello.id
    assert fixed.override.model_label == d_hello.label
    agreed = record_override(
        workflow,
        store,
        ticket_id="t0",
        decision_id=d_vpn.id,
        final_label=d_vpn.label,
        reason_code=ReasonCode.R1,
        analyst="bob",
    )
    assert not agreed.correction
    assert agreed.to_dict()["correction"] is False
    assert agreed.to_dict()["override"]["final_label"] == "vpn_issue"
    rows = store.audit_log("override")
    assert [(r["actor"], r["details"]["correction"]) for r in rows] == [
        ("alice", True),
        ("bob", False),
    ]
    assert rows[0]["details"]["token_id"] == "tok_1"
    assert [o.analyst for o in recent_overrides(store)] == ["bob", "alice"]


def test_record_override_validates(workflow: Workflow, store: Store) -> None:
    _classify(workflow, store, "vpn issue")
    kwargs: dict[str, Any] = {"reason_code": ReasonCode.R2, "analyst": "alice"}
    with pytest.raises(InputError, match="not a label of workflow"):
        record_override(workflow, store, ticket_id="t0", final_label="nope", **kwargs)
    with pytest.raises(NotFoundError):
        record_override(workflow, store, ticket_id="missing", final_label="hardware", **kwargs)
    with pytest.raises(NotFoundError, match="has no decision"):
        record_override(
            workflow, store, ticket_id="t0", decision_id="dec_x", final_label="hardware", **kwargs
        )
    assert store.overrides() == [] and store.audit_log("override") == []


# -- the review queue ----------------------------------------------------------------------


def test_open_queue_pages_filters_and_closes(workflow: Workflow, store: Store) -> None:
    decisions = _classify(workflow, store, "hello there", "security incident", "hi", "vpn issue")
    queue = open_queue(store)
    assert queue.total == 3  # the auto-routed vpn ticket is not queued
    assert [e.decision.ticket_id for e in queue.entries] == ["t0", "t1", "t2"]
    assert queue.entries[0].text == "hello there"
    assert queue.entries[1].top == top_classes(decisions[1])
    assert queue.entries[1].top[0][0] == "security_incident"
    assert open_queue(store, limit=1).total == 3 and len(open_queue(store, limit=1).entries) == 1
    assert open_queue(store, limit=0).entries == []
    escalated = open_queue(store, route=Route.ESCALATE)
    assert escalated.total == 1 and escalated.entries[0].decision.ticket_id == "t1"
    record_override(
        workflow,
        store,
        ticket_id="t0",
        final_label="hardware",
        reason_code=ReasonCode.R1,
        analyst="a",
    )
    after = open_queue(store)
    assert after.total == 2
    payload = after.to_dict()
    assert payload["total"] == 2 and set(payload["items"][0]) == {"decision", "ticket_text", "top"}


# -- the champion --------------------------------------------------------------------------


def _rules_version(version_id: str) -> ModelVersion:
    rule = {"name": "vpn-words", "label": "vpn_issue", "any_of": ["tunnel"]}
    return ModelVersion(id=version_id, kind=ModelKind.RULES, config={"rules": [rule]})


def test_load_champion_any_kind_and_fallback(workflow: Workflow, store: Store) -> None:
    with pytest.raises(InputError, match="no champion is registered"):
        load_champion(workflow, store, fallback=False)
    store.save_model_version(_rules_version("rules-a"))
    store.set_alias("champion", "rules-a", actor="test")
    # the service used to refuse rules champions (503); one loader builds every kind now
    served = load_champion(workflow, store)
    assert served.version_id == "rules-a"
    assert served.description == "champion rules-a (rules)"
    [decision] = classify_tickets(
        workflow, served.classifier, _tickets("the tunnel drops"), store=None, version="rules-a"
    )
    assert decision.label == "vpn_issue" and decision.model_version == "rules-a"


def test_load_champion_without_store_is_zero_shot(
    workflow: Workflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tunegate.models

    class FakeZeroShot(WordClassifier):  # the real one loads an encoder
        def __init__(self, wf: Workflow) -> None:
            super().__init__(wf.label_names)

    monkeypatch.setattr(tunegate.models, "ZeroShotClassifier", FakeZeroShot)
    served = load_champion(workflow, None)
    assert isinstance(served.classifier, FakeZeroShot)
    assert served.version is None and served.description == "zero-shot"
    assert served.to_dict() == {"model": "zero-shot", "version_id": None}


def test_promote_rollback_summary_and_overview(workflow: Workflow, store: Store) -> None:
    assert champion_summary(store).id is None
    for vid in ("zs-a", "zs-b"):
        store.save_model_version(ModelVersion(id=vid, kind=ModelKind.ZERO_SHOT))
    first = promote_version(store, "zs-a", actor="root")
    assert first.champion == "zs-a" and first.to_dict()["actor"] == "root"
    forced = promote_version(store, "zs-b", actor="root", force=True, reason="hotfix")
    assert (forced.champion, forced.promotion.previous) == ("zs-b", "zs-a")
    summary = champion_summary(store)
    assert summary.id == "zs-b" and summary.version is not None and summary.verdict is None
    assert summary.to_dict()["version"]["id"] == "zs-b"
    back = rollback_champion(store, actor="root", reason="spike")
    assert back.to_dict()["champion"] == "zs-a" and back.to_dict()["previous"] == "zs-b"
    overview = models_overview(store)
    assert overview.champion == "zs-a"
    assert [e.version_id for e in overview.history] == ["zs-a", "zs-b", "zs-a"]
    assert {v["id"] for v in overview.to_dict()["versions"]} == {"zs-a", "zs-b"}


# -- weekly figures ------------------------------------------------------------------------


def test_service_figures_match_the_weekly_and_monitor_views(
    workflow: Workflow, store: Store
) -> None:
    _classify(workflow, store, "vpn issue", "hello there", "security incident", "hi")
    record_override(
        workflow,
        store,
        ticket_id="t1",
        final_label="hardware",
        reason_code=ReasonCode.R2,
        analyst="a",
    )
    record_override(
        workflow,
        store,
        ticket_id="t0",
        final_label="vpn_issue",
        reason_code=ReasonCode.R1,
        analyst="a",
    )
    figures = service_figures(store, workflow, weeks=12)
    [week] = figures.weeks
    assert week.decisions == 4 and week.routes == {"auto": 1, "clarify": 2, "escalate": 1}
    assert figures.totals == {"decisions": 4, "corrections": 1, "confirmations": 1}
    payload = json.loads(json.dumps(figures.to_dict()))
    assert set(payload) == {"weeks", "since", "until", "chosen", "champion", "monitor"}
    assert payload["weeks"][0]["override_rate"] == pytest.approx(0.25)
    assert payload["monitor"][0]["n_decisions"] == 4


def _decision(ticket: str, when: datetime, route: Route, *, shadow: bool = False) -> Decision:
    return Decision(
        ticket_id=ticket,
        model_version="m",
        probabilities={"a": 0.5, "b": 0.5},
        label="a",
        h_norm=1.0 if route is Route.CLARIFY else 0.2,
        route=route,
        latency_ms=1.0,
        shadow=shadow,
        created_at=when,
    )


def test_weekly_figures_count_overrides_in_their_own_week() -> None:
    monday = datetime(2025, 2, 10, 9, tzinfo=UTC)  # ISO week 2025-W07
    decisions = [
        _decision("t1", monday, Route.AUTO),
        _decision("t2", monday, Route.CLARIFY),
        _decision("t3", monday, Route.AUTO, shadow=True),
    ]
    overrides = [
        Override(ticket_id="t1", model_label="a", final_label="b", reason_code=ReasonCode.R2,
                 analyst="x", created_at=monday + timedelta(days=7)),
        Override(ticket_id="t2", model_label="a", final_label="a", reason_code=ReasonCode.R1,
                 analyst="x", created_at=monday + timedelta(days=7)),
        Override(ticket_id="t9", model_label=None, final_label="a", reason_code=ReasonCode.R3,
                 analyst="x", created_at=monday),
    ]  # fmt: skip
    w7, w8 = weekly_figures(decisions, overrides)
    assert (w7.week, w7.decisions, w7.routes["auto"], w7.routes["clarify"]) == ("2025-W07", 2, 1, 1)
    assert w7.corrections["R3"] == 1 and w7.override_rate == pytest.approx(0.5)
    assert w7.mean_h_norm == pytest.approx(0.6)
    assert (w8.week, w8.decisions, w8.override_rate) == ("2025-W08", 0, None)
    assert w8.corrections["R2"] == 1 and w8.confirmations == 1
    assert w8.to_dict()["route_shares"]["auto"] is None


# -- ticket files and chart geometry -------------------------------------------------------


def test_parse_tickets_jsonl_and_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "t.jsonl"
    rows = [
        {"id": 7, "text": "vpn down", "channel": "chat"},
        {"text": "  "},
        {"id": "7", "text": "dup"},
    ]
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n\nnot json\n", encoding="utf-8")
    parsed = parse_tickets(str(src))
    assert [t.id for t in parsed.tickets] == ["7"]
    assert parsed.tickets[0].metadata == {"channel": "chat"}
    assert [n for n, _ in parsed.problems] == [2, 3, 5]
    assert "duplicate id" in parsed.problems[1][1] and parsed.blank_lines == 1
    monkeypatch.setattr("sys.stdin", io.StringIO("printer jammed\n{not a row}\n"))
    tickets, problems, blank = parse_tickets("-")
    assert blank == 0
    assert [t.text for t in tickets] == ["printer jammed", "{not a row}"] and not problems
    with pytest.raises(InputError, match="no such file"):
        parse_tickets(str(tmp_path / "missing.txt"))


def test_stacked_bar_chart_geometry() -> None:
    chart = stacked_bar_chart(["w1", "w2"], ["a", "b"], [[1, 3], [0, 0]])
    assert not chart.empty and [b.series for b in chart.bars] == ["a", "b"]
    assert [label for _, label in chart.yticks] == ["0", "2", "4"]  # axis up to an even 4
    a, b = chart.bars
    assert a.y + a.height == pytest.approx(190.0) and b.y + b.height == pytest.approx(a.y)
    assert a.height * 3 == pytest.approx(b.height)
    shares = stacked_bar_chart(["w1"], ["a", "b"], [[1, 3]], percent=True)
    assert sum(bar.height for bar in shares.bars) == pytest.approx(180.0)
    assert stacked_bar_chart([], ["a"], []).empty
