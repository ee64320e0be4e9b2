"""Production figures over Decisions and Overrides: pure functions over lists of records.

The truth of a decision is the analyst's ``final_label`` when its ticket was overridden, else
the decision's own label (an un-overridden decision is taken as accepted). Every rate below is
therefore an *override-corrected* estimate: it can only see the errors analysts caught.

A decision counts as **overridden** when an override matches it (by ``decision_id``, else by
``ticket_id``; the latest override wins) and its ``final_label`` differs from the decision's
label. A confirming override (same label) is not an override.

How the figures are computed: the decisions and their overrides become arrays (true and
decided class ids, the decided class's confidence, the route, the latency) and every rate is
a :mod:`tunegate.metrics` function of them, so production monitoring, the rollback triggers
and the offline verdict share one implementation of ECE, false-negative rate, selective
accuracy and latency percentiles.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from tunegate import metrics
from tunegate.config import Workflow
from tunegate.errors import InputError
from tunegate.records import Decision, Override, ReviewStatus, Route, Ticket
from tunegate.text import iso_week

__all__ = [
    "Figures",
    "Period",
    "PeriodFigures",
    "compute_figures",
    "figures_by_period",
    "live_overrides",
    "match_overrides",
    "period_bounds",
    "period_key",
]

Period = Literal["week", "month"]

_ECE_BINS = 10


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def period_key(when: datetime, period: Period) -> str:
    """The ISO week (``2025-W07``) or month (``2025-02``) that ``when`` (UTC) falls in."""
    when = _aware(when).astimezone(UTC)
    if period == "week":
        return iso_week(when)
    if period == "month":
        return f"{when.year}-{when.month:02d}"
    raise InputError(f"period must be 'week' or 'month', got {period!r}")


def period_bounds(key: str) -> tuple[datetime, datetime]:
    """``[start, end)`` in UTC of a key made by :func:`period_key`."""
    try:
        if "-W" in key:
            year, week = key.split("-W")
            start = datetime.fromisocalendar(int(year), int(week), 1).replace(tzinfo=UTC)
            return start, start + timedelta(days=7)
        year, month = key.split("-")
        start = datetime(int(year), int(month), 1, tzinfo=UTC)
    except ValueError as exc:
        raise InputError(
            f"not a period key: {key!r}; expected e.g. '2025-W07' or '2025-02'"
        ) from exc
    end = datetime(start.year + (start.month == 12), start.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def live_overrides(overrides: Iterable[Override]) -> list[Override]:
    """The override that counts for each decision (the ticket, for one naming no decision):
    the latest that is not superseded, oldest first. Every figure counts these only, so a
    retried or repeated override of one decision is counted once."""
    latest: dict[tuple[str, str | None], Override] = {}
    for ov in sorted(overrides, key=lambda o: (o.created_at, o.id)):
        if ov.review_status != ReviewStatus.SUPERSEDED:
            latest[(ov.ticket_id, ov.decision_id)] = ov
    return sorted(latest.values(), key=lambda o: (o.created_at, o.id))


def match_overrides(
    decisions: Sequence[Decision], overrides: Iterable[Override]
) -> dict[str, Override]:
    """Decision id -> the override that applies to it (by decision id, else by ticket id).

    When several overrides match, the latest (by ``created_at``) wins; superseded overrides
    never do (:func:`live_overrides`).
    """
    by_decision: dict[str, Override] = {}
    by_ticket: dict[str, Override] = {}
    for ov in live_overrides(overrides):
        if ov.decision_id is not None:
            by_decision[ov.decision_id] = ov
        by_ticket[ov.ticket_id] = ov
    out: dict[str, Override] = {}
    for d in decisions:
        found = by_decision.get(d.id) or by_ticket.get(d.ticket_id)
        if found is not None:
            out[d.id] = found
    return out


@dataclass(frozen=True)
class Figures:
    """Figures of one window (and optionally one group) of decisions.

    Rates are shares in [0, 1]; ``None`` means the window had nothing to measure. Latencies are
    milliseconds. The accuracy figures (``selective_accuracy``, ``accuracy``,
    ``calibration_gap``, ``ece``, ``protected_fnr``) take an un-overridden decision as correct,
    so they need analyst feedback: in a window where no decision was overridden or confirmed
    they are ``None`` (not a perfect 100%). ``calibration_gap`` = mean confidence -
    override-corrected accuracy (positive = over-confident); ``ece`` is the expected
    calibration error over 10 equal-width bins
    (:func:`tunegate.metrics.confidence_calibration_error`).
    """

    n_decisions: int
    n_overridden: int
    override_rate: float | None
    override_rate_by_reason: dict[str, float]
    n_escalated: int
    escalation_rate: float | None
    n_clarify: int
    clarify_rate: float | None
    n_auto: int
    n_auto_correct: int
    selective_accuracy: float | None
    """Override-corrected accuracy of auto-routed decisions (abstention quality)."""
    accuracy: float | None
    mean_confidence: float | None
    calibration_gap: float | None
    ece: float | None
    latency_p50: float | None
    latency_p95: float | None
    protected_support: dict[str, int]
    """Protected class -> decisions whose (corrected) true class is it."""
    protected_misses: dict[str, int]
    """Protected class -> of those, decisions that gave another label."""
    protected_fnr: dict[str, float | None]
    """Protected class -> estimated false-negative rate (misses / support)."""
    breakdown: dict[str, dict[str, Figures]] = field(default_factory=dict)
    """``version`` / ``class`` (decision label) / ``slice`` / ``route`` -> value -> figures."""
    latencies_ms: tuple[float, ...] = field(default=(), repr=False)

    def to_dict(self, *, with_breakdown: bool = True) -> dict[str, Any]:
        """A JSON-ready mapping (latency samples left out)."""
        out: dict[str, Any] = {
            name: getattr(self, name)
            for name in self.__dataclass_fields__
            if name not in ("breakdown", "latencies_ms")
        }
        if with_breakdown and self.breakdown:
            out["breakdown"] = {
                dim: {k: f.to_dict(with_breakdown=False) for k, f in groups.items()}
                for dim, groups in self.breakdown.items()
            }
        return out


@dataclass(frozen=True)
class PeriodFigures:
    """Figures of one ISO week or calendar month."""

    period: str
    start: datetime
    end: datetime
    figures: Figures

    def to_dict(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            **self.figures.to_dict(),
        }


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


@dataclass(frozen=True)
class _Arrays:
    """Decisions as arrays, one row per decision (shape (n,) each)."""

    y_true: npt.NDArray[np.intp]
    """Class id of the override-corrected truth."""
    y_pred: npt.NDArray[np.intp]
    """Class id of the decision's label."""
    confidence: npt.NDArray[np.float64]
    """Probability of the decision's label."""
    auto: npt.NDArray[np.bool_]
    """True for decisions routed ``auto``."""
    latency_ms: npt.NDArray[np.float64]
    classes: dict[str, int]
    """Label -> class id: the workflow's labels in order, then any other label seen."""


