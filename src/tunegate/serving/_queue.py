"""The review queue: decisions routed to a human (clarify, escalate) with no override yet.

A decision leaves the queue when an override names it, or names its ticket (an override
without a decision id applies to the ticket's latest decision). The queue looks
``window_days`` back; overrides are read from one day before that window so that one recorded
just before a decision's window start still closes it.

With several analysts (and several service workers) a decision is handed to one analyst at a
time: :func:`claim_queue` leases waiting decisions to an analyst for ``lease_s`` seconds
(:meth:`tunegate.store.Store.claim_decisions`: row locks with ``SKIP LOCKED`` on PostgreSQL,
an upsert that never hands a live lease to a second analyst); :func:`check_claim` refuses
another analyst's override of a leased decision. A decided decision leaves the queue
whatever its lease (the service also deletes the lease); an expired lease frees the decision
for the next claimer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from tunegate.errors import ConflictError, InputError
from tunegate.records import Decision, Route, Ticket, utcnow

if TYPE_CHECKING:
    from tunegate.store import QueueClaim, Store

__all__ = [
    "DEFAULT_LEASE_S",
    "QUEUE_ROUTES",
    "QueueEntry",
    "ReviewQueue",
    "check_claim",
    "claim_queue",
    "open_queue",
    "release_claim",
    "top_classes",
    "waiting_decisions",
]

QUEUE_ROUTES = (Route.CLARIFY, Route.ESCALATE)
"""The routes that send a decision to an analyst."""

DEFAULT_LEASE_S = 600.0
"""How long a claimed decision stays with its analyst (seconds) unless renewed or decided."""


def top_classes(decision: Decision, k: int = 3) -> list[tuple[str, float]]:
    """The ``k`` most probable classes of a decision with their probabilities, best first."""
    items = sorted(decision.probabilities.items(), key=lambda kv: -kv[1])
    return [(name, float(p)) for name, p in items[:k]]


@dataclass(frozen=True)
class QueueEntry:
    """A waiting decision and its ticket (None when the ticket is not in the store)."""

    decision: Decision
    ticket: Ticket | None
    claim: QueueClaim | None = None
    """The lease when the entry was handed out by :func:`claim_queue`."""

    @property
    def text(self) -> str:
        return self.ticket.text if self.ticket is not None else ""

    @property
    def top(self) -> list[tuple[str, float]]:
        """The three most probable classes, best first."""
        return top_classes(self.decision)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "decision": self.decision.model_dump(mode="json"),
            "ticket_text": self.text,
            "top": [list(pair) for pair in self.top],
        }
        if self.claim is not None:
            out["claim"] = self.claim.to_dict()
        return out


@dataclass(frozen=True)
class ReviewQueue:
    """One page of the queue, oldest first, and how many decisions wait in all."""

    entries: list[QueueEntry]
    total: int

    def to_dict(self) -> dict[str, Any]:
        return {"items": [e.to_dict() for e in self.entries], "total": self.total}


def waiting_decisions(store: Store, *, window_days: int = 90) -> list[Decision]:
    """Every decision of the last ``window_days`` days waiting for an analyst, oldest first."""
    since = utcnow() - timedelta(days=window_days)
    decisions = store.decisions(since=since, routes=QUEUE_ROUTES)
    if not decisions:
        return []
    done_decisions: set[str] = set()
    done_tickets: set[str] = set()
    for o in store.overrides(since=since - timedelta(days=1)):
        done_tickets.add(o.ticket_id)
        if o.decision_id:
            done_decisions.add(o.decision_id)
    waiting = [
        d for d in decisions if d.id not in done_decisions and d.ticket_id not in done_tickets
    ]
    return sorted(waiting, key=lambda d: d.created_at)


def open_queue(
    store: Store,
    *,
    limit: int | None = None,
    route: Route | None = None,
    window_days: int = 90,
) -> ReviewQueue:
    """The first ``limit`` waiting decisions (all when None) with their tickets.

    ``route`` keeps one route only (``total`` then counts that route).
    """
    waiting = waiting_decisions(store, window_days=window_days)
    if route is not None:
        waiting = [d for d in waiting if d.route == route]
    page = waiting if limit is None else waiting[:limit]
    tickets = {t.id: t for t in store.tickets(ids=[d.ticket_id for d in page])} if page else {}
    return ReviewQueue([QueueEntry(d, tickets.get(d.ticket_id)) for d in page], len(waiting))


def _window(window_days: int) -> tuple[datetime, datetime]:
    """The queue's window start and the start of the overrides that close its decisions."""
    since = utcnow() - timedelta(days=window_days)
    return since, since - timedelta(days=1)


def claim_queue(
    store: Store,
    analyst: str,
    *,
    limit: int = 1,
    route: Route | None = None,
    lease_s: float = DEFAULT_LEASE_S,
    window_days: int = 90,
) -> ReviewQueue:
    """Hand up to ``limit`` waiting decisions to ``analyst`` for ``lease_s`` seconds.

    The analyst's own live leases come first (and are renewed), then the oldest decisions
    no other analyst holds; no decision is leased to two analysts at once, whichever service
    worker or process asks. ``total`` counts the waiting decisions not leased to someone
    else (this analyst's included). ``route`` keeps one route only.
    """
    since, overrides_since = _window(window_days)
    routes = QUEUE_ROUTES if route is None else (route,)
    claims = store.claim_decisions(
        analyst,
        limit=limit,
        lease_s=lease_s,
        routes=[r.value for r in routes],
        since=since,
        overrides_since=overrides_since,
    )
    waiting = waiting_decisions(store, window_days=window_days)
    if route is not None:
        waiting = [d for d in waiting if d.route == route]
    by_id = {d.id: d for d in waiting}
    held = store.live_claims(decision_ids=list(by_id))
    page = [(by_id[c.decision_id], c) for c in claims if c.decision_id in by_id]
    tickets = {t.id: t for t in store.tickets(ids=[d.ticket_id for d, _ in page])} if page else {}
    entries = [QueueEntry(d, tickets.get(d.ticket_id), c) for d, c in page]
    free = sum(1 for d in waiting if d.id not in held or held[d.id].analyst == analyst)
    return ReviewQueue(entries, free)


def release_claim(store: Store, decision_id: str, analyst: str) -> bool:
    """Give ``analyst``'s lease on ``decision_id`` back to the queue (False: there was none)."""
    return store.release_claims(decision_ids=[decision_id], analyst=analyst) > 0


def check_claim(
    store: Store, *, ticket_id: str, decision_id: str | None, analyst: str
) -> QueueClaim | None:
    """Raise :class:`~tunegate.errors.ConflictError` when another analyst holds a live
    lease on ``decision_id`` (or, without one, on a decision of ``ticket_id``); return the
    analyst's own lease, or None when the decision is not leased."""
    if not analyst:
        raise InputError("analyst must name who records the override (got an empty name)")
    if decision_id is not None:
        held = store.live_claims(decision_ids=[decision_id])
    else:
        held = store.live_claims(ticket_ids=[ticket_id])
    for claim in held.values():
        if claim.analyst != analyst:
            raise ConflictError(
                f"decision {claim.decision_id!r} is claimed by {claim.analyst!r} until "
                f"{claim.expires_at:%Y-%m-%d %H:%M:%S} UTC; take another one from the queue "
                f"(POST /v1/queue/claim) or wait for the lease to end"
            )
    return next(iter(held.values()), None)
