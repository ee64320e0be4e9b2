"""The next gap: which override patterns remain after a fine-tune, so the team knows what to fix.

Over the decisions of one model version (by default the champion since its promotion), the
remaining corrections are counted by reason code, by final class and by slice; the most common
``model_label -> final_label`` confusions are listed; and the word n-grams over-represented in
the remaining R2 ("model missed a signal") tickets, compared with the other tickets of the same
window, are ranked by a smoothed log-odds ratio. When attribution findings are stored (by
``tunegate.diagnose.attribute_overrides``, as :class:`~tunegate.documents.Finding` documents),
the remaining R2 tickets that contain their under-weighted terms are counted per term.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tunegate.config import Workflow
from tunegate.documents import Finding
from tunegate.monitor._figures import match_overrides
from tunegate.records import Decision, Override, ReasonCode, Ticket

__all__ = ["Gap", "NgramLift", "aggregate_attribution", "next_gap", "next_gap_from_store"]

_WORD = re.compile(r"[a-z0-9]+(?:['’-][a-z0-9]+)*")
_STOP = frozenset(
    """a an the and or but if of to in on at by for with from as is are was were be been it its
    this that i me my we our you your he she they them not no do does did have has had can could
    will would should so than then there what which who when where how please hi hello thanks
    thank regards am pm""".split()  # noqa: SIM905
)


def _ngrams(text: str, n_max: int = 3) -> set[str]:
    words = _WORD.findall(text.lower())
    out: set[str] = set()
    for n in range(1, n_max + 1):
        for i in range(len(words) - n + 1):
            gram = words[i : i + n]
            if gram[0] in _STOP or gram[-1] in _STOP:
                continue
            out.add(" ".join(gram))
    return out


@dataclass(frozen=True)
class NgramLift:
    """An n-gram over-represented among the remaining R2 overrides."""

    ngram: str
    in_r2: int
    """R2-overridden tickets containing it."""
    in_rest: int
    """Other tickets of the window containing it."""
    log_odds: float
    """Smoothed log-odds ratio (R2 tickets vs the rest; +0.5 on every cell)."""


@dataclass(frozen=True)
class Gap:
    """What is still being corrected, and where."""

    model_version: str | None
    n_decisions: int
    n_overridden: int
    by_reason: dict[str, int]
    by_class: dict[str, int]
    """Final (true) class -> remaining corrections."""
    by_slice: dict[str, int]
    top_pairs: list[tuple[str, str, int]]
    """``(model_label, final_label, count)``, most common first."""
    r2_ngrams: list[NgramLift]
    attribution: dict[str, float] = field(default_factory=dict)
    """Term -> remaining R2 tickets that contain it, for the terms stored attribution findings
    name as under-weighted for the ticket's final class (empty when there are none)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_version": self.model_version,
            "n_decisions": self.n_decisions,
            "n_overridden": self.n_overridden,
            "by_reason": self.by_reason,
            "by_class": self.by_class,
            "by_slice": self.by_slice,
            "top_pairs": [
                {"model_label": a, "final_label": b, "count": n} for a, b, n in self.top_pairs
            ],
            "r2_ngrams": [n.__dict__ for n in self.r2_ngrams],
            "attribution": self.attribution,
        }


