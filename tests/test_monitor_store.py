"""Monitor over a real store: shadow scoring, run_monitor, alerts, webhook, auto-rollback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from tunegate.cli import main
from tunegate.config import Workflow
from tunegate.diagnose import MissedSignalPattern
from tunegate.documents import Finding, FindingTerm
from tunegate.errors import InputError
from tunegate.monitor import (
    act_on,
    next_gap_from_store,
    post_webhook,
    promotion_of,
    run_monitor,
    set_reference,
    shadow_figures,
    shadow_score,
)
from tunegate.records import Decision, ModelKind, ModelVersion, Override, Route, Ticket
from tunegate.report import monitor_review_html, monitor_review_markdown, write_monitor_review
from tunegate.store import Store

T0 = datetime(2025, 1, 6, 9, tzinfo=UTC)  # a Monday
WORDS = {
    "account_unlock": "locked out of my account",
    "vpn_issue": "vpn keeps dropping",
    "hardware": "laptop screen flickers",
    "security_incident": "phishing email clicked",
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'm.db'}")
    yield s
    s.close()


def _probs(labels: Sequence[str], label: str, conf: float) -> dict[str, float]:
    rest = (1.0 - conf) / (len(labels) - 1)
    return {lab: conf if lab == label else rest for lab in labels}


def populate(
    store: Store,
    workflow: Workflow,
    *,
    weeks: Sequence[tuple[str, float]],
    per_week: int = 120,
    seed: int = 0,
) -> None:
    """Per week (version, override share): tickets, the version's decisions, overrides."""
    rng = np.random.default_rng(seed)
    labels = workflow.label_names
    tickets, decisions, overrides = [], [], []
    classes = list(WORDS)
    for w, (version, share) in enumerate(weeks):
        for i in range(per_week):
            at = T0 + timedelta(weeks=w, minutes=10 * i)
            truth = classes[int(rng.integers(len(classes)))]
            tid = f"t{w}-{i}"
            tickets.append(Ticket(id=tid, text=f"{WORDS[truth]} #{i % 7}", created_at=at))
            wrong = rng.random() < share
            label = "password_reset" if wrong else truth
            route = Route.ESCALATE if label == "security_incident" else Route.AUTO
            d = Decision(
                id=f"d-{tid}",
                ticket_id=tid,
                model_version=version,
                probabilities=_probs(labels, label, 0.8),
                label=label,
                h_norm=0.3,
                route=route,
                latency_ms=10.0 + float(rng.random()),
                created_at=at,
            )
            decisions.append(d)
            if wrong:
                overrides.append(
                    Override(
                        ticket_id=tid,
                        decision_id=d.id,
                        model_label=label,
                        final_label=truth,
                        reason_code="R2",
                        created_at=at + timedelta(hours=1),
                    )
                )
    store.add_tickets(tickets)
    store.add_decisions(decisions)
    store.add_overrides(overrides)


def register(store: Store, *versions: str) -> None:
    for v in versions:
        store.save_model_version(
            ModelVersion(id=v, kind=ModelKind.ZERO_SHOT, created_at=T0 - timedelta(days=60))
        )
        store.set_alias("champion", v, actor="test", reason=f"promote {v}")


class Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        Receiver.received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    Receiver.received = []
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_promotion_time_is_the_start_of_the_champions_decisions(
    store: Store, workflow: Workflow
) -> None:
    populate(store, workflow, weeks=[("v1", 0.05)] * 2 + [("v2", 0.05)] * 2)
    register(store, "v1", "v2")
    champion, at = promotion_of(store)
    assert champion == "v2" and at == T0 + timedelta(weeks=2)


