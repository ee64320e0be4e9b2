"""Classify tickets with one model and log them: the service's and the CLI's use-case.

Workflow rules come first, then the model (:class:`tunegate.models.Router`); tickets and their
decisions are written to the store, so monitoring, diagnosis and the gate read the same log.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tunegate.config import Workflow
from tunegate.documents import ClassifyReceipt
from tunegate.errors import ConflictError, InputError
from tunegate.records import Decision, Ticket, content_hash, new_id, utcnow

if TYPE_CHECKING:
    from tunegate.execute import Executor
    from tunegate.models import Classifier, Router
    from tunegate.store import Store

__all__ = [
    "ClassifyOutcome",
    "TicketClassifier",
    "TicketRequest",
    "classify_requests",
    "classify_tickets",
]


class TicketClassifier:
    """Decides tickets with ``classifier`` behind the workflow's rules, and logs them.

    ``version`` is written into ``Decision.model_version`` (None: the classifier's own
    version, or a hash of rules and model when the workflow has rules). ``store`` None means
    decide without logging. Decisions are routed with the classifier's ``clarify_threshold``
    attribute when it has one (a registered version's fitted threshold, set by
    :func:`tunegate.models.load_model_version`), else ``workflow.routing.clarify_threshold``.
    """

    def __init__(
        self,
        workflow: Workflow,
        classifier: Classifier,
        *,
        version: str | None = None,
        store: Store | None = None,
    ) -> None:
        from tunegate.models import Router

        threshold = getattr(classifier, "clarify_threshold", None)
        if threshold is not None:
            routing = workflow.routing.model_copy(update={"clarify_threshold": float(threshold)})
            workflow = workflow.model_copy(update={"routing": routing})
        self.workflow = workflow
        self.classifier = classifier
        self.store = store
        self.router: Router = Router(workflow, chain=[classifier], version=version)

    @property
    def version(self) -> str:
        """The ``model_version`` of the decisions made."""
        return self.router.version

    def decide(self, tickets: Sequence[Ticket]) -> list[Decision]:
        """One decision per ticket, in order (nothing written)."""
        decisions: list[Decision] = self.router.decide(list(tickets))
        return decisions

    def decide_batches(
        self, batches: Sequence[Sequence[Ticket]], executor: Executor | None = None
    ) -> Iterator[list[Decision]]:
        """:meth:`decide` for each batch, yielded in order, on ``executor`` (default: here).
        On Ray each worker rebuilds the classifier once (:func:`tunegate.execute.recipe_for`)
        and decides whole batches, so every decision matches a local run's."""
        if executor is None or executor.name == "local":
            for batch in batches:
                yield self.decide(batch)
            return
        fn = functools.partial(_decide_batch, workflow=self.workflow, version=self.router.version)
        yield from executor.map_batches(self.classifier, fn, [list(b) for b in batches])

    def log(self, tickets: Sequence[Ticket], decisions: Sequence[Decision]) -> None:
        """Write tickets and their decisions to the store (a no-op without one)."""
        if self.store is not None:
            self.store.add_tickets(list(tickets))
            self.store.add_decisions(list(decisions))

    def classify(self, tickets: Sequence[Ticket]) -> list[Decision]:
        """Decide ``tickets`` and log them with their decisions."""
        decisions = self.decide(tickets)
        self.log(tickets, decisions)
        return decisions


def _decide_batch(
    classifier: Classifier, tickets: list[Ticket], *, workflow: Workflow, version: str
) -> list[Decision]:
    return TicketClassifier(workflow, classifier, version=version).decide(tickets)


def classify_tickets(
    workflow: Workflow,
    classifier: Classifier,
    tickets: Sequence[Ticket],
    *,
    store: Store | None,
    version: str | None = None,
) -> list[Decision]:
    """Decide ``tickets`` (rules, then ``classifier``) and log them in ``store``."""
    return TicketClassifier(workflow, classifier, version=version, store=store).classify(tickets)


@dataclass(frozen=True)
class TicketRequest:
    """One ticket as a client sent it: ``id`` and ``created_at`` may be missing (a fresh id
    and the time of the request are then used)."""

    text: str
    id: str | None = None
    created_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> list[Any]:
        created = None if self.created_at is None else self.created_at.isoformat()
        return [self.text, self.id, created, self.metadata]


