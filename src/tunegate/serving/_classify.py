"""Classify tickets with one model and log them: the service's and the CLI's use-case.

Workflow rules come first, then the model (:class:`tunegate.models.Router`); tickets and their
decisions are written to the store, so monitoring, diagnosis and the gate read the same log.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tunegate.config import Workflow
from tunegate.records import Decision, Ticket

if TYPE_CHECKING:
    from tunegate.models import Classifier, Router
    from tunegate.store import Store

__all__ = ["TicketClassifier", "classify_tickets"]


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
