"""``POST /v1/classify``: decide one ticket or a batch (stored, then returned)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Response
from pydantic import Discriminator, Tag

from tunegate.server._deps import Analyst, IdempotencyKey, State
from tunegate.server._schemas import BatchIn, ClassifyResponse, TicketIn
from tunegate.serving import TicketRequest

__all__ = ["router"]

router = APIRouter(tags=["decisions"])


def _shape(body: Any) -> str:
    """``batch`` for a body with ``tickets``, else ``ticket``: errors then name the fields of
    the shape the client meant, not of both."""
    if isinstance(body, dict):
        return "batch" if "tickets" in body else "ticket"
    return "batch" if isinstance(body, BatchIn) else "ticket"


ClassifyIn = Annotated[
    Annotated[TicketIn, Tag("ticket")] | Annotated[BatchIn, Tag("batch")],
    Discriminator(_shape),
]


@router.post(
    "/v1/classify",
    response_model=ClassifyResponse,
    summary="Classify one ticket or a batch; decisions are stored and returned",
    responses={
        409: {"description": "The Idempotency-Key was used with a different request"},
    },
)
def api_classify(
    body: ClassifyIn,
    principal: Analyst,
    state: State,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> ClassifyResponse:
    items = body.tickets if isinstance(body, BatchIn) else [body]
    limit = state.settings.max_batch
    if len(items) > limit:
        raise HTTPException(
            422,
            f"batch of {len(items)} tickets is over the limit of "
            f"{limit}; split it into smaller requests",
        )
    ids = [t.id for t in items if t.id is not None]
    if len(ids) != len(set(ids)):
        raise HTTPException(422, "ticket ids within one batch must be unique")
    requests = [
        TicketRequest(text=t.text, id=t.id, created_at=t.created_at, metadata=t.metadata)
        for t in items
    ]
    outcome = state.classify(requests, principal=principal, idempotency_key=idempotency_key)
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return ClassifyResponse(decisions=outcome.decisions)
