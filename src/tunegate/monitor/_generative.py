"""Production monitoring of ``answer`` / ``tool_call`` workflows: monthly figures, weekly
escalation, and the generative rollback triggers (docs/monitoring.md, "Generative workflows").

The input is the production log (:class:`~tunegate.records.GenerativeLogEntry`, stored by
``tunegate ingest outputs``). Per calendar month (UTC, by ``asked_at``):

* **source freshness lag** - for each citation of a document version: 0 when the version was
  in force when the question was asked, else the days since it stopped being in force (its
  successor took effect, or it was withdrawn); the mean over citations and the share lagging
  (:func:`tunegate.metrics.source_freshness_lag`). A citation without a version, or of a
  document or version not in the knowledge base, cannot be judged and is counted apart;
* **citation rate** - answers (abstentions left out) that cite at least one source
  (:func:`tunegate.metrics.citation_score`);
* **unsupported-assertion rate** - claims of the answers that no cited passage supports,
  judged by :func:`tunegate.generative.assess_answer` against the text of the knowledge-base
  versions cited (a version superseded at ``asked_at`` is a superseded passage, so a claim
  only it supports is stale, not unsupported) (:func:`tunegate.metrics.unsupported_claim_rate`);
* **escalation rate** - outputs a human took over (:func:`tunegate.metrics.escalation_rate`);
* **pass rate on newly added cases** - the examples of the frozen generative suites created
  that month, as scored in the champion's latest :class:`~tunegate.records.GenerativeRun` of
  each (:func:`tunegate.metrics.answer_correctness_score` over ``ExampleScore.correct``);
* **knowledge-base change rate** of the month (:meth:`tunegate.kb.KnowledgeBase.change_rate`).

Rollback triggers (the :class:`~tunegate.monitor.TriggerResult` of the classify monitor):

* ``escalation_rising`` per ISO week: the same rule as for classify workflows
  (:func:`~tunegate.monitor.escalation_rising_trigger`): each of the last k + 1 weeks holds at
  least ``rollback.min_decisions`` outputs (a minimum count, not an interval, per step),
  every step rises, and the rise from first to last is significant at
  ``rollback.significance``;
* ``unsupported_rate`` per month against the reference month: up by more than
  ``rollback.unsupported_rate_increase`` (2 points) and significant (one-sided pooled
  two-proportion test on claims);
* ``citation_rate`` per month against the reference month: down by more than
  ``rollback.citation_rate_drop`` (0) and significant (the same test on answers).

The **reference month** is the month before the champion's promotion when it has outputs,
else the first month of the log; the months after it are judged.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from tunegate import metrics
from tunegate.config import Workflow
from tunegate.errors import InputError, NotFoundError
from tunegate.monitor._figures import period_bounds, period_key
from tunegate.monitor._triggers import (
    Alert,
    TriggerResult,
    WindowTriggers,
    _not_judged,
    _rate_trigger,
    escalation_rising_trigger,
)
from tunegate.records import GenerativeLogEntry, GenerativeRun, GenerativeSuite

if TYPE_CHECKING:
    from tunegate.generative import SupportChecker
    from tunegate.kb import KnowledgeBase
    from tunegate.store import Store
    from tunegate.store._kb import KbVersion

__all__ = [
    "GenerativeMonitorResult",
    "MonthFigures",
    "WeekEscalation",
    "generative_monthly_figures",
    "generative_triggers",
    "run_generative_monitor",
    "weekly_escalation",
]

_DAY_S = 86400.0
_ONE_DAY = timedelta(days=1)
NO_RUNS = "no runs"
"""``MonthFigures.new_cases_note`` when the store holds no generative run at all."""


@dataclass(frozen=True)
class MonthFigures:
    """One calendar month of a generative workflow's production log. Rates are shares in
    [0, 1]; ``None`` means nothing to measure (or not measured: see ``notes``)."""

    month: str
    """``YYYY-MM`` (UTC)."""
    start: datetime
    end: datetime
    n_outputs: int
    """Log entries asked in the month."""
    n_answered: int
    """``answer``: outputs that did not abstain."""
    n_citing: int
    """Of those, answers citing at least one source."""
    citation_rate: float | None
    n_claims: int
    """Claims of the answers judged for support (0 when support was not checked)."""
    n_unsupported: int
    n_stale: int
    """Claims only a superseded cited version supports."""
    unsupported_rate: float | None
    n_citations: int
    """Citations judged for freshness."""
    n_citations_unjudged: int
    """Citations without a version, or of a document/version not in the knowledge base."""
    freshness_lag_days: float | None
    """Mean source freshness lag in days over the judged citations."""
    lagging_share: float | None
    """Share of judged citations whose version was already superseded when asked."""
    n_escalated: int
    escalation_rate: float | None
    new_suites: list[str]
    """Frozen generative suites created in the month (names)."""
    n_new_cases: int
    """Their examples scored in the champion's latest run of each."""
    n_new_passed: int
    new_case_pass_rate: float | None
    new_cases_note: str | None
    """Why the pass rate is missing: ``"no runs"`` (no generative run in the store), or no
    run of the champion on the month's suites."""
    kb_change_rate: float | None
    """Share of knowledge-base documents given a new version in the month."""

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["start"] = self.start.isoformat()
        out["end"] = self.end.isoformat()
        return out


