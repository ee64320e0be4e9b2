"""Shadow mode: a candidate scores the live stream beside the champion, routing nothing.

:func:`shadow_score` stores the candidate's Decisions with ``shadow=True``; routing reads only
non-shadow decisions, so nothing a shadow model says reaches a queue. :func:`shadow_figures`
then gives the candidate production figures before it is promoted: agreement with the
champion on the same tickets, and accuracy against the analysts' overrides (the truth of a
ticket is its override's ``final_label``, else the champion's accepted label).

**Truth of a shadowed ticket**, in order: the ``final_label`` of its override; else the label
of a reviewed example that points at the ticket (an analyst's confirmation of the champion's
label, or a review of a disagreement, see :func:`disagreements_to_review`); else the
champion's accepted label. In the last case a disagreement counts against the candidate even
though no analyst looked at it: some of those are the champion's own errors that nobody caught,
so without reviews the candidate's figures are an *upper* bound on its errors (a baseline that
is too high, which makes rollback triggers less sensitive). Those tickets are counted in
``ShadowFigures.unverified_disagreements``; have analysts label them before the promotion
(usually a few percent of the shadowed tickets) and the bound becomes an estimate.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from tunegate.config import Workflow
from tunegate.errors import InputError
from tunegate.monitor._figures import Figures, compute_figures
from tunegate.records import Decision, Example, Override, ReasonCode, ReviewStatus, Ticket
from tunegate.routing import route_many

if TYPE_CHECKING:
    from tunegate.execute import Executor
    from tunegate.store import Store

__all__ = [
    "ShadowFigures",
    "disagreements_to_review",
    "reviewed_for",
    "shadow_figures",
    "shadow_figures_from_records",
    "shadow_score",
]


class _Scorer(Protocol):
    @property
    def labels(self) -> list[str]: ...

    @property
    def version(self) -> str: ...

    def predict_proba(
        self, texts: list[str], metadata: list[dict[str, Any]] | None = None
    ) -> np.ndarray: ...


def shadow_score(
    candidate: _Scorer,
    tickets: Sequence[Ticket],
    store: Store,
    *,
    workflow: Workflow,
    batch_size: int = 64,
    version: str | None = None,
    executor: Executor | None = None,
) -> list[Decision]:
    """Score ``tickets`` with ``candidate`` and store the Decisions with ``shadow=True``.

    Returns the shadow decisions. Nothing is routed: no non-shadow decision, override or
    alias is written. ``latency_ms`` is the batch wall time divided by the batch size.
    Idempotent: a ticket already shadow-scored by this version is skipped. ``executor``
    (default: this process) scores the batches, e.g. on Ray workers (:mod:`tunegate.execute`);
    the batches and so the probabilities are the same, ``latency_ms`` is measured in the worker.
    """
    name = version or candidate.version
    unknown = sorted(set(candidate.labels) - set(workflow.labels))
    if unknown:
        raise InputError(
            f"candidate {name!r} predicts labels not in the workflow: {unknown}; "
            f"score with a model built for this tunegate.yaml"
        )
    done = {
        d.ticket_id
        for d in store.decisions(
            model_version=name, shadow=True, ticket_ids=[t.id for t in tickets]
        )
    }
    todo = [t for t in tickets if t.id not in done]
    out: list[Decision] = []
    scored = None
    if executor is not None and executor.name != "local":
        from tunegate.execute import predict_proba

        scored = predict_proba(
            executor,
            candidate,
            [t.text for t in todo],
            [dict(t.metadata) for t in todo],
            batch_size=batch_size,
        )
    for n, i in enumerate(range(0, len(todo), batch_size)):
        batch = todo[i : i + batch_size]
        if scored is not None:
            proba = scored.proba[i : i + batch_size]
            per_ms = scored.batch_ms[n] / max(len(batch), 1)
        else:
            start = time.perf_counter()
            proba = np.asarray(
                candidate.predict_proba([t.text for t in batch], [dict(t.metadata) for t in batch])
            )
            per_ms = (time.perf_counter() - start) * 1000.0 / max(len(batch), 1)
        if proba.shape != (len(batch), len(candidate.labels)):
            raise InputError(
                f"candidate {name!r} returned probabilities of shape {proba.shape}; "
                f"expected {(len(batch), len(candidate.labels))}"
            )
        for t, row, (label, h, r) in zip(
            batch, proba, route_many(proba, candidate.labels, workflow.routing), strict=True
        ):
            out.append(
                Decision(
                    ticket_id=t.id,
                    model_version=name,
                    probabilities={
                        lab: float(p) for lab, p in zip(candidate.labels, row, strict=True)
                    },
                    label=label,
                    h_norm=h,
                    route=r,
                    latency_ms=per_ms,
                    created_at=t.created_at,
                    shadow=True,
                )
            )
    if out:
        store.add_decisions(out)
    return out


@dataclass(frozen=True)
class ShadowFigures:
    """A shadow candidate's figures beside the champion on the same tickets."""

    candidate: str
    n_tickets: int
    """Tickets scored by both the candidate (shadow) and the champion (live)."""
    agreement: float | None
    """Share of those tickets where both gave the same label."""
    route_agreement: float | None
    candidate_accuracy: float | None
    """Accuracy against the truth (override, else reviewed example, else the champion's
    accepted label)."""
    champion_accuracy: float | None
    fixes: int
    """Tickets the champion got wrong that the candidate got right."""
    breaks: int
    """Tickets the champion got right that the candidate got wrong."""
    candidate_figures: Figures | None = field(default=None, repr=False)
    """The candidate's production figures: a decision is overridden when it differs from the
    truth. The monitor's pre-promotion baseline."""
    champion_figures: Figures | None = field(default=None, repr=False)
    unverified_disagreements: int = 0
    """Tickets where the candidate disagreed with an un-overridden champion label that no
    analyst reviewed; each counts as a candidate error (see the module docstring)."""

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if not k.endswith("_figures")}
        for k in ("candidate_figures", "champion_figures"):
            f = getattr(self, k)
            out[k] = f.to_dict(with_breakdown=False) if f is not None else None
        return out


