"""``GET /v1/queue``: decisions routed to an analyst that have no override yet."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from tunegate.records import Route
from tunegate.server._deps import Analyst, State
from tunegate.server._schemas import QueueItem, QueueResponse
from tunegate.serving import open_queue

__all__ = ["router"]

router = APIRouter(tags=["decisions"])


@router.get(
    "/v1/queue",
    response_model=QueueResponse,
    summary="Decisions routed to clarify or escalate that have no override yet",
)
def api_queue(
    _: Analyst,
    state: State,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    route: Annotated[Route | None, Query(description="clarify or escalate")] = None,
) -> QueueResponse:
    queue = open_queue(
        state.store, limit=limit, route=route, window_days=state.settings.queue_window_days
    )
    items = [QueueItem(decision=e.decision, ticket_text=e.text, top=e.top) for e in queue.entries]
    return QueueResponse(items=items, total=queue.total)