@dataclass(frozen=True)
class WeekEscalation:
    """One ISO week's escalations."""

    week: str
    n_outputs: int
    n_escalated: int
    escalation_rate: float | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _months_between(first: str, last: str, period: str = "month") -> list[str]:
    keys = [first]
    while keys[-1] != last:
        keys.append(period_key(period_bounds(keys[-1])[1], period))  # type: ignore[arg-type]
    return keys


def _check_month(key: str) -> str:
    start, _ = period_bounds(key)
    if "-W" in key or period_key(start, "month") != key:
        raise InputError(f"not a month: {key!r}; give it as YYYY-MM, e.g. 2025-02")
    return key


def weekly_escalation(entries: Sequence[GenerativeLogEntry]) -> list[WeekEscalation]:
    """Escalations per ISO week (by ``asked_at``), oldest first; weeks without outputs
    between the first and the last are kept (a consecutive-weeks rule must see the gap)."""
    if not entries:
        return []
    by_week: dict[str, list[bool]] = defaultdict(list)
    for e in entries:
        by_week[period_key(e.asked_at, "week")].append(e.escalated)
    first = min(by_week, key=lambda k: period_bounds(k)[0])
    last = max(by_week, key=lambda k: period_bounds(k)[0])
    out = []
    for key in _months_between(first, last, "week"):
        flags = by_week.get(key, [])
        rate = metrics.escalation_rate(flags) if flags else None
        out.append(WeekEscalation(key, len(flags), sum(flags), rate))
    return out


class _Kb:
    """Version lookups of the knowledge base, cached per document."""

    def __init__(self, kb: KnowledgeBase) -> None:
        self.kb = kb
        self._docs: dict[str, list[KbVersion] | None] = {}

    def version(self, doc_id: str, version: str | None, at: datetime) -> KbVersion | None:
        if doc_id not in self._docs:
            try:
                self._docs[doc_id] = self.kb.versions(doc_id)
            except NotFoundError:
                self._docs[doc_id] = None
        found = self._docs[doc_id]
        if found is None:
            return None
        if version is None:
            return self.kb.current_version(doc_id, at)
        return next((v for v in found if v.version == version), None)


def _superseded_at(v: KbVersion, at: datetime) -> bool:
    until = v.effective_until
    return until is not None and until <= at


def _lag_days(v: KbVersion, at: datetime) -> float:
    until = v.effective_until
    if until is None or until > at:
        return 0.0
    return (at - until).total_seconds() / _DAY_S


def _default_kb(store: Store, workflow: Workflow) -> KnowledgeBase | None:
    if not store.kb_versions():
        return None
    from tunegate.kb import KnowledgeBase

    return KnowledgeBase(store, workflow.retrieval, model=workflow.model)


def _serving_version(store: Store, entries: Sequence[GenerativeLogEntry]) -> tuple[str | None, str]:
    champion: str | None = store.get_alias("champion")
    if champion is not None:
        return champion, "champion alias"
    if entries:
        return entries[-1].output.model_version, "latest output in the log"
    return None, "none"


