"""Shadow mode: a candidate scores the live stream beside the champion, routing nothing.

:func:`shadow_score` stores the candidate's Decisions with ``shadow=True``; routing reads only
non-shadow decisions, so nothing a shadow model says reaches a queue. :func:`shadow_figures`
then gives the candidate production figures before it is promoted: agreement with the
champion on the same tickets, and accuracy against the analysts' overrides (the truth of a
ticket is its override's ``final_label``, else the champion's accepted label).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import numpy as np

from tunegate.config import Workflow
from tunegate.errors import InputError
from tunegate.monitor._figures import Figures, compute_figures
from tunegate.records import Decision, Override, Ticket
from tunegate.routing import route_many

__all__ = ["ShadowFigures", "shadow_figures", "shadow_figures_from_records", "shadow_score"]


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
    store: Any,
    *,
    workflow: Workflow,
    batch_size: int = 64,
    version: str | None = None,
) -> list[Decision]:
    """Score ``tickets`` with ``candidate`` and store the Decisions with ``shadow=True``.

    Returns the shadow decisions. Nothing is routed: no non-shadow decision, override or
    alias is written. ``latency_ms`` is the batch wall time divided by the batch size.
    Idempotent: a ticket already shadow-scored by this version is skipped.
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
    for i in range(0, len(todo), batch_size):
        batch = todo[i : i + batch_size]
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
    """Accuracy against overrides (truth = final label, else the champion's accepted label)."""
    champion_accuracy: float | None
    fixes: int
    """Tickets the champion got wrong (overridden) that the candidate got right."""
    breaks: int
    """Tickets the champion got right that the candidate got wrong."""
    candidate_figures: Figures | None = field(default=None, repr=False)
    champion_figures: Figures | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if not k.endswith("_figures")}
        for k in ("candidate_figures", "champion_figures"):
            f = getattr(self, k)
            out[k] = f.to_dict(with_breakdown=False) if f is not None else None
        return out


def shadow_figures_from_records(
    candidate: str,
    shadow: Sequence[Decision],
    live: Sequence[Decision],
    overrides: Sequence[Override],
    workflow: Workflow,
    *,
    tickets: Mapping[str, Ticket] | None = None,
) -> ShadowFigures:
    """Pure part of :func:`shadow_figures` over lists of records."""
    live_by_ticket = {d.ticket_id: d for d in sorted(live, key=lambda d: d.created_at)}
    cand = [d for d in shadow if d.model_version == candidate and d.ticket_id in live_by_ticket]
    latest: dict[str, Override] = {}
    for o in sorted(overrides, key=lambda o: o.created_at):
        latest[o.ticket_id] = o
    agree = route_agree = cand_ok = champ_ok = fixes = breaks = 0
    for d in cand:
        champ = live_by_ticket[d.ticket_id]
        ov = latest.get(d.ticket_id)
        truth = ov.final_label if ov is not None else champ.label
        agree += d.label == champ.label
        route_agree += d.route == champ.route
        c_ok, k_ok = d.label == truth, champ.label == truth
        cand_ok += c_ok
        champ_ok += k_ok
        fixes += c_ok and not k_ok
        breaks += k_ok and not c_ok
    n = len(cand)
    # Truth for the candidate's own figures: overrides re-pointed at the candidate's decisions.
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
        candidate_figures=_shadow_truth_figures(cand, live_by_ticket, latest, workflow, tickets)
        if n
        else None,
        champion_figures=compute_figures(champ_list, repointed, workflow, tickets=tickets)
        if n
        else None,
    )


def _shadow_truth_figures(
    cand: Sequence[Decision],
    live_by_ticket: Mapping[str, Decision],
    latest: Mapping[str, Override],
    workflow: Workflow,
    tickets: Mapping[str, Ticket] | None,
) -> Figures:
    """Candidate figures where an un-overridden ticket's truth is the champion's label."""
    synthetic: list[Override] = []
    for d in cand:
        ov = latest.get(d.ticket_id)
        truth = ov.final_label if ov is not None else live_by_ticket[d.ticket_id].label
        if truth != d.label:
            synthetic.append(
                Override(
                    ticket_id=d.ticket_id,
                    decision_id=d.id,
                    model_label=d.label,
                    final_label=truth,
                    reason_code=ov.reason_code if ov is not None else "R2",
                    created_at=d.created_at,
                )
            )
    return compute_figures(cand, synthetic, workflow, tickets=tickets)


def shadow_figures(
    store: Any,
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
        candidate, shadow, live, overrides, workflow, tickets=tickets
    )
