"""``POST /v1/classify``: decide one ticket or a batch (stored, then returned)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException
from pydantic import Discriminator, Tag

from tunegate.records import Ticket, new_id, utcnow
from tunegate.server._deps import Analyst, State
from tunegate.server._schemas import BatchIn, ClassifyResponse, TicketIn

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
)
def api_classify(body: ClassifyIn, _: Analyst, state: State) -> ClassifyResponse:
    items = body.tickets if isinstance(body, BatchIn) else [body]
    limit = state.settings.max_batch
    if len(items) > limit:
        raise HTTPException(
            422,
            f"batch of {len(items)} tickets is over the limit of "
            f"{limit}; split it into smaller requests",
        )
    now = utcnow()
    tickets = [
        Ticket(
            id=t.id or new_id(state.workflow.id_prefix),
            text=t.text,
            created_at=t.created_at or now,
            metadata=t.metadata,
        )
        for t in items
    ]
    ids = [t.id for t in tickets]
    if len(ids) != len(set(ids)):
        raise HTTPException(422, "ticket ids within one batch must be unique")
    return ClassifyResponse(decisions=state.classify(tickets))