def _new_cases(
    store: Store, workflow: Workflow, champion: str | None
) -> tuple[dict[str, list[GenerativeSuite]], bool, list[GenerativeRun]]:
    """Suites of the workflow's kind by creation month, whether the store holds any
    generative run at all, and the champion's runs (read by document kind
    ``generative_run``)."""
    from tunegate.documents import GenerativeRunDocument, GenerativeSuiteDocument

    suites: dict[str, list[GenerativeSuite]] = defaultdict(list)
    for _, doc in store.documents(GenerativeSuiteDocument).items():
        if doc.suite.kind == workflow.kind:
            suites[period_key(doc.suite.created_at, "month")].append(doc.suite)
    runs = [doc.run for _, doc in store.documents(GenerativeRunDocument).items()]
    mine = [r for r in runs if champion is not None and r.model_version == champion]
    return suites, bool(runs), mine


def generative_monthly_figures(
    store: Store,
    workflow: Workflow,
    *,
    kb: KnowledgeBase | None = None,
    checker: SupportChecker | None = None,
    months: Sequence[str] | None = None,
    champion: str | None = None,
    check_support: bool = True,
) -> list[MonthFigures]:
    """Figures per calendar month of the workflow's production log (module docstring).

    ``kb``: the knowledge base cited versions are looked up in (default: the store's, when
    it holds any document). ``checker``: the support checker (default: the deterministic
    :class:`~tunegate.generative.EmbeddingSupportChecker`, loaded on first use).
    ``months``: ``YYYY-MM`` keys to report (default: every month from the first output to
    the last). ``champion``: whose runs count for the new-case pass rate (default: the
    ``champion`` alias, else the version of the latest output). ``check_support=False``
    skips the unsupported-assertion rate (no encoder is loaded).
    """
    workflow.require_kind("generative monitoring", "answer", "tool_call")
    from tunegate.io import stored_generative_log

    entries = stored_generative_log(store)
    if champion is None:
        champion, _ = _serving_version(store, entries)
    if kb is None:
        kb = _default_kb(store, workflow)
    return _monthly(store, workflow, entries, kb, checker, months, champion, check_support)


def _monthly(
    store: Store,
    workflow: Workflow,
    entries: Sequence[GenerativeLogEntry],
    kb: KnowledgeBase | None,
    checker: SupportChecker | None,
    months: Sequence[str] | None,
    champion: str | None,
    check_support: bool,
) -> list[MonthFigures]:
    by_month: dict[str, list[GenerativeLogEntry]] = defaultdict(list)
    for e in entries:
        by_month[period_key(e.asked_at, "month")].append(e)
    if months is not None:
        keys = sorted({_check_month(m) for m in months}, key=lambda k: period_bounds(k)[0])
    elif by_month:
        first = min(by_month, key=lambda k: period_bounds(k)[0])
        last = max(by_month, key=lambda k: period_bounds(k)[0])
        keys = _months_between(first, last)
    else:
        keys = []
    lookup = _Kb(kb) if kb is not None else None
    suites, any_runs, runs = _new_cases(store, workflow, champion)
    answers = workflow.kind == "answer"
    state: dict[str, SupportChecker | None] = {"checker": checker}

    def get_checker() -> SupportChecker:
        if state["checker"] is None:
            from tunegate.generative import EmbeddingSupportChecker

            state["checker"] = EmbeddingSupportChecker()
        found = state["checker"]
        assert found is not None
        return found

    out: list[MonthFigures] = []
    for key in keys:
        start, end = period_bounds(key)
        month = by_month.get(key, [])
        answered = [e for e in month if answers and not e.output.abstained]
        n_citing = sum(1 for e in answered if e.output.cited)
        citation = (
            metrics.citation_score([len(e.output.cited) for e in answered]) if answered else None
        )
        lags: list[float] = []
        unjudged = 0
        claims = unsupported = stale = 0
        judge_support = check_support and lookup is not None
        for e in answered:
            passages = []
            for ref in e.output.cited:
                v = lookup.version(ref.id, ref.version, e.asked_at) if lookup else None
                if v is None or ref.version is None:
                    unjudged += 1
                else:
                    lags.append(_lag_days(v, e.asked_at))
                if v is not None:
                    passages.append((v, _superseded_at(v, e.asked_at)))
            if judge_support and e.output.answer:
                from tunegate.generative import Passage, assess_answer

                judged = assess_answer(
                    e.output.answer,
                    [Passage(v.text, superseded=old, doc_id=v.doc_id) for v, old in passages],
                    get_checker(),
                )
                claims += judged.n_claims
                unsupported += judged.n_unsupported
                stale += judged.n_stale
        unsupported_rate = (
            metrics.unsupported_claim_rate([claims], [unsupported]) if claims else None
        )
        lag = metrics.source_freshness_lag(lags) if lags else None
        escalated = [e.escalated for e in month]
        new_suites = suites.get(key, [])
        correct: list[bool] = []
        note: str | None = None
        if not new_suites:
            note = "no suite created this month"
        elif not any_runs:
            note = NO_RUNS
        else:
            latest: dict[str, GenerativeRun] = {}
            wanted = {s.hash for s in new_suites}
            for r in sorted(runs, key=lambda r: r.created_at):
                if r.suite_hash in wanted:
                    latest[r.suite_hash] = r
            correct = [s.correct for r in latest.values() for s in r.scores]
            if not correct:
                note = f"no run of {champion} on this month's suites"
        change: float | None = None
        if kb is not None:
            try:
                change = kb.change_rate(start=start, months=1).rate
            except InputError:
                change = None
        out.append(
            MonthFigures(
                month=key,
                start=start,
                end=end,
                n_outputs=len(month),
                n_answered=len(answered),
                n_citing=n_citing,
                citation_rate=citation,
                n_claims=claims,
                n_unsupported=unsupported,
                n_stale=stale,
                unsupported_rate=unsupported_rate,
                n_citations=len(lags),
                n_citations_unjudged=unjudged,
                freshness_lag_days=None if lag is None else lag.mean_days,
                lagging_share=None if lag is None else lag.lagging_share,
                n_escalated=sum(escalated),
                escalation_rate=metrics.escalation_rate(escalated) if escalated else None,
                new_suites=sorted(s.name for s in new_suites),
                n_new_cases=len(correct),
                n_new_passed=sum(correct),
                new_case_pass_rate=metrics.answer_correctness_score(correct) if correct else None,
                new_cases_note=note,
                kb_change_rate=change,
            )
        )
    return out


