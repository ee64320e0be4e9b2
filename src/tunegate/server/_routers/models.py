"""``GET /v1/models``, ``POST /v1/models/{id}/promote`` and ``POST /v1/rollback``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from fastapi import Path as PathParam

from tunegate.server._deps import Admin, Analyst, State
from tunegate.server._schemas import AliasEventOut, ModelsResponse, PromoteIn, RollbackIn
from tunegate.serving import models_overview, promote_version, rollback_champion

__all__ = ["router"]

router = APIRouter(tags=["models"])


@router.get(
    "/v1/models",
    response_model=ModelsResponse,
    summary="Registered model versions, aliases and their history",
)
def api_models(_: Analyst, state: State) -> ModelsResponse:
    overview = models_overview(state.store)
    return ModelsResponse(
        champion=overview.champion,
        candidate=overview.candidate,
        versions=overview.versions,
        history=[AliasEventOut.model_validate(e, from_attributes=True) for e in overview.history],
        serving=state.serving_version(),
    )


@router.post("/v1/models/{version_id}/promote", summary="Make a version the champion (admin)")
def api_promote(
    version_id: Annotated[str, PathParam(min_length=1, max_length=200)],
    principal: Admin,
    state: State,
    body: PromoteIn | None = None,
) -> dict[str, Any]:
    # the registry records the alias history and the audit entry (actor = the token's name);
    # the new champion is loaded on the next request
    body = body or PromoteIn()
    done = promote_version(
        state.store, version_id, actor=principal.name, force=body.force, reason=body.reason
    )
    state.reload()
    return done.to_dict()


@router.post("/v1/rollback", summary="Roll the champion back (admin)")
def api_rollback(principal: Admin, state: State, body: RollbackIn | None = None) -> dict[str, Any]:
    body = body or RollbackIn()
    done = rollback_champion(state.store, actor=principal.name, reason=body.reason)
    state.reload()
    return done.to_dict()