def next_gap(
    decisions: Sequence[Decision],
    overrides: Iterable[Override],
    workflow: Workflow,
    *,
    tickets: Mapping[str, Ticket],
    model_version: str | None = None,
    top: int = 10,
    min_count: int = 3,
    attribution: Mapping[str, float] | None = None,
) -> Gap:
    """The remaining override patterns among ``decisions`` (optionally of one version)."""
    ds = [
        d
        for d in decisions
        if not d.shadow and (model_version is None or d.model_version == model_version)
    ]
    matched = match_overrides(ds, overrides)
    reasons: Counter[str] = Counter()
    classes: Counter[str] = Counter()
    slices: Counter[str] = Counter()
    pairs: Counter[tuple[str, str]] = Counter()
    r2_ids: set[str] = set()
    for d in ds:
        ov = matched.get(d.id)
        if ov is None or ov.final_label == d.label:
            continue
        reasons[str(ov.reason_code)] += 1
        classes[ov.final_label] += 1
        pairs[(d.label, ov.final_label)] += 1
        t = tickets.get(d.ticket_id)
        if t is not None:
            slices.update(workflow.slice_tags(t.text, t.metadata))
        if ov.reason_code == ReasonCode.R2:
            r2_ids.add(d.ticket_id)
    r2_docs = [_ngrams(tickets[i].text) for i in r2_ids if i in tickets]
    rest_docs = [
        _ngrams(tickets[d.ticket_id].text)
        for d in ds
        if d.ticket_id not in r2_ids and d.ticket_id in tickets
    ]
    lifts: list[NgramLift] = []
    if r2_docs:
        a_counts = Counter(g for doc in r2_docs for g in doc)
        b_counts = Counter(g for doc in rest_docs for g in doc)
        big_a, big_b = len(r2_docs), len(rest_docs)
        for gram, a in a_counts.items():
            if a < min_count:
                continue
            b = b_counts.get(gram, 0)
            lo = math.log((a + 0.5) / (big_a - a + 0.5)) - math.log((b + 0.5) / (big_b - b + 0.5))
            if lo > 0:
                lifts.append(NgramLift(gram, a, b, lo))
        lifts.sort(key=lambda x: (-x.log_odds, -x.in_r2, x.ngram))
        lifts = _drop_nested(lifts)[:top]
    return Gap(
        model_version=model_version,
        n_decisions=len(ds),
        n_overridden=sum(reasons.values()),
        by_reason=dict(reasons.most_common()),
        by_class=dict(classes.most_common()),
        by_slice=dict(slices.most_common()),
        top_pairs=[(a, b, n) for (a, b), n in pairs.most_common(top)],
        r2_ngrams=lifts,
        attribution=dict(sorted((attribution or {}).items(), key=lambda kv: -kv[1])[:top]),
    )


def _drop_nested(lifts: list[NgramLift]) -> list[NgramLift]:
    """Drop an n-gram contained in a better-ranked one with the same R2 count."""
    kept: list[NgramLift] = []
    for lift in lifts:
        if any(lift.in_r2 == k.in_r2 and f" {lift.ngram} " in f" {k.ngram} " for k in kept):
            continue
        kept.append(lift)
    return kept


def aggregate_attribution(
    findings: Iterable[Finding], r2_overrides: Iterable[Override], tickets: Mapping[str, Ticket]
) -> dict[str, float]:
    """Under-weighted terms of attribution findings that remain in the R2 tickets.

    A finding (:class:`~tunegate.documents.Finding`, reason code R2) names words the model
    under-weights for one class, its ``label``. Each of its terms counts the R2 overrides among
    ``r2_overrides`` whose final label is that class and whose ticket text contains the term.
    """
    terms: dict[str, set[str]] = {}
    for f in findings:
        if f.reason_code == ReasonCode.R2.value:
            terms.setdefault(f.label, set()).update(t.term.lower() for t in f.tokens)
    total: dict[str, float] = {}
    for o in r2_overrides:
        ticket = tickets.get(o.ticket_id)
        wanted = terms.get(o.final_label)
        if ticket is None or not wanted:
            continue
        for term in wanted & set(_WORD.findall(ticket.text.lower())):
            total[term] = total.get(term, 0.0) + 1.0
    return total


def next_gap_from_store(
    store: Any,
    workflow: Workflow,
    *,
    model_version: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    top: int = 10,
) -> Gap:
    """:func:`next_gap` over the store's non-shadow decisions (default: the current champion)."""
    version = model_version or store.get_alias("champion")
    decisions = store.decisions(model_version=version, since=since, until=until, shadow=False)
    ids = sorted({d.ticket_id for d in decisions})
    tickets = {t.id: t for t in store.tickets(ids=ids)} if ids else {}
    overrides = [o for o in store.overrides(since=since) if o.ticket_id in tickets]
    gap = next_gap(decisions, overrides, workflow, tickets=tickets, model_version=version, top=top)
    r2 = [o for o in overrides if o.reason_code == ReasonCode.R2]
    findings = (f for _, f in store.documents(Finding).items())
    attribution = aggregate_attribution(findings, r2, tickets)
    if attribution:
        gap = next_gap(
            decisions,
            overrides,
            workflow,
            tickets=tickets,
            model_version=version,
            top=top,
            attribution=attribution,
        )
    return gap
