"""Override analytics: weekly counts and rates, the gate's trend, recurring missed signals.

The pure functions take lists of records (:class:`~tunegate.records.Override`,
:class:`~tunegate.records.Decision`, :class:`~tunegate.records.Ticket`); the ``*_from_store``
wrappers read those lists from a :class:`tunegate.store.Store`.

Conventions (documented in docs/diagnosis.md):

* A week starts on Monday 00:00 UTC. Weeks between the first and the last record are all
  present, with zeros where nothing happened, so a quiet week counts as a low week.
* An override whose final label equals the model's label is a confirmation, not a correction,
  and is not counted.
* The rate of a week is overrides / decisions of that week (non-shadow decisions, all classes):
  the share of all decisions that were corrected for that reason code, class or slice.
* The last week is *complete* when the data reach its last day (Sunday) or ``as_of`` is past
  its end; an incomplete last week is left out of the trend test, because a half week would
  look like a drop.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from tunegate.config import Workflow
from tunegate.diagnose._trend import TrendDecision, stable_or_increasing
from tunegate.records import Decision, Override, Ticket
from tunegate.text import ngrams, week_start

if TYPE_CHECKING:
    from tunegate.store import Store

__all__ = [
    "GroupBy",
    "MissedSignalPattern",
    "OverrideTrend",
    "WeeklyCount",
    "log_odds_dirichlet",
    "missed_signal_patterns",
    "override_trend",
    "override_trend_from_store",
    "patterns_from_store",
    "weekly_override_counts",
    "weekly_series",
]

GroupBy = Literal["reason_code", "class", "slice", "all"]


@dataclass(frozen=True)
class WeeklyCount:
    """Overrides of one group key in one week."""

    week: date
    """Monday of the week (UTC)."""
    group: str
    """What the key is: ``reason_code``, ``class``, ``slice`` or ``all``."""
    key: str
    """The reason code, final class or slice name (``(none)`` for no slice)."""
    overrides: int
    """Corrections in that week with that key."""
    decisions: int
    """Non-shadow decisions in that week (all keys)."""
    rate: float | None
    """overrides / decisions, or None when there were no decisions."""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["week"] = self.week.isoformat()
        return out


def _weeks_between(first: date, last: date) -> list[date]:
    return [first + timedelta(weeks=i) for i in range((last - first).days // 7 + 1)]


def _keys(
    override: Override, by: GroupBy, tickets: dict[str, Ticket], workflow: Workflow | None
) -> list[str]:
    if by == "all":
        return ["all"]
    if by == "reason_code":
        return [str(override.reason_code.value)]
    if by == "class":
        return [override.final_label]
    ticket = tickets.get(override.ticket_id)
    if ticket is None or workflow is None:
        raise ValueError(
            f"grouping by slice needs the ticket of override {override.id} "
            f"(ticket {override.ticket_id!r}) and the workflow; pass tickets= and workflow="
        )
    return workflow.slice_tags(ticket.text, ticket.metadata) or ["(none)"]


def weekly_override_counts(
    overrides: Iterable[Override],
    decisions: Iterable[Decision] = (),
    *,
    by: GroupBy = "reason_code",
    tickets: Iterable[Ticket] = (),
    workflow: Workflow | None = None,
) -> list[WeeklyCount]:
    """Weekly corrections by reason code, final class or slice, with the weekly rate.

    Every week from the first to the last record appears for every key seen (zeros filled).
    Rows are sorted by (key, week).
    """
    by_ticket = {t.id: t for t in tickets}
    corrections = [o for o in overrides if o.is_correction]
    live = [d for d in decisions if not d.shadow]
    stamps = [o.created_at for o in corrections] + [d.created_at for d in live]
    if not stamps:
        return []
    weeks = _weeks_between(week_start(min(stamps)), week_start(max(stamps)))
    dec_per_week = Counter(week_start(d.created_at) for d in live)
    counts: dict[str, Counter[date]] = defaultdict(Counter)
    for o in corrections:
        for key in _keys(o, by, by_ticket, workflow):
            counts[key][week_start(o.created_at)] += 1
    rows = []
    for key in sorted(counts):
        for w in weeks:
            n_dec = dec_per_week.get(w, 0)
            n = counts[key].get(w, 0)
            rows.append(WeeklyCount(w, by, key, n, n_dec, (n / n_dec) if n_dec else None))
    return rows


@dataclass(frozen=True)
class OverrideTrend:
    """The weekly series of one reason code and the gate's trend decision over it."""

    reason_code: str
    weeks: list[date]
    """Complete weeks, oldest first."""
    counts: list[int]
    """Corrections with the reason code per week."""
    decisions: list[int]
    """Non-shadow decisions per week."""
    rates: list[float | None]
    """counts / decisions per week."""
    decision: TrendDecision
    """Stable-or-increasing test over the last weeks."""
    dropped_partial_week: date | None = None
    """An incomplete last week that was left out, if any."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "reason_code": self.reason_code,
            "weeks": [w.isoformat() for w in self.weeks],
            "counts": self.counts,
            "decisions": self.decisions,
            "rates": self.rates,
            "decision": self.decision.to_dict(),
            "dropped_partial_week": (
                self.dropped_partial_week.isoformat() if self.dropped_partial_week else None
            ),
        }


def weekly_series(
    overrides: Iterable[Override],
    decisions: Iterable[Decision] = (),
    *,
    reason_code: str,
    as_of: datetime | None = None,
) -> tuple[list[date], list[int], list[int], date | None]:
    """(weeks, counts, decisions, dropped_partial_week) for one reason code, complete weeks only.

    The range runs from the first to the last record of *any* reason (so weeks before the first
    override of this code count as zeros).
    """
    all_overrides = [o for o in overrides if o.is_correction]
    live = [d for d in decisions if not d.shadow]
    stamps = [o.created_at for o in all_overrides] + [d.created_at for d in live]
    if not stamps:
        return [], [], [], None
    latest = max(stamps)
    end = as_of if as_of is not None else latest
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    weeks = _weeks_between(week_start(min(stamps)), week_start(max(latest, end)))
    dropped: date | None = None
    if weeks:
        last = weeks[-1]
        last_day = last + timedelta(days=6)
        week_end = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=7)
        reaches_end = (as_of is not None and end >= week_end) or (
            latest.astimezone(UTC).date() >= last_day
        )
        if not reaches_end:
            dropped = last
            weeks = weeks[:-1]
    wanted = set(weeks)
    per_week = Counter(
        week_start(o.created_at)
        for o in all_overrides
        if str(o.reason_code.value) == reason_code and week_start(o.created_at) in wanted
    )
    dec_week = Counter(week_start(d.created_at) for d in live)
    return (
        weeks,
        [per_week.get(w, 0) for w in weeks],
        [dec_week.get(w, 0) for w in weeks],
        dropped,
    )


def override_trend(
    overrides: Iterable[Override],
    decisions: Iterable[Decision],
    workflow: Workflow,
    *,
    reason_code: str | None = None,
    window: int | None = None,
    as_of: datetime | None = None,
) -> OverrideTrend:
    """The gate's condition (1) over records: is ``reason_code`` (default ``gate.reason_code``)
    stable or increasing over the last ``window`` (default ``gate.trend_weeks``) complete weeks?
    """
    gate = workflow.gate
    code = reason_code or gate.reason_code
    weeks, counts, decs, dropped = weekly_series(
        overrides, decisions, reason_code=code, as_of=as_of
    )
    decision = stable_or_increasing(
        counts,
        min_weeks=gate.trend_weeks,
        alpha=gate.trend_alpha,
        min_mean=gate.min_weekly_overrides,
        window=window,
        require_rise=gate.require_rise,
    )
    rates: list[float | None] = [(c / d) if d else None for c, d in zip(counts, decs, strict=True)]
    return OverrideTrend(code, weeks, counts, decs, rates, decision, dropped)


def override_trend_from_store(
    store: Store,
    workflow: Workflow,
    *,
    reason_code: str | None = None,
    window: int | None = None,
    as_of: datetime | None = None,
) -> OverrideTrend:
    """:func:`override_trend` over every override and non-shadow decision in ``store``."""
    return override_trend(
        store.overrides(until=as_of),
        store.decisions(until=as_of),
        workflow,
        reason_code=reason_code,
        window=window,
        as_of=as_of,
    )


# -- recurring missed-signal patterns ------------------------------------------------------------


@dataclass(frozen=True)
class MissedSignalPattern:
    """An n-gram over-represented among missed-signal overrides."""

    ngram: str
    z: float
    """z-score of the log-odds ratio with an informative Dirichlet prior (> 1.96 ~ p < .05)."""
    log_odds: float
    """Log-odds ratio, overrides vs reference (nats)."""
    overrides_with: int
    """Override texts containing the n-gram."""
    reference_with: int
    """Correctly handled texts containing the n-gram."""
    n_overrides: int
    n_reference: int
    label_pairs: list[tuple[str, str, int]] = field(default_factory=list)
    """(model_label, final_label, count) among the overrides containing it, most common first."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def log_odds_dirichlet(
    counts_a: Counter[str], counts_b: Counter[str], *, prior_strength: float | None = None
) -> dict[str, tuple[float, float]]:
    """Term -> (log-odds ratio, z) of group A against group B, informative Dirichlet prior.

    Monroe, Colaresi & Quinn (2008): with pooled counts as the prior,
    ``alpha_w = a0 * pooled_w / pooled_total`` (``a0 = prior_strength``, default the pooled
    total), ``delta_w = log((y_aw + alpha_w) / (n_a + a0 - y_aw - alpha_w)) - (same for B)``
    and ``z_w = delta_w / sqrt(1 / (y_aw + alpha_w) + 1 / (y_bw + alpha_w))``. Only terms seen
    in A are scored; empty groups give ``{}``.
    """
    n_a, n_b = sum(counts_a.values()), sum(counts_b.values())
    if n_a == 0 or n_b == 0:
        return {}
    total = n_a + n_b
    a0 = float(prior_strength) if prior_strength is not None else float(total)
    out: dict[str, tuple[float, float]] = {}
    for term, ya in counts_a.items():
        yb = counts_b.get(term, 0)
        alpha = a0 * (ya + yb) / total
        delta = math.log((ya + alpha) / (n_a + a0 - ya - alpha)) - math.log(
            (yb + alpha) / (n_b + a0 - yb - alpha)
        )
        out[term] = (delta, delta / math.sqrt(1.0 / (ya + alpha) + 1.0 / (yb + alpha)))
    return out


