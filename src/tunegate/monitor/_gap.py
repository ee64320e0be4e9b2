"""The next gap: which override patterns remain after a fine-tune, so the team knows what to fix.

Over the decisions of one model version (by default the champion since its promotion), the
remaining corrections are counted by reason code, by final class and by slice; the most common
``model_label -> final_label`` confusions are listed; and the missed-signal patterns of the
remaining R2 ("model missed a signal") tickets are found the way diagnosis finds them
(:func:`tunegate.diagnose.missed_signal_patterns`: word n-grams over-represented against the
correctly handled tickets of the same window). When attribution findings are stored (by
``tunegate.diagnose.attribute_overrides``, as :class:`~tunegate.documents.Finding` documents),
the remaining R2 tickets that contain their under-weighted terms are counted per term.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tunegate.config import SliceSpec, Workflow
from tunegate.diagnose import MissedSignalPattern, missed_signal_patterns
from tunegate.documents import Finding
from tunegate.monitor._figures import match_overrides
from tunegate.records import Decision, Override, ReasonCode, Ticket
from tunegate.text import words

if TYPE_CHECKING:
    from tunegate.store import Store

__all__ = ["Gap", "aggregate_attribution", "next_gap", "next_gap_from_store"]


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
    r2_ngrams: list[MissedSignalPattern]
    """Missed-signal patterns of the remaining R2 tickets against the correctly handled ones."""
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
            "r2_ngrams": [p.to_dict() for p in self.r2_ngrams],
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
    z_min: float = 0.0,
    attribution: Mapping[str, float] | None = None,
) -> Gap:
    """The remaining override patterns among ``decisions`` (optionally of one version).

    ``r2_ngrams`` are :func:`tunegate.diagnose.missed_signal_patterns` of the remaining R2
    tickets against the correctly handled ones, in at least ``min_count`` R2 tickets with
    ``z >= z_min`` (default 0: any over-representation, since a month of one version's
    tickets is usually too few for the diagnosis default of 1.96).
    """
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
    corrected: set[str] = set()
    for d in ds:
        ov = matched.get(d.id)
        if ov is None or ov.final_label == d.label:
            continue
        corrected.add(d.ticket_id)
        reasons[str(ov.reason_code)] += 1
        classes[ov.final_label] += 1
        pairs[(d.label, ov.final_label)] += 1
        t = tickets.get(d.ticket_id)
        if t is not None:
            slices.update(workflow.slice_tags(t.text, t.metadata))
        if ov.reason_code == ReasonCode.R2:
            r2_ids.add(d.ticket_id)
    texts = {d.ticket_id: tickets[d.ticket_id].text for d in ds if d.ticket_id in tickets}
    r2_final = {
        d.ticket_id: (d.label, matched[d.id].final_label) for d in ds if d.ticket_id in r2_ids
    }
    r2 = [(texts[i], *labels) for i, labels in r2_final.items() if i in texts]
    reference = [text for i, text in texts.items() if i not in corrected]
    patterns = (
        missed_signal_patterns(r2, reference, min_count=min_count, z_min=z_min, top=top)
        if r2
        else []
    )
    return Gap(
        model_version=model_version,
        n_decisions=len(ds),
        n_overridden=sum(reasons.values()),
        by_reason=dict(reasons.most_common()),
        by_class=dict(classes.most_common()),
        by_slice=dict(slices.most_common()),
        top_pairs=[(a, b, n) for (a, b), n in pairs.most_common(top)],
        r2_ngrams=patterns,
        attribution=dict(sorted((attribution or {}).items(), key=lambda kv: -kv[1])[:top]),
    )


def aggregate_attribution(
    findings: Iterable[Finding],
    r2_overrides: Iterable[Override],
    tickets: Mapping[str, Ticket],
    slices: Mapping[str, SliceSpec] | None = None,
) -> dict[str, float]:
    """Under-weighted terms of attribution findings that remain in the R2 tickets.

    A finding (:class:`~tunegate.documents.Finding`, reason code R2) names terms for one
    class, its ``label``: words, phrases, named slices (``"[mfa_related]"``) or pairs of them
    (``"approve + locked"``, ``"[mfa_related] + got"``). Each term counts the R2 overrides
    among ``r2_overrides`` whose final label is that class and whose ticket contains every
    word of the term and belongs to every slice it names (``slices``: the workflow's; a slice
    that is not there matches nothing).
    """
    # terms are compared lower-cased; so are slice names
    slices = {name.lower(): spec for name, spec in (slices or {}).items()}
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
        present = set(words(ticket.text))
        for term in wanted:
            if _term_in(term, ticket, present, slices):
                total[term] = total.get(term, 0.0) + 1.0
    return total


def _term_in(term: str, ticket: Ticket, present: set[str], slices: Mapping[str, SliceSpec]) -> bool:
    """Whether ``ticket`` holds every part of ``term`` (words, or ``[slice]`` memberships)."""
    parts = [p.strip() for p in term.split(" + ") if p.strip()]
    if not parts:
        return False
    for part in parts:
        if part.startswith("[") and part.endswith("]"):
            spec = slices.get(part[1:-1])
            if spec is None or not spec.matches(ticket.text, ticket.metadata):
                return False
        elif not all(w in present for w in part.split()):
            return False
    return True


def next_gap_from_store(
    store: Store,
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
    attribution = aggregate_attribution(findings, r2, tickets, workflow.slices)
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