def test_worse_champion_fires_alerts_webhook_and_rolls_back(
    store: Store, workflow: Workflow, webhook: str
) -> None:
    populate(store, workflow, weeks=[("v1", 0.05)] * 4 + [("v2", 0.25)] * 2)
    register(store, "v1", "v2")
    result = run_monitor(store, workflow, drift=False)
    assert result.champion == "v2" and result.baseline is not None
    assert result.baseline.n_decisions == 4 * 120
    assert {r.trigger for r in result.fired} >= {"override_rate"}
    alert = act_on(result, store, auto_rollback=True, webhook=webhook)
    assert alert is not None and alert.rollback == {
        "from": "v2",
        "to": "v1",
        "reason": alert.rollback["reason"],
    }
    assert store.get_alias("champion") == "v1"
    last = store.alias_history("champion")[-1]
    assert last.version_id == "v1" and "override rate" in last.reason
    (audit,) = store.audit_log("monitor.rollback")
    assert audit["actor"] == "tunegate-monitor" and audit["details"]["from"] == "v2"
    assert audit["details"]["to"] == "v1" and audit["details"]["fired"]
    (payload,) = Receiver.received
    assert payload["kind"] == "tunegate.rollback_trigger" and payload["champion"] == "v2"
    assert payload["rollback"]["to"] == "v1"
    # Judged again after the rollback: v1 is champion from now on, nothing new to judge.
    assert not run_monitor(store, workflow, drift=False).fired


def test_a_steady_champion_fires_nothing(store: Store, workflow: Workflow) -> None:
    populate(store, workflow, weeks=[("v1", 0.08)] * 4 + [("v2", 0.08)] * 8, seed=3)
    register(store, "v1", "v2")
    result = run_monitor(store, workflow, drift=False)
    assert len(result.windows) == 8
    assert all(
        r.judged
        for w in result.windows
        for r in w.results
        if r.trigger in ("override_rate", "latency")
    )
    assert not result.fired, [r.message for r in result.fired]
    assert act_on(result, store, auto_rollback=True) is None
    assert store.get_alias("champion") == "v2"


def test_cli_monitor_exit_code_json_and_report(
    store: Store, workflow: Workflow, tmp_path: Path
) -> None:
    populate(store, workflow, weeks=[("v1", 0.05)] * 4 + [("v2", 0.25)] * 2)
    register(store, "v1", "v2")
    set_reference(store, "v2", [t.text for t in store.tickets()[:200]])
    config = tmp_path / "tunegate.yaml"
    config.write_text(workflow.to_yaml().replace("sqlite:///tunegate.db", "sqlite:///m.db"))
    code = main(
        [
            "monitor",
            "-c",
            str(config),
            "--no-embeddings",
            "--json",
            "--report",
            str(tmp_path / "review"),
        ]
    )
    assert code == 1
    html = (tmp_path / "review" / "review.html").read_text()
    assert (
        "<svg" in html
        and '<span class="fired">FIRED</span>' in html
        and "http" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )
    md = (tmp_path / "review" / "review.md").read_text()
    assert "## Rollback triggers per window" in md and "## The next gap" in md
    assert store.get_alias("champion") == "v2"  # no --auto-rollback: alert only
    assert main(["monitor", "-c", str(config), "--no-embeddings", "--auto-rollback", "--json"]) == 1
    assert store.get_alias("champion") == "v1"
    assert main(["monitor", "-c", str(config), "--no-embeddings", "--json"]) == 0


def test_drift_is_measured_against_the_reference(store: Store, workflow: Workflow) -> None:
    populate(store, workflow, weeks=[("v1", 0.05)] * 4 + [("v2", 0.05)] * 2)
    register(store, "v1", "v2")
    set_reference(store, "v2", ["printer toner empty again"] * 50 + ["monitor cable"] * 50)
    result = run_monitor(store, workflow)
    assert result.reference_source == "monitor_reference"
    assert result.drift and all(
        {d.test: d.drifted for d in ds}["new_vocabulary"] for ds in result.drift.values()
    )
    with pytest.raises(InputError, match="empty"):
        set_reference(store, "v2", [])


