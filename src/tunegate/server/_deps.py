"""Request plumbing shared by the routers: the app state, bearer-token roles (401 / 403) for
the API, and the session cookie, CSRF and template rendering of the pages."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.responses import Response

from tunegate.server._auth import Principal, Role, session_principal, verify_token
from tunegate.server._state import AppState

__all__ = [
    "PRESESSION_COOKIE",
    "SESSION_COOKIE",
    "Admin",
    "Analyst",
    "IdempotencyKey",
    "State",
    "app_state",
    "forbidden",
    "login_page",
    "page_principal",
    "render",
    "set_cookie",
]

SESSION_COOKIE = "tg_session"
PRESESSION_COOKIE = "tg_pre"

_bearer = HTTPBearer(auto_error=False, description="A token from `tunegate token create`.")


def app_state(request: Request) -> AppState:
    """The app's :class:`AppState`."""
    state: AppState = request.app.state.tunegate
    return state


def _requires(role: Role) -> Callable[..., Principal]:
    """A dependency that authenticates the bearer token and checks its role (401 / 403)."""

    def dependency(
        request: Request,
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        state = app_state(request)
        if creds is None or creds.scheme.lower() != "bearer":
            raise HTTPException(
                401,
                "missing bearer token; send 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        principal = verify_token(state.store, creds.credentials)
        if principal is None:
            raise HTTPException(
                401, "invalid or revoked token", headers={"WWW-Authenticate": "Bearer"}
            )
        if not principal.role.allows(role):
            raise HTTPException(
                403,
                f"this needs the {role.value} role; your token has the {principal.role.value} role",
            )
        request.state.token_id = principal.token_id  # for the access log line
        return principal

    return dependency


Analyst = Annotated[Principal, Depends(_requires(Role.ANALYST))]
Admin = Annotated[Principal, Depends(_requires(Role.ADMIN))]
State = Annotated[AppState, Depends(app_state)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="Makes the request safe to retry: the same key (per token) and body return "
        "the first answer's records instead of storing them again; the same key with a "
        "different body is 409.",
    ),
]
"""The optional ``Idempotency-Key`` header of the write endpoints."""


def forbidden(message: str) -> HTTPException:
    return HTTPException(403, message)


def page_principal(request: Request) -> tuple[Principal, str] | None:
    """The logged-in principal and session id of a page request (None: not logged in)."""
    state = app_state(request)
    raw = request.cookies.get(SESSION_COOKIE)
    who = session_principal(state.store, state.signer, raw) if raw else None
    if who is not None:
        request.state.token_id = who[0].token_id  # for the access log line
    return who


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=app_state(request).settings.secure_cookies,
        path="/",
    )


def render(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    return app_state(request).templates.TemplateResponse(
        request, name, context, status_code=status_code
    )


def login_page(request: Request, error: str = "", status_code: int = 200) -> HTMLResponse:
    state = app_state(request)
    pre = request.cookies.get(PRESESSION_COOKIE) or secrets.token_urlsafe(16)
    response = render(
        request,
        "login.html",
        {
            "csrf_token": state.signer.csrf_token("pre:" + pre),
            "error": error,
            "workflow": state.workflow.name,
            "user": None,
        },
        status_code,
    )
    set_cookie(request, response, PRESESSION_COOKIE, pre, 3600)
    return response