def _reference_month(months: Sequence[MonthFigures], promoted_at: datetime | None) -> str | None:
    with_outputs = [m for m in months if m.n_outputs]
    if not with_outputs:
        return None
    if promoted_at is not None:
        month_start, _ = period_bounds(period_key(promoted_at, "month"))
        before = period_key(month_start - _ONE_DAY, "month")
        if any(m.month == before for m in with_outputs):
            return before
    return with_outputs[0].month


def generative_triggers(
    months: Sequence[MonthFigures],
    weeks: Sequence[WeekEscalation],
    workflow: Workflow,
    *,
    reference: str | None,
    weeks_since: datetime | None = None,
) -> list[WindowTriggers]:
    """Judge the generative rollback triggers (module docstring): the monthly ones for
    every month after ``reference``, ``escalation_rising`` for every week (those starting
    on or after ``weeks_since`` when given: the promotion). Pure."""
    policy = workflow.rollback
    alpha = policy.significance
    out: list[WindowTriggers] = []
    ref = next((m for m in months if m.month == reference), None)
    answers = workflow.kind == "answer"
    if ref is not None and answers:
        later = [m for m in months if period_bounds(m.month)[0] > ref.start]
        for m in later:
            results: list[TriggerResult] = []
            small = [
                f"the {what} month has fewer than {policy.min_decisions} answers"
                for what, f in (("reference", ref), ("judged", m))
                if f.n_answered < policy.min_decisions
            ]
            if small:
                why = " and ".join(small)
                results = [
                    _not_judged("unsupported_rate", policy.unsupported_rate_increase, m.month, why),
                    _not_judged("citation_rate", policy.citation_rate_drop, m.month, why),
                ]
            else:
                results.append(
                    _rate_trigger(
                        "unsupported_rate",
                        x0=ref.n_unsupported,
                        n0=ref.n_claims,
                        x1=m.n_unsupported,
                        n1=m.n_claims,
                        threshold=policy.unsupported_rate_increase,
                        alpha=alpha,
                        window=m.month,
                        what=f"unsupported-assertion rate (claims, vs {ref.month})",
                    )
                )
                results.append(
                    _rate_trigger(
                        "citation_rate",
                        x0=ref.n_citing,
                        n0=ref.n_answered,
                        x1=m.n_citing,
                        n1=m.n_answered,
                        threshold=policy.citation_rate_drop,
                        alpha=alpha,
                        window=m.month,
                        what=f"citation rate (answers, vs {ref.month})",
                        higher_is_worse=False,
                    )
                )
            out.append(WindowTriggers(m.month, results))
    series = [w for w in weeks if weeks_since is None or period_bounds(w.week)[1] > weeks_since]
    since = "since the promotion" if weeks_since is not None else "in the log"
    for i, w in enumerate(series):
        counts = [(x.n_escalated, x.n_outputs) for x in series[: i + 1]]
        out.append(
            WindowTriggers(
                w.week,
                [escalation_rising_trigger(counts, policy, w.week, what="outputs", since=since)],
            )
        )
    return out