def missed_signal_patterns(
    overrides: Sequence[tuple[str, str | None, str]],
    reference_texts: Sequence[str],
    *,
    n_range: tuple[int, int] = (1, 3),
    prior_strength: float | None = None,
    min_count: int = 3,
    z_min: float = 1.96,
    top: int = 20,
) -> list[MissedSignalPattern]:
    """N-grams over-represented in override texts against correctly handled texts.

    ``overrides`` are (text, model_label, final_label) triples; ``reference_texts`` are texts
    the model handled correctly. Each text counts an n-gram at most once. The statistic is the
    log-odds ratio with an informative Dirichlet prior (Monroe, Colaresi & Quinn 2008):
    ``alpha_w = a0 * (pooled count of w) / (pooled total)``, ``a0 = prior_strength`` (default:
    the pooled total, a prior as strong as the data), and ``z = delta / sqrt(1/(y_o+alpha_w) +
    1/(y_r+alpha_w))``. Returned: n-grams in at least ``min_count`` override texts with
    ``z >= z_min``, the ``top`` largest first.
    """
    grams_o = [ngrams(t, n_range) for t, _, _ in overrides]
    grams_r = [ngrams(t, n_range) for t in reference_texts]
    y_o: Counter[str] = Counter(g for gs in grams_o for g in gs)
    y_r: Counter[str] = Counter(g for gs in grams_r for g in gs)
    scores = log_odds_dirichlet(y_o, y_r, prior_strength=prior_strength)
    found: list[MissedSignalPattern] = []
    for gram, (delta, z) in scores.items():
        yo, yr = y_o[gram], y_r.get(gram, 0)
        if yo < min_count or z < z_min:
            continue
        pairs: Counter[tuple[str, str]] = Counter(
            (str(model), final)
            for (_, model, final), gs in zip(overrides, grams_o, strict=True)
            if gram in gs
        )
        found.append(
            MissedSignalPattern(
                ngram=gram,
                z=float(z),
                log_odds=float(delta),
                overrides_with=yo,
                reference_with=yr,
                n_overrides=len(overrides),
                n_reference=len(reference_texts),
                label_pairs=[(m, f, c) for (m, f), c in pairs.most_common()],
            )
        )
    found.sort(key=lambda p: (-p.z, p.ngram))
    return found[:top]


