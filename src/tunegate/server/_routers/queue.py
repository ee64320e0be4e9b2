"""The review queue: ``GET /v1/queue`` lists the decisions routed to an analyst that have no
override yet; ``POST /v1/queue/claim`` hands some of them to the caller alone (a lease, so two
analysts, on any service worker, never get the same decision); ``DELETE
/v1/queue/claims/{decision_id}`` gives one back."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from tunegate.errors import NotFoundError
from tunegate.records import Route
from tunegate.server._deps import Analyst, State
from tunegate.server._schemas import QueueClaimIn, QueueClaimOut, QueueItem, QueueResponse
from tunegate.serving import QueueEntry, claim_queue, open_queue, release_claim
from tunegate.store import QueueClaim

__all__ = ["router"]

router = APIRouter(tags=["decisions"])


def _item(entry: QueueEntry, claim: QueueClaim | None) -> QueueItem:
    held = None if claim is None else QueueClaimOut(**claim.to_dict())
    return QueueItem(decision=entry.decision, ticket_text=entry.text, top=entry.top, claim=held)


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
    held = state.store.live_claims(decision_ids=[e.decision.id for e in queue.entries])
    items = [_item(e, held.get(e.decision.id)) for e in queue.entries]
    return QueueResponse(items=items, total=queue.total)


@router.post(
    "/v1/queue/claim",
    response_model=QueueResponse,
    summary="Take decisions from the queue: each is handed to one analyst at a time",
)
def api_claim(body: QueueClaimIn, principal: Analyst, state: State) -> QueueResponse:
    """The caller's live leases first (renewed), then the oldest decisions nobody holds.
    ``total`` counts the waiting decisions not held by another analyst. An override by
    another analyst of a decision held here is refused (409) until the lease ends."""
    queue = claim_queue(
        state.store,
        principal.name,
        limit=body.limit,
        route=body.route,
        lease_s=body.lease_s or state.settings.queue_lease_s,
        window_days=state.settings.queue_window_days,
    )
    return QueueResponse(items=[_item(e, e.claim) for e in queue.entries], total=queue.total)


@router.delete(
    "/v1/queue/claims/{decision_id}",
    status_code=204,
    summary="Give a claimed decision back to the queue",
    responses={404: {"description": "The caller holds no lease on this decision"}},
)
def api_release(
    decision_id: Annotated[str, Path(min_length=1, max_length=200)],
    principal: Analyst,
    state: State,
) -> Response:
    if not release_claim(state.store, decision_id, principal.name):
        raise NotFoundError(
            f"you hold no lease on decision {decision_id!r}; POST /v1/queue/claim takes one"
        )
    return Response(status_code=204)