def _reviewed_labels(reviewed: Sequence[Example]) -> dict[str, str]:
    """Ticket id -> label of the latest reviewed example that points at the ticket."""
    out: dict[str, str] = {}
    for e in sorted(reviewed, key=lambda e: e.created_at):
        if e.ticket_id is not None and e.review_status == ReviewStatus.REVIEWED:
            out[e.ticket_id] = e.label
    return out


def shadow_figures_from_records(
    candidate: str,
    shadow: Sequence[Decision],
    live: Sequence[Decision],
    overrides: Sequence[Override],
    workflow: Workflow,
    *,
    tickets: Mapping[str, Ticket] | None = None,
    reviewed: Sequence[Example] = (),
) -> ShadowFigures:
    """Pure part of :func:`shadow_figures` over lists of records.

    ``reviewed`` are examples analysts reviewed (confirmations, reviews of disagreements);
    one with a ``ticket_id`` gives the truth of that ticket when it has no override.
    """
    live_by_ticket = {d.ticket_id: d for d in sorted(live, key=lambda d: d.created_at)}
    cand = [d for d in shadow if d.model_version == candidate and d.ticket_id in live_by_ticket]
    latest: dict[str, Override] = {}
    for o in sorted(overrides, key=lambda o: o.created_at):
        latest[o.ticket_id] = o
    labelled = _reviewed_labels(reviewed)
    agree = route_agree = cand_ok = champ_ok = fixes = breaks = unverified = 0
    synthetic: list[Override] = []
    for d in cand:
        champ = live_by_ticket[d.ticket_id]
        ov = latest.get(d.ticket_id)
        if ov is not None:
            truth, reason = ov.final_label, ov.reason_code
        elif d.ticket_id in labelled:
            truth, reason = labelled[d.ticket_id], ReasonCode.R2
        else:
            truth, reason = champ.label, ReasonCode.R2
            unverified += d.label != champ.label
        agree += d.label == champ.label
        route_agree += d.route == champ.route
        c_ok, k_ok = d.label == truth, champ.label == truth
        cand_ok += c_ok
        champ_ok += k_ok
        fixes += c_ok and not k_ok
        breaks += k_ok and not c_ok
        if not c_ok:
            synthetic.append(
                Override(
                    ticket_id=d.ticket_id,
                    decision_id=d.id,
                    model_label=d.label,
                    final_label=truth,
                    reason_code=reason,
                    created_at=d.created_at,
                )
            )
    n = len(cand)
    # The champion's figures: its overrides re-pointed at its decisions on the shared tickets.
    repointed = [
        Override(
            ticket_id=ov.ticket_id,
            final_label=ov.final_label,
            reason_code=ov.reason_code,
            created_at=ov.created_at,
        )
        for ov in latest.values()
    ]
    shared = {d.ticket_id for d in cand}
    champ_list = [live_by_ticket[t] for t in shared]
    return ShadowFigures(
        candidate=candidate,
        n_tickets=n,
        agreement=agree / n if n else None,
        route_agreement=route_agree / n if n else None,
        candidate_accuracy=cand_ok / n if n else None,
        champion_accuracy=champ_ok / n if n else None,
        fixes=fixes,
        breaks=breaks,
        candidate_figures=compute_figures(cand, synthetic, workflow, tickets=tickets)
        if n
        else None,
        champion_figures=compute_figures(champ_list, repointed, workflow, tickets=tickets)
        if n
        else None,
        unverified_disagreements=unverified,
    )