def test_next_gap_and_report_render(store: Store, workflow: Workflow) -> None:
    populate(store, workflow, weeks=[("v1", 0.05)] * 4 + [("v2", 0.3)] * 2)
    register(store, "v1", "v2")
    gap = next_gap_from_store(store, workflow)
    assert gap.model_version == "v2" and gap.by_reason == {"R2": gap.n_overridden}
    assert gap.top_pairs and gap.top_pairs[0][0] == "password_reset"
    result = run_monitor(store, workflow, drift=False)
    # the gap's n-grams are diagnosis's missed-signal patterns (R2 vs correctly handled tickets)
    assert gap.r2_ngrams and all(isinstance(p, MissedSignalPattern) for p in gap.r2_ngrams)
    assert all(p.z >= 0 and p.n_overrides == gap.by_reason["R2"] for p in gap.r2_ngrams)
    page = monitor_review_html(result, gap=gap)
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    for needle in ("Trigger status", "Figures per period", "The next gap", "R2 n-gram", "<svg"):
        assert needle in page, needle
    md = monitor_review_markdown(result, gap=gap)
    assert "| R2 n-gram | R2 tickets | correctly handled | log-odds | z |" in md
    html_path, md_path = write_monitor_review(
        result, Path(store.sqlite_path or ".").parent / "r", gap=gap
    )
    assert html_path.exists() and md_path.exists()


def _term(term: str, label: str) -> FindingTerm:
    return FindingTerm(
        term=term, label=label, z=3.0, overrides_with=5, reference_with=0,
        attr_analyst=0.01, attr_predicted=0.03, margin=-0.02, cue="misleading",
    )  # fmt: skip


def test_next_gap_counts_the_terms_of_stored_attribution_findings(
    store: Store, workflow: Workflow
) -> None:
    """Findings written by ``attribute_overrides`` (kind ``finding``) reach the next gap."""
    populate(store, workflow, weeks=[("v1", 0.05)] * 4 + [("v2", 0.3)] * 2)
    register(store, "v1", "v2")
    assert next_gap_from_store(store, workflow).attribution == {}
    docs = store.documents(Finding)
    label = "security_incident"
    terms = [_term("phishing", label), _term("mfa", label)]  # "mfa" is in no ticket
    docs.put("fnd_1", Finding(id="fnd_1", reason_code="R2", label=label, tokens=terms))
    other = [_term("vpn", "vpn_issue")]
    docs.put("fnd_2", Finding(id="fnd_2", reason_code="R1", label="vpn_issue", tokens=other))
    gap = next_gap_from_store(store, workflow)
    v2 = {d.id for d in store.decisions(model_version="v2")}
    expected = sum(1 for o in store.overrides() if o.decision_id in v2 and o.final_label == label)
    assert expected > 0
    assert gap.attribution == {"phishing": float(expected)}
    assert gap.to_dict()["attribution"] == {"phishing": float(expected)}


# -- shadow ---------------------------------------------------------------------------------


class KeywordModel:
    """A tiny deterministic classifier: 'vpn' -> vpn_issue, 'phishing' -> security, else hw."""

    def __init__(self, labels: list[str], version: str = "cand") -> None:
        self.labels = labels
        self.version = version

    def predict_proba(self, texts: Sequence[str], metadata: Any = None) -> np.ndarray:
        out = np.full((len(texts), len(self.labels)), 0.02)
        for i, t in enumerate(texts):
            label = (
                "vpn_issue"
                if "vpn" in t
                else "security_incident"
                if "phishing" in t
                else "hardware"
            )
            out[i, self.labels.index(label)] = 1.0
        return out / out.sum(axis=1, keepdims=True)


def test_shadow_scoring_stores_shadow_decisions_and_routes_nothing(
    store: Store, workflow: Workflow
) -> None:
    populate(store, workflow, weeks=[("v1", 0.2)], per_week=60)
    register(store, "v1")
    before = store.decisions(shadow=False)
    overrides_before = store.overrides()
    tickets = store.tickets()
    model = KeywordModel(workflow.label_names)
    scored = shadow_score(model, tickets, store, workflow=workflow)
    assert len(scored) == len(tickets) and all(d.shadow for d in scored)
    assert store.decisions(shadow=False) == before
    assert store.overrides() == overrides_before and store.get_alias("champion") == "v1"
    assert len(store.decisions(shadow=True, model_version="cand")) == len(tickets)
    assert shadow_score(model, tickets, store, workflow=workflow) == []  # idempotent

    figures = shadow_figures(store, "cand", workflow=workflow)
    truth = {}
    champ = {d.ticket_id: d for d in before}
    latest = {o.ticket_id: o.final_label for o in overrides_before}
    for t in tickets:
        truth[t.id] = latest.get(t.id, champ[t.id].label)
    cand = {d.ticket_id: d.label for d in scored}
    assert figures.n_tickets == len(tickets)
    assert figures.agreement == pytest.approx(
        np.mean([cand[t.id] == champ[t.id].label for t in tickets])
    )
    assert figures.candidate_accuracy == pytest.approx(
        np.mean([cand[t.id] == truth[t.id] for t in tickets])
    )
    assert figures.champion_accuracy == pytest.approx(
        np.mean([champ[t.id].label == truth[t.id] for t in tickets])
    )
    assert figures.fixes > 0  # the champion's password_reset mistakes on vpn tickets
    assert figures.candidate_figures is not None
    assert figures.candidate_figures.accuracy == pytest.approx(figures.candidate_accuracy)