@dataclass(frozen=True)
class ClassifyOutcome:
    """The decisions of a classify request, in request order."""

    decisions: list[Decision]
    new: int
    """How many of them this call decided and stored (0 on a replay)."""

    @property
    def replayed(self) -> bool:
        """True when every decision was stored by an earlier request with the same key."""
        return self.new == 0 and bool(self.decisions)


_LOCKS = [threading.Lock() for _ in range(64)]
"""Striped locks: two requests with the same key in one process run one after the other."""


def _derived(receipt_key: str, what: str, n: int) -> str:
    return hashlib.sha256(f"{receipt_key}\x00{what}\x00{n}".encode()).hexdigest()


def classify_requests(
    classifier: TicketClassifier,
    requests: Sequence[TicketRequest],
    *,
    idempotency_key: str | None = None,
    scope: str = "",
) -> ClassifyOutcome:
    """Decide and log the requested tickets; with ``idempotency_key``, at most once.

    Without a key every call decides and stores anew. With a key (scoped by ``scope``, the
    caller's token id, so two callers never share keys) the first call stores a
    :class:`~tunegate.documents.ClassifyReceipt` and decisions whose ids derive from the key;
    a retry with the same key and the same tickets returns the stored decisions and writes
    nothing (``new == 0``); the same key with different tickets raises
    :class:`~tunegate.errors.ConflictError`. A call that stopped half-way (tickets stored,
    decisions not) is completed by its retry with the same ids and timestamps.
    """
    if idempotency_key is None:
        now = utcnow()
        tickets = [
            Ticket(
                id=r.id or new_id(classifier.workflow.id_prefix),
                text=r.text,
                created_at=r.created_at or now,
                metadata=r.metadata,
            )
            for r in requests
        ]
        decisions = classifier.classify(tickets)
        return ClassifyOutcome(decisions, len(decisions))
    store = classifier.store
    if store is None:
        raise InputError("an idempotency key needs a store to remember the request in")
    receipt_key = hashlib.sha256(f"{scope}\x00{idempotency_key}".encode()).hexdigest()
    request_hash = content_hash([r.fingerprint() for r in requests])
    receipts = store.documents(ClassifyReceipt)
    with _LOCKS[int(receipt_key[:8], 16) % len(_LOCKS)]:
        receipt = receipts.get(receipt_key)
        if receipt is not None and receipt.request_hash != request_hash:
            raise ConflictError(
                f"Idempotency-Key {idempotency_key!r} was already used for a different request "
                f"({len(receipt.decision_ids)} tickets); use a new key for a new request"
            )
        if receipt is None:
            prefix = classifier.workflow.id_prefix
            receipt = ClassifyReceipt(
                request_hash=request_hash,
                created_at=utcnow().isoformat(),
                ticket_ids=[
                    r.id or f"{prefix}_k{_derived(receipt_key, 'ticket', n)[:20]}"
                    for n, r in enumerate(requests)
                ],
                decision_ids=[
                    f"dec_k{_derived(receipt_key, 'decision', n)[:24]}"
                    for n in range(len(requests))
                ],
            )
            receipts.put(receipt_key, receipt)
        wanted = set(receipt.decision_ids)
        stored = {
            d.id: d
            for d in store.decisions(ticket_ids=list(dict.fromkeys(receipt.ticket_ids)))
            if d.id in wanted
        }
        if len(stored) == len(wanted):
            return ClassifyOutcome([stored[i] for i in receipt.decision_ids], 0)
        when = datetime.fromisoformat(receipt.created_at)
        tickets = [
            Ticket(id=tid, text=r.text, created_at=r.created_at or when, metadata=r.metadata)
            for tid, r in zip(receipt.ticket_ids, requests, strict=True)
        ]
        fresh = [
            d.model_copy(update={"id": did})
            for did, d in zip(receipt.decision_ids, classifier.decide(tickets), strict=True)
        ]
        missing = [d for d in fresh if d.id not in stored]
        classifier.log(tickets, missing)
        return ClassifyOutcome([stored.get(d.id, d) for d in fresh], len(missing))
