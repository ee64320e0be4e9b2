"""``POST /v1/overrides``: an analyst's correction or confirmation of a decision."""

from __future__ import annotations

from fastapi import APIRouter

from tunegate.server._deps import Analyst, State
from tunegate.server._schemas import OverrideIn, OverrideOut

__all__ = ["router"]

router = APIRouter(tags=["decisions"])


@router.post(
    "/v1/overrides",
    response_model=OverrideOut,
    status_code=201,
    summary="Record an analyst's correction or confirmation of a decision",
)
def api_override(body: OverrideIn, principal: Analyst, state: State) -> OverrideOut:
    done = state.record_override(
        principal,
        ticket_id=body.ticket_id,
        decision_id=body.decision_id,
        final_label=body.final_label,
        reason_code=body.reason_code,
        note=body.note,
    )
    return OverrideOut(override=done.override, correction=done.correction)
