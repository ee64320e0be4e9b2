"""Serving use-cases: classify and log tickets, record overrides, the review queue, the
champion (load, summary, promote, roll back) and the weekly service figures.

The service (:mod:`tunegate.server`) and the CLI are thin shells over these functions; each can
be called from Python with a :class:`tunegate.store.Store` and a workflow. See docs/service.md.
"""

from __future__ import annotations

from tunegate.serving._champion import (
    AliasChange,
    ChampionSummary,
    ModelsOverview,
    ServingModel,
    champion_summary,
    load_champion,
    models_overview,
    promote_version,
    rollback_champion,
)
from tunegate.serving._classify import (
    ClassifyOutcome,
    TicketClassifier,
    TicketRequest,
    classify_requests,
    classify_tickets,
)
from tunegate.serving._examples import (
    ExampleReview,
    ExampleVerdict,
    ReviewedExample,
    open_example_review,
    review_example,
)
from tunegate.serving._figures import ServiceFigures, service_figures
from tunegate.serving._overrides import (
    RecordedOverride,
    idempotent_override_id,
    recent_overrides,
    record_override,
)
from tunegate.serving._queue import (
    DEFAULT_LEASE_S,
    QUEUE_ROUTES,
    QueueEntry,
    ReviewQueue,
    check_claim,
    claim_queue,
    open_queue,
    release_claim,
    top_classes,
    waiting_decisions,
)

__all__ = [
    "DEFAULT_LEASE_S",
    "QUEUE_ROUTES",
    "AliasChange",
    "ChampionSummary",
    "ClassifyOutcome",
    "ExampleReview",
    "ExampleVerdict",
    "ModelsOverview",
    "QueueEntry",
    "RecordedOverride",
    "ReviewQueue",
    "ReviewedExample",
    "ServiceFigures",
    "ServingModel",
    "TicketClassifier",
    "TicketRequest",
    "champion_summary",
    "check_claim",
    "claim_queue",
    "classify_requests",
    "classify_tickets",
    "idempotent_override_id",
    "load_champion",
    "models_overview",
    "open_example_review",
    "open_queue",
    "promote_version",
    "recent_overrides",
    "record_override",
    "release_claim",
    "review_example",
    "rollback_champion",
    "service_figures",
    "top_classes",
    "waiting_decisions",
]