def _correct_ticket_ids(decisions: Iterable[Decision], overrides: Iterable[Override]) -> list[str]:
    corrected = {o.ticket_id for o in overrides if o.is_correction}
    seen: dict[str, None] = {}
    for d in decisions:
        if not d.shadow and d.ticket_id not in corrected:
            seen.setdefault(d.ticket_id, None)
    return list(seen)


def patterns_from_store(
    store: Store,
    workflow: Workflow,
    *,
    reason_code: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    **kwargs: Any,
) -> list[MissedSignalPattern]:
    """:func:`missed_signal_patterns` for ``reason_code`` (default ``gate.reason_code``)
    overrides against correctly handled tickets (a non-shadow decision, no correction) of the
    same period. ``kwargs`` go to :func:`missed_signal_patterns`."""
    code = reason_code or workflow.gate.reason_code
    all_overrides = store.overrides(since=since, until=until)
    picked = [o for o in all_overrides if o.is_correction and str(o.reason_code.value) == code]
    decisions = store.decisions(since=since, until=until)
    ref_ids = _correct_ticket_ids(decisions, all_overrides)
    ticket_ids = sorted({o.ticket_id for o in picked} | set(ref_ids))
    tickets = {t.id: t for t in store.tickets(ids=ticket_ids)} if ticket_ids else {}
    triples = [
        (tickets[o.ticket_id].text, o.model_label, o.final_label)
        for o in picked
        if o.ticket_id in tickets
    ]
    reference = [tickets[i].text for i in ref_ids if i in tickets]
    return missed_signal_patterns(triples, reference, **kwargs)