def _arrays(decisions: Sequence[Decision], truths: Sequence[str], workflow: Workflow) -> _Arrays:
    classes = {name: i for i, name in enumerate(workflow.label_names)}
    for name in (*workflow.protected_labels, *truths, *(d.label for d in decisions)):
        classes.setdefault(name, len(classes))
    return _Arrays(
        y_true=np.array([classes[t] for t in truths], dtype=np.intp),
        y_pred=np.array([classes[d.label] for d in decisions], dtype=np.intp),
        confidence=np.array([d.confidence for d in decisions], dtype=np.float64),
        auto=np.array(
            [d.route not in (Route.ESCALATE, Route.CLARIFY) for d in decisions], dtype=np.bool_
        ),
        latency_ms=np.array([float(d.latency_ms) for d in decisions], dtype=np.float64),
        classes=classes,
    )


def _or_none(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def compute_figures(
    decisions: Sequence[Decision],
    overrides: Iterable[Override],
    workflow: Workflow,
    *,
    tickets: Mapping[str, Ticket] | None = None,
    breakdown: bool = True,
    matched: Mapping[str, Override] | None = None,
    _feedback: bool | None = None,
) -> Figures:
    """Figures of ``decisions`` given the ``overrides`` analysts made.

    ``tickets`` (id -> Ticket) is needed only for the per-slice breakdown.
    ``matched`` may pass a precomputed :func:`match_overrides` result.
    """
    decisions = list(decisions)
    if matched is None:
        matched = match_overrides(decisions, overrides)
    n = len(decisions)
    reasons: dict[str, int] = defaultdict(int)
    truths: list[str] = []
    n_over = 0
    for d in decisions:
        ov = matched.get(d.id)
        truth = d.label
        if ov is not None and ov.final_label != d.label:
            truth = ov.final_label
            n_over += 1
            reasons[str(ov.reason_code)] += 1
        truths.append(truth)
    a = _arrays(decisions, truths, workflow)
    correct = (a.y_true == a.y_pred).astype(np.float64)
    protected = workflow.protected_labels
    support = dict.fromkeys(protected, 0)
    misses = dict.fromkeys(protected, 0)
    fnr: dict[str, float | None] = dict.fromkeys(protected)
    if n:
        cm = metrics.confusion_matrix(a.y_true, a.y_pred, n_classes=len(a.classes))
        per_class_fnr = metrics.false_negative_rate(a.y_true, a.y_pred, n_classes=len(a.classes))
        for c in protected:
            i = a.classes[c]
            support[c] = int(cm[i].sum())
            misses[c] = support[c] - int(cm[i, i])
            fnr[c] = _or_none(per_class_fnr[i])
    # Without any analyst feedback "not overridden" says nothing about being right.
    # (A breakdown group inherits its window's answer.)
    judged = n > 0 and (any(d.id in matched for d in decisions) if _feedback is None else _feedback)
    if not judged:
        fnr = dict.fromkeys(protected)
    routes = [d.route for d in decisions]
    n_esc = routes.count(Route.ESCALATE)
    n_clar = routes.count(Route.CLARIFY)
    n_auto = int(a.auto.sum())
    groups: dict[str, dict[str, Figures]] = {}
    if breakdown and n:
        keyed: dict[str, dict[str, list[Decision]]] = {
            "version": defaultdict(list),
            "class": defaultdict(list),
            "route": defaultdict(list),
        }
        if tickets is not None:
            keyed["slice"] = defaultdict(list)
        for d in decisions:
            keyed["version"][d.model_version].append(d)
            keyed["class"][d.label].append(d)
            keyed["route"][str(d.route)].append(d)
            if tickets is not None and d.ticket_id in tickets:
                t = tickets[d.ticket_id]
                for tag in workflow.slice_tags(t.text, t.metadata):
                    keyed["slice"][tag].append(d)
        groups = {
            dim: {
                key: compute_figures(
                    ds, (), workflow, breakdown=False, matched=matched, _feedback=judged
                )
                for key, ds in sorted(by.items())
            }
            for dim, by in keyed.items()
        }
    return Figures(
        n_decisions=n,
        n_overridden=n_over,
        override_rate=_rate(n_over, n),
        override_rate_by_reason={k: v / n for k, v in sorted(reasons.items())},
        n_escalated=n_esc,
        escalation_rate=_rate(n_esc, n),
        n_clarify=n_clar,
        clarify_rate=_rate(n_clar, n),
        n_auto=n_auto,
        n_auto_correct=int(correct[a.auto].sum()),
        selective_accuracy=(
            _or_none(metrics.accuracy_score(a.y_true, a.y_pred, mask=a.auto)) if judged else None
        ),
        accuracy=metrics.accuracy_score(a.y_true, a.y_pred) if judged else None,
        mean_confidence=float(a.confidence.mean()) if n else None,
        calibration_gap=float(a.confidence.mean() - correct.mean()) if judged else None,
        ece=(
            # clip: a stored distribution may sum to 1 within 1e-3, so one entry may be 1.0004
            metrics.confidence_calibration_error(
                correct, np.clip(a.confidence, 0.0, 1.0), n_bins=_ECE_BINS
            )
            if judged
            else None
        ),
        latency_p50=metrics.latency_p50_ms(a.latency_ms) if n else None,
        latency_p95=metrics.latency_p95_ms(a.latency_ms) if n else None,
        protected_support=support,
        protected_misses=misses,
        protected_fnr=fnr,
        breakdown=groups,
        latencies_ms=tuple(float(x) for x in a.latency_ms),
    )


def figures_by_period(
    decisions: Sequence[Decision],
    overrides: Iterable[Override],
    workflow: Workflow,
    *,
    period: Period = "week",
    tickets: Mapping[str, Ticket] | None = None,
    breakdown: bool = True,
) -> list[PeriodFigures]:
    """Figures per ISO week or month (by decision ``created_at``), oldest first.

    Periods without decisions between the first and last are included (with zero counts), so
    that a consecutive-weeks test sees the gap.
    """
    decisions = list(decisions)
    if not decisions:
        return []
    matched = match_overrides(decisions, overrides)
    buckets: dict[str, list[Decision]] = defaultdict(list)
    for d in decisions:
        buckets[period_key(d.created_at, period)].append(d)
    first = min(buckets, key=lambda k: period_bounds(k)[0])
    last = max(buckets, key=lambda k: period_bounds(k)[0])
    out: list[PeriodFigures] = []
    key = first
    while True:
        start, end = period_bounds(key)
        figs = compute_figures(
            buckets.get(key, []),
            (),
            workflow,
            tickets=tickets,
            breakdown=breakdown,
            matched=matched,
        )
        out.append(PeriodFigures(key, start, end, figs))
        if key == last:
            break
        key = period_key(end, period)
    return out