def disagreements_to_review(
    store: Store,
    candidate: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Decision]:
    """The shadow decisions of ``candidate`` that disagree with an un-overridden champion label
    no analyst reviewed: the tickets to label before promoting it (store the labels as reviewed
    examples with ``ticket_id`` set), so that its baseline stops charging it with the
    champion's uncaught errors."""
    shadow = store.decisions(model_version=candidate, since=since, until=until, shadow=True)
    ids = sorted({d.ticket_id for d in shadow})
    if not ids:
        return []
    live = {d.ticket_id: d for d in store.decisions(ticket_ids=ids, shadow=False)}
    overridden = {o.ticket_id for o in store.overrides(since=since)}
    labelled = _reviewed_labels(reviewed_for(store, ids))
    return [
        d
        for d in shadow
        if d.ticket_id in live
        and d.label != live[d.ticket_id].label
        and d.ticket_id not in overridden
        and d.ticket_id not in labelled
    ]


def shadow_figures(
    store: Store,
    candidate: str,
    *,
    workflow: Workflow,
    since: datetime | None = None,
    until: datetime | None = None,
) -> ShadowFigures:
    """Figures of shadow candidate ``candidate`` beside the live decisions in the store."""
    shadow = store.decisions(model_version=candidate, since=since, until=until, shadow=True)
    ids = sorted({d.ticket_id for d in shadow})
    live = store.decisions(ticket_ids=ids, shadow=False) if ids else []
    overrides = [o for o in store.overrides(since=since) if o.ticket_id in set(ids)]
    tickets = {t.id: t for t in store.tickets(ids=ids)} if ids else {}
    return shadow_figures_from_records(
        candidate,
        shadow,
        live,
        overrides,
        workflow,
        tickets=tickets,
        reviewed=reviewed_for(store, ids),
    )


def reviewed_for(store: Store, ticket_ids: Sequence[str]) -> list[Example]:
    """Reviewed examples in ``store`` that point at one of ``ticket_ids``."""
    wanted = set(ticket_ids)
    return [
        e
        for e in store.examples(review_status=ReviewStatus.REVIEWED.value)
        if e.ticket_id is not None and e.ticket_id in wanted
    ]
