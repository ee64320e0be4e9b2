"""``tunegate monitor`` as a library call: figures, drift, triggers, alert, auto-rollback.

:func:`run_monitor` reads the store and judges; :func:`act_on` alerts (terminal, JSON,
webhook) and, when asked, rolls the registry back and records why.

Conventions (docs/monitoring.md):

* The **champion** and its **promotion time** come from ``store.alias_history("champion")``:
  the latest event that set the alias, or the first decision of the champion's current run
  of routed decisions when that is earlier (see :func:`promotion_of`).
* The **baseline** covers ``rollback.baseline_days`` before the promotion: the champion's own
  shadow decisions there when it shadowed at least ``min_decisions`` tickets (its production
  figures before promotion; truth = an override's final label, else a reviewed example of the
  ticket, else the previous champion's accepted label), else the live decisions served there
  (the previous champion's figures).
* **Trigger windows** are the periods (ISO weeks or months) from the promotion on, cut at the
  promotion time; "rising for N consecutive weeks" is judged over these windows.
* The **build data** of a version (the drift reference) is, in order: a ``monitor_reference``
  document for the version (``set_reference``), the examples of its training dataset
  (``training_data_hash``), else the tickets that arrived before the version was created.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from tunegate.config import Workflow
from tunegate.documents import DatasetManifest, MonitorReference
from tunegate.errors import InputError, NotFoundError
from tunegate.monitor._attacks import AttackPatternCounts, attack_pattern_counts
from tunegate.monitor._drift import (
    DEFAULT_EMBEDDING_TESTS,
    DEFAULT_VOCABULARY_TESTS,
    DriftResult,
    get_drift_test,
)
from tunegate.monitor._figures import (
    Figures,
    Period,
    PeriodFigures,
    compute_figures,
    figures_by_period,
)
from tunegate.monitor._shadow import reviewed_for, shadow_figures_from_records
from tunegate.monitor._triggers import Alert, TriggerResult, WindowTriggers, evaluate_windows
from tunegate.records import Decision, EvalRun, EvalSuite, ModelVersion, Ticket

if TYPE_CHECKING:
    from tunegate.store import Store

__all__ = [
    "EvalPassRate",
    "MonitorResult",
    "act_on",
    "eval_pass_rate",
    "promotion_of",
    "reference_texts",
    "run_monitor",
    "set_reference",
]

Embedder = Callable[[list[str]], np.ndarray]

_MAX_REFERENCE = 2000
_MAX_DRIFT_TEXTS = 400


@dataclass(frozen=True)
class EvalPassRate:
    """Accuracy of a version on evaluation cases added after it was created."""

    model_version: str
    suites: list[str]
    n_cases: int
    n_passed: int

    @property
    def pass_rate(self) -> float | None:
        return self.n_passed / self.n_cases if self.n_cases else None

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "pass_rate": self.pass_rate}


def eval_pass_rate(
    model: ModelVersion, runs: Sequence[EvalRun], suites: Sequence[EvalSuite]
) -> EvalPassRate:
    """Pass rate (top label == true label) of ``model`` on suites created after ``model``.

    Only the latest run per suite counts.
    """
    newer = {s.hash: s for s in suites if s.created_at > model.created_at}
    latest: dict[str, EvalRun] = {}
    for r in sorted(runs, key=lambda r: r.created_at):
        if r.model_version == model.id and r.suite_hash in newer:
            latest[r.suite_hash] = r
    n = ok = 0
    for r in latest.values():
        if r.proba:
            pred = np.argmax(np.asarray(r.proba), axis=1)
            ok += int(np.sum(pred == np.asarray(r.y_true)))
            n += len(r.y_true)
    return EvalPassRate(model.id, sorted(newer[h].name for h in latest), n, ok)


def set_reference(store: Store, version: str, texts: Sequence[str]) -> None:
    """Record the texts ``version`` was built from (its drift reference)."""
    if not texts:
        raise InputError(f"reference texts for {version!r} are empty; pass the build texts")
    store.documents(MonitorReference).put(version, MonitorReference(texts=list(texts)))


def reference_texts(
    store: Store, version: str, *, limit: int = _MAX_REFERENCE, seed: int = 0
) -> tuple[list[str], str]:
    """The build data of ``version`` and where it came from (see the module docstring)."""
    rng = np.random.default_rng(seed)

    def cap(texts: list[str]) -> list[str]:
        if len(texts) <= limit:
            return texts
        return [texts[i] for i in sorted(rng.choice(len(texts), size=limit, replace=False))]

    doc = store.documents(MonitorReference).get(version)
    if doc is not None and doc.texts:
        return cap(list(doc.texts)), "monitor_reference"
    try:
        mv: ModelVersion | None = store.get_model_version(version)
    except NotFoundError:
        mv = None
    if mv is not None and mv.training_data_hash:
        data = store.documents(DatasetManifest).get(mv.training_data_hash)
        if data is not None and data.examples:
            return cap([e.text for e in data.examples]), "training dataset"
    if mv is not None:
        before = store.tickets(until=mv.created_at)
        if before:
            return cap([t.text for t in before[-limit:]]), "tickets before the version was built"
    return [], "none"


def promotion_of(store: Store) -> tuple[str | None, datetime | None]:
    """The current champion and when it took over production, from the alias history.

    The time is that of the latest alias event that set the champion, or, when earlier, the
    first decision of the champion's current uninterrupted run of routed decisions (so that
    decisions replayed or simulated with past timestamps are judged in their own time).
    """
    champion: str | None = store.get_alias("champion")
    if champion is None:
        return None, None
    events = [e for e in store.alias_history("champion") if e.version_id == champion]
    at: datetime | None = max(e.at for e in events) if events else None
    run_start: datetime | None = None
    for d in store.decisions(shadow=False):
        is_champion = d.model_version == champion
        run_start = (run_start or d.created_at) if is_champion else None
    if run_start is not None and (at is None or run_start < at):
        at = run_start
    return champion, at


@dataclass
class MonitorResult:
    """Everything ``tunegate monitor`` found."""

    workflow: str
    period: Period
    champion: str | None
    promoted_at: datetime | None
    baseline: Figures | None
    periods: list[PeriodFigures]
    windows: list[WindowTriggers]
    drift: dict[str, list[DriftResult]] = field(default_factory=dict)
    reference_source: str = "none"
    baseline_source: str = "none"
    """``shadow`` (the champion's own shadow decisions before its promotion) or
    ``previous champion`` (the live decisions served before the promotion)."""
    eval_pass: EvalPassRate | None = None
    notes: list[str] = field(default_factory=list)
    alert: Alert | None = None
    attack_patterns: AttackPatternCounts | None = None
    """Tickets of the monitored decisions that match a known attack pattern (injected
    instructions; :func:`~tunegate.monitor.attack_pattern_counts`)."""

    @property
    def fired(self) -> list[TriggerResult]:
        return [r for w in self.windows for r in w.fired]

    def to_dict(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "period": self.period,
            "champion": self.champion,
            "promoted_at": self.promoted_at.isoformat() if self.promoted_at else None,
            "baseline": self.baseline.to_dict(with_breakdown=False) if self.baseline else None,
            "periods": [p.to_dict() for p in self.periods],
            "triggers": {w.window: [r.to_dict() for r in w.results] for w in self.windows},
            "fired": [r.to_dict() for r in self.fired],
            "drift": {k: [d.to_dict() for d in v] for k, v in self.drift.items()},
            "reference_source": self.reference_source,
            "baseline_source": self.baseline_source,
            "eval_pass": self.eval_pass.to_dict() if self.eval_pass else None,
            "notes": self.notes,
            "alert": self.alert.to_dict() if self.alert else None,
            "attack_patterns": self.attack_patterns.to_dict() if self.attack_patterns else None,
        }


def _tickets_for(store: Store, decisions: Sequence[Decision]) -> dict[str, Ticket]:
    ids = sorted({d.ticket_id for d in decisions})
    return {t.id: t for t in store.tickets(ids=ids)} if ids else {}


def _baseline(
    store: Store, workflow: Workflow, champion: str | None, start: datetime, end: datetime
) -> tuple[Figures, str, list[str]]:
    """The pre-promotion baseline: the champion's shadow figures when it shadowed at least
    ``min_decisions`` tickets in the window, else the live figures of the previous champion.

    Truth of a shadowed ticket: its override, else a reviewed example of it (a confirmation or
    a review of a disagreement), else the previous champion's label. Unreviewed disagreements
    therefore count against the new champion, which overstates its baseline by the previous
    champion's uncaught errors; the note says how many there were. Returns the figures, the
    source and notes.
    """
    live = [d for d in store.decisions(since=start, until=end, shadow=False) if d.created_at < end]
    overrides = store.overrides(since=start)
    if champion is not None:
        shadow = [
            d
            for d in store.decisions(model_version=champion, since=start, until=end, shadow=True)
            if d.created_at < end
        ]
        if len(shadow) >= workflow.rollback.min_decisions:
            reviewed = reviewed_for(store, [d.ticket_id for d in shadow])
            figures = shadow_figures_from_records(
                champion, shadow, live, overrides, workflow, reviewed=reviewed
            )
            own = figures.candidate_figures
            if own is not None and own.n_decisions >= workflow.rollback.min_decisions:
                notes = []
                if figures.unverified_disagreements:
                    notes.append(
                        f"baseline: {figures.unverified_disagreements} of {champion}'s "
                        f"{own.n_decisions} shadow decisions disagree with an un-reviewed label "
                        f"of the previous champion and count as errors (some are the previous "
                        f"champion's uncaught errors, so the baseline override rate "
                        f"{_pct(own.override_rate)} may be too high); label them before a "
                        f"promotion (tunegate.monitor.disagreements_to_review)"
                    )
                return own, "shadow", notes
    figures_live = compute_figures(live, overrides, workflow, breakdown=False)
    return figures_live, "previous champion", []


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def run_monitor(
    store: Store,
    workflow: Workflow,
    *,
    period: Period = "week",
    since: datetime | None = None,
    until: datetime | None = None,
    embedder: Embedder | None = None,
    drift: bool = True,
    seed: int = 0,
) -> MonitorResult:
    """Figures per period, drift against the build data, and triggers since the promotion."""
    policy = workflow.rollback
    champion, promoted_at = promotion_of(store)
    notes: list[str] = []
    baseline: Figures | None = None
    baseline_source = "none"
    base_start = promoted_at - timedelta(days=policy.baseline_days) if promoted_at else None
    start = since if since is not None else base_start
    decisions = store.decisions(since=start, until=until, shadow=False)
    overrides = store.overrides(since=start)
    tickets = _tickets_for(store, decisions)
    periods = figures_by_period(decisions, overrides, workflow, period=period, tickets=tickets)
    windows: list[WindowTriggers] = []
    if promoted_at is None or base_start is None:
        notes.append("no champion promotion in the alias history: triggers not judged")
    else:
        baseline, baseline_source, base_notes = _baseline(
            store, workflow, champion, base_start, promoted_at
        )
        notes.extend(base_notes)
        after = [d for d in decisions if d.created_at >= promoted_at]
        if since is not None and since > promoted_at:
            after = [d for d in after if d.created_at >= since]
        trig_periods = figures_by_period(after, overrides, workflow, period=period, breakdown=False)
        windows = evaluate_windows(trig_periods, baseline, policy)
        if baseline.n_decisions < policy.min_decisions:
            notes.append(
                f"baseline has {baseline.n_decisions} decisions in the "
                f"{policy.baseline_days} days before the promotion (< min_decisions "
                f"{policy.min_decisions}): triggers not judged"
            )
    result = MonitorResult(
        workflow.name,
        period,
        champion,
        promoted_at,
        baseline,
        periods,
        windows,
        notes=notes,
        baseline_source=baseline_source,
        attack_patterns=attack_pattern_counts(list(tickets.values()), period=period),
    )
    if champion is not None:
        try:
            mv = store.get_model_version(champion)
        except NotFoundError:
            mv = None
        if mv is not None:
            result.eval_pass = eval_pass_rate(
                mv, store.eval_runs(model_version=champion), store.suites()
            )
        if drift:
            _add_drift(result, store, champion, periods, decisions, tickets, embedder, seed)
    return result


def _add_drift(
    result: MonitorResult,
    store: Store,
    champion: str,
    periods: Sequence[PeriodFigures],
    decisions: Sequence[Decision],
    tickets: dict[str, Ticket],
    embedder: Embedder | None,
    seed: int,
) -> None:
    reference, source = reference_texts(store, champion, seed=seed)
    result.reference_source = source
    if len(reference) < 2:
        result.notes.append(
            f"no build data found for {champion!r}: drift not measured "
            f"(record it with tunegate.monitor.set_reference)"
        )
        return
    rng = np.random.default_rng(seed)
    ref_emb = embedder(reference) if embedder is not None else None
    for p in periods:
        texts = [
            tickets[d.ticket_id].text
            for d in decisions
            if p.start <= d.created_at < p.end and d.ticket_id in tickets
        ]
        if len(texts) < 2:
            continue
        if len(texts) > _MAX_DRIFT_TEXTS:
            texts = [
                texts[i] for i in sorted(rng.choice(len(texts), _MAX_DRIFT_TEXTS, replace=False))
            ]
        out = [get_drift_test(n)(reference, texts, seed=seed) for n in DEFAULT_VOCABULARY_TESTS]
        if ref_emb is not None and embedder is not None:
            cur = embedder(texts)
            out += [get_drift_test(n)(ref_emb, cur, seed=seed) for n in DEFAULT_EMBEDDING_TESTS]
        result.drift[p.period] = out


class _Judged(Protocol):
    """What :func:`act_on` needs of a monitor result (:class:`MonitorResult` or
    :class:`~tunegate.monitor.GenerativeMonitorResult`)."""

    workflow: str
    champion: str | None
    promoted_at: datetime | None
    alert: Alert | None

    @property
    def fired(self) -> list[TriggerResult]: ...


def act_on(
    result: _Judged,
    store: Store,
    *,
    auto_rollback: bool = False,
    webhook: str | None = None,
    actor: str = "tunegate-monitor",
) -> Alert | None:
    """When triggers fired: build the alert, roll back if asked, POST the webhook.

    The rollback goes through ``Registry(store).rollback`` and is audited as
    ``monitor.rollback`` with the fired triggers. Returns the alert (also set on ``result``).
    """
    from tunegate.monitor._triggers import post_webhook

    fired = result.fired
    if not fired:
        return None
    alert = Alert(result.workflow, result.champion, result.promoted_at, fired)
    if auto_rollback:
        reason = "auto-rollback: " + "; ".join(f"{r.window} {r.message}" for r in fired[:5])
        previous = _rollback(store, actor=actor, reason=reason)
        store.audit(
            "monitor.rollback",
            actor,
            {
                "from": result.champion,
                "to": previous,
                "reason": reason,
                "fired": [r.to_dict() for r in fired],
            },
        )
        alert = Alert(
            result.workflow,
            result.champion,
            result.promoted_at,
            fired,
            rollback={"from": result.champion, "to": previous, "reason": reason},
        )
    if webhook:
        post_webhook(webhook, alert.to_dict())
    store.audit("monitor.alert", actor, alert.to_dict())
    result.alert = alert
    return alert


def _rollback(store: Store, *, actor: str, reason: str) -> str | None:
    """Restore the previous champion through the registry."""
    from tunegate.registry import Registry

    Registry(store).rollback(actor=actor, reason=reason)
    champion: str | None = store.get_alias("champion")
    return champion
