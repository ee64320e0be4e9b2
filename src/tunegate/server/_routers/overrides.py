"""``POST /v1/overrides``: an analyst's correction or confirmation of a decision."""

from __future__ import annotations

from fastapi import APIRouter, Response

from tunegate.server._deps import Analyst, IdempotencyKey, State
from tunegate.server._schemas import OverrideIn, OverrideOut

__all__ = ["router"]

router = APIRouter(tags=["decisions"])


@router.post(
    "/v1/overrides",
    response_model=OverrideOut,
    status_code=201,
    summary="Record an analyst's correction or confirmation of a decision",
    responses={
        200: {"description": "A retry with the same Idempotency-Key: the stored override"},
        409: {
            "description": "The decision has an open override (send `supersedes`), or "
            "the Idempotency-Key was used with a different request"
        },
    },
)
def api_override(
    body: OverrideIn,
    principal: Analyst,
    state: State,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> OverrideOut:
    done = state.record_override(
        principal,
        ticket_id=body.ticket_id,
        decision_id=body.decision_id,
        final_label=body.final_label,
        reason_code=body.reason_code,
        note=body.note,
        idempotency_key=idempotency_key,
        supersedes=body.supersedes,
    )
    if not done.created:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return OverrideOut(override=done.override, correction=done.correction)
