"""Token management and the audit trail (admin only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi import Path as PathParam

from tunegate.server._auth import issue_token, list_tokens, withdraw_token
from tunegate.server._deps import Admin, State
from tunegate.server._schemas import TokenCreateIn

__all__ = ["router"]

router = APIRouter(tags=["admin"])


@router.get("/v1/tokens", summary="List tokens (admin; never the secrets)")
def api_tokens(_: Admin, state: State) -> list[dict[str, Any]]:
    return [t.to_dict() for t in list_tokens(state.store)]


@router.post(
    "/v1/tokens", status_code=201, summary="Create a token (admin); the token is returned once"
)
def api_token_create(body: TokenCreateIn, principal: Admin, state: State) -> dict[str, Any]:
    token, info = issue_token(state.store, role=body.role, name=body.name, actor=principal.name)
    return {"token": token, **info.to_dict()}


@router.post("/v1/tokens/{token_id}/revoke", summary="Revoke a token (admin)")
def api_token_revoke(
    token_id: Annotated[str, PathParam(min_length=1, max_length=200)],
    principal: Admin,
    state: State,
) -> list[dict[str, Any]]:
    revoked = withdraw_token(state.store, token_id, actor=principal.name)
    return [t.to_dict() for t in revoked]


@router.get("/v1/audit", summary="The audit trail (admin)")
def api_audit(
    _: Admin, state: State, action: Annotated[str | None, Query(max_length=100)] = None
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = state.store.audit_log(action)
    return rows