@dataclass
class GenerativeMonitorResult:
    """Everything ``tunegate monitor`` found on an ``answer`` / ``tool_call`` workflow."""

    workflow: str
    kind: str
    champion: str | None
    champion_source: str
    """``champion alias`` or ``latest output in the log``."""
    promoted_at: datetime | None
    reference_month: str | None
    months: list[MonthFigures]
    weeks: list[WeekEscalation]
    windows: list[WindowTriggers]
    notes: list[str] = field(default_factory=list)
    alert: Alert | None = None

    @property
    def fired(self) -> list[TriggerResult]:
        return [r for w in self.windows for r in w.fired]

    def to_dict(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "kind": self.kind,
            "champion": self.champion,
            "champion_source": self.champion_source,
            "promoted_at": self.promoted_at.isoformat() if self.promoted_at else None,
            "reference_month": self.reference_month,
            "months": [m.to_dict() for m in self.months],
            "weeks": [w.to_dict() for w in self.weeks],
            "triggers": {w.window: [r.to_dict() for r in w.results] for w in self.windows},
            "fired": [r.to_dict() for r in self.fired],
            "notes": self.notes,
            "alert": self.alert.to_dict() if self.alert else None,
        }


def run_generative_monitor(
    store: Store,
    workflow: Workflow,
    *,
    kb: KnowledgeBase | None = None,
    checker: SupportChecker | None = None,
    months: Sequence[str] | None = None,
    reference: str | None = None,
    check_support: bool = True,
) -> GenerativeMonitorResult:
    """Monthly figures, weekly escalation and the generative rollback triggers: what
    ``tunegate monitor`` does on an ``answer`` / ``tool_call`` workflow.

    ``reference``: the month the monthly triggers compare against (default: the month
    before the champion's promotion when it has outputs, else the first month of the log).
    """
    from tunegate.io import stored_generative_log
    from tunegate.monitor._run import promotion_of

    workflow.require_kind("generative monitoring", "answer", "tool_call")
    entries = stored_generative_log(store)
    champion, source = _serving_version(store, entries)
    _, promoted_at = promotion_of(store) if source == "champion alias" else (None, None)
    notes: list[str] = []
    if not entries:
        notes.append(
            "no production outputs in the store: ingest them with `tunegate ingest outputs "
            "FILE.jsonl`"
        )
    if kb is None:
        kb = _default_kb(store, workflow)
    if workflow.kind == "answer":
        if kb is None:
            notes.append(
                "no knowledge base in the store: freshness lag, unsupported-assertion rate "
                "and change rate not measured (`tunegate kb ingest`)"
            )
        elif not check_support:
            notes.append("support not checked: unsupported-assertion rate not measured")
    figures = _monthly(store, workflow, entries, kb, checker, months, champion, check_support)
    if any(m.new_cases_note == NO_RUNS for m in figures):
        notes.append(
            "no runs: no generative_run in the store, so the pass rate on newly added suite "
            "cases is not measured (`tunegate eval` the champion on the new suites)"
        )
    weeks = weekly_escalation(entries)
    if reference is not None:
        _check_month(reference)
        if not any(m.month == reference for m in figures):
            raise InputError(
                f"reference month {reference!r} is not among the months reported "
                f"({[m.month for m in figures]}); pick one of them or widen --month"
            )
    else:
        reference = _reference_month(figures, promoted_at)
    windows = generative_triggers(
        figures, weeks, workflow, reference=reference, weeks_since=promoted_at
    )
    if workflow.kind == "answer" and reference is not None:
        notes.append(f"monthly triggers judged against the reference month {reference}")
    return GenerativeMonitorResult(
        workflow=workflow.name,
        kind=workflow.kind,
        champion=champion,
        champion_source=source,
        promoted_at=promoted_at,
        reference_month=reference,
        months=figures,
        weeks=weeks,
        windows=windows,
        notes=notes,
    )