def test_shadow_refuses_unknown_labels(store: Store, workflow: Workflow) -> None:
    with pytest.raises(InputError, match="not in the workflow"):
        shadow_score(KeywordModel(["a", "b"]), [], store, workflow=workflow)


def test_webhook_delivery_and_failure(webhook: str) -> None:
    assert post_webhook(webhook, {"hello": 1}) == 204
    assert Receiver.received == [{"hello": 1}]
    with pytest.raises(InputError, match="http"):
        post_webhook("ftp://x", {})
    with pytest.raises(InputError, match="could not deliver"):
        post_webhook("http://127.0.0.1:9/none", {}, timeout=2)


def test_baseline_is_the_champions_shadow_figures_when_it_shadowed(
    store: Store, workflow: Workflow
) -> None:
    # v1 (bad, 30% overridden) serves 4 weeks while v2 shadows them perfectly; v2 is promoted
    # and serves at 12%: better than v1 ever was, but worse than its own pre-promotion figures.
    populate(store, workflow, weeks=[("v1", 0.30)] * 4 + [("v2", 0.12)] * 2)
    live = store.decisions(shadow=False)
    truth = {o.ticket_id: o.final_label for o in store.overrides()}
    store.add_decisions(
        [
            Decision(
                id=f"s-{d.ticket_id}",
                ticket_id=d.ticket_id,
                model_version="v2",
                probabilities=_probs(workflow.label_names, truth.get(d.ticket_id, d.label), 0.8),
                label=truth.get(d.ticket_id, d.label),
                h_norm=0.3,
                route=Route.AUTO,
                latency_ms=d.latency_ms,
                created_at=d.created_at,
                shadow=True,
            )
            for d in live
            if d.model_version == "v1"
        ]
    )
    register(store, "v1", "v2")
    result = run_monitor(store, workflow, drift=False)
    assert result.baseline_source == "shadow"
    assert result.baseline is not None and result.baseline.override_rate == 0.0
    assert "override_rate" in {r.trigger for r in result.fired}


def test_without_shadow_rows_the_previous_champion_is_the_baseline(
    store: Store, workflow: Workflow
) -> None:
    populate(store, workflow, weeks=[("v1", 0.30)] * 4 + [("v2", 0.12)] * 2)
    register(store, "v1", "v2")
    result = run_monitor(store, workflow, drift=False)
    assert result.baseline_source == "previous champion"
    assert not result.fired


def test_cli_shadow_scores_stored_tickets(store: Store, workflow: Workflow, tmp_path: Path) -> None:
    populate(store, workflow, weeks=[("v1", 0.2)], per_week=60)
    register(store, "v1")
    rules = [{"name": "vpn", "label": "vpn_issue", "any_of": ["\\bvpn\\b"]}]
    store.save_model_version(
        ModelVersion(id="rules-1", kind=ModelKind.RULES, config={"rules": rules})
    )
    config = tmp_path / "tunegate.yaml"
    config.write_text(workflow.to_yaml().replace("sqlite:///tunegate.db", "sqlite:///m.db"))
    assert main(["shadow", "rules-1", "--since", "2025-01-01", "-c", str(config), "--json"]) == 0
    shadow = store.decisions(shadow=True, model_version="rules-1")
    assert len(shadow) == 60 and store.get_alias("champion") == "v1"
    assert main(["shadow", "rules-1", "-c", str(config)]) == 2  # neither FILE nor --since
