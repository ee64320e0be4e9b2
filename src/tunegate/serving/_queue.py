"""The review queue: decisions routed to a human (clarify, escalate) with no override yet.

A decision leaves the queue when an override names it, or names its ticket (an override
without a decision id applies to the ticket's latest decision). The queue looks
``window_days`` back; overrides are read from one day before that window so that one recorded
just before a decision's window start still closes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from tunegate.records import Decision, Route, Ticket, utcnow

if TYPE_CHECKING:
    from tunegate.store import Store

__all__ = [
    "QUEUE_ROUTES",
    "QueueEntry",
    "ReviewQueue",
    "open_queue",
    "top_classes",
    "waiting_decisions",
]

QUEUE_ROUTES = (Route.CLARIFY, Route.ESCALATE)
"""The routes that send a decision to an analyst."""


def top_classes(decision: Decision, k: int = 3) -> list[tuple[str, float]]:
    """The ``k`` most probable classes of a decision with their probabilities, best first."""
    items = sorted(decision.probabilities.items(), key=lambda kv: -kv[1])
    return [(name, float(p)) for name, p in items[:k]]


@dataclass(frozen=True)
class QueueEntry:
    """A waiting decision and its ticket (None when the ticket is not in the store)."""

    decision: Decision
    ticket: Ticket | None

    @property
    def text(self) -> str:
        return self.ticket.text if self.ticket is not None else ""

    @property
    def top(self) -> list[tuple[str, float]]:
        """The three most probable classes, best first."""
        return top_classes(self.decision)

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision.model_dump(mode="json"),
            "ticket_text": self.text,
            "top": [list(pair) for pair in self.top],
        }


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
