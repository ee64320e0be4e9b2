"""The FastAPI application: the JSON API, the analyst pages and the dashboard.

Build it with :func:`create_app`; ``tunegate serve`` runs it under Uvicorn. The app is app
state (:class:`~tunegate.server._state.AppState`) plus one router per resource
(``tunegate/server/_routers/``); the use-cases live in :mod:`tunegate.serving`, promotion and
rollback in :class:`tunegate.registry.Registry`.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

import tunegate
from tunegate._validation import errors_message
from tunegate.config import Workflow
from tunegate.errors import (
    ConflictError,
    InputError,
    ModelError,
    NotFoundError,
    RegistryError,
    StoreError,
    TunegateError,
)
from tunegate.records import ReasonCode
from tunegate.server._auth import SessionSigner
from tunegate.server._middleware import (
    BodyLimitMiddleware,
    ErrorIdMiddleware,
    ObserveMiddleware,
    new_error_id,
)
from tunegate.server._prometheus import MetricsRegistry
from tunegate.server._routers import ROUTERS
from tunegate.server._state import AppState, ClassifierLoader, ServerSettings
from tunegate.store import Store

__all__ = ["ServerSettings", "create_app"]

log = logging.getLogger("tunegate.server")

_STATUS_FOR: list[tuple[type[TunegateError], int, str]] = [
    (NotFoundError, 404, "not_found"),
    (ConflictError, 409, "conflict"),
    (InputError, 422, "invalid"),
    (RegistryError, 409, "refused"),
    (ModelError, 503, "unavailable"),
    (StoreError, 503, "unavailable"),
    (TunegateError, 400, "bad_request"),
]
"""HTTP status and public error code of each library error (first match wins). The code is
part of the API; the exception class is not (it never reaches a client)."""


_UNAVAILABLE = {
    StoreError: "the store is unavailable; try again later",
    ModelError: "the model is unavailable; try again later",
}
"""What a client is told of a 5xx library error (the full message, which may name the store
URL or server paths, goes to the log only)."""


async def _tunegate_error(request: Request, exc: Exception) -> JSONResponse:
    code, name = next((code, name) for kind, code, name in _STATUS_FOR if isinstance(exc, kind))
    if code >= 500:
        error_id = new_error_id()
        log.error("%s %s on %s: %s", type(exc).__name__, error_id, request.url.path, exc)
        detail = next((m for k, m in _UNAVAILABLE.items() if isinstance(exc, k)), "server error")
        return JSONResponse(
            {"detail": detail, "error": name, "error_id": error_id}, status_code=code
        )
    state: AppState = request.app.state.tunegate
    detail = public_message(str(exc), state.store)
    return JSONResponse({"detail": _encodable(detail), "error": name}, status_code=code)


def _encodable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def public_message(message: str, store: Store) -> str:
    """A library error's message as a client may see it: the store's URL and the server's
    directories (working directory, home, Python prefix, temp dir) are replaced, so a 4xx
    body never tells a client where the server keeps its files. The messages are written
    for users already; this is the net under them."""
    secret = [store.engine.url.render_as_string(hide_password=True), str(store.url)]
    path = store.sqlite_path
    if path is not None:
        secret += [str(path), str(path.resolve())]
    for raw in sorted({s for s in secret if s}, key=len, reverse=True):
        message = message.replace(raw, "the store")
    roots = {
        os.getcwd(): ".",
        str(Path.home()): "~",
        sys.prefix: "<python>",
        sys.base_prefix: "<python>",
        tempfile.gettempdir(): "<tmp>",
        str(Path(tunegate.__file__).resolve().parent): "<tunegate>",
    }
    for root in sorted((r for r in roots if len(r) > 1), key=len, reverse=True):
        message = message.replace(root, roots[root])
    return message


async def _request_invalid(request: Request, exc: Exception) -> JSONResponse:
    """422 for a body, query or path that fails its schema: one line naming each field (the
    messages ingestion quarantines rows with) plus the errors without the offending input, so
    nothing a client sent (a lone surrogate, a megabyte of text) is echoed back."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "loc": [_encodable(str(part)) for part in err.get("loc", ())],
            "msg": _encodable(str(err.get("msg", ""))),
            "type": str(err.get("type", "")),
        }
        for err in exc.errors()
    ]
    fields = [{**err, "loc": _field_path(err.get("loc", ()))} for err in exc.errors()]
    return JSONResponse({"detail": errors_message(fields), "errors": errors}, status_code=422)


_UNION_TAGS = {"ticket", "batch"}
"""Tags of ``POST /v1/classify``'s body union (they name no field)."""


def _field_path(loc: Any) -> tuple[Any, ...]:
    """A request error's location without FastAPI's ``body`` and the body union's tag."""
    parts = tuple(loc)
    if parts and parts[0] in ("body", "query", "path"):
        parts = parts[1:]
        if parts and parts[0] in _UNION_TAGS:
            parts = parts[1:]
    return parts


def _champion_loader(workflow: Workflow, store: Store) -> ClassifierLoader:
    def load() -> tuple[Any, str | None]:
        from tunegate.serving import load_champion

        model = load_champion(workflow, store)
        return model.classifier, model.version_id

    return load


def create_app(
    workflow: Workflow,
    *,
    store: Store | None = None,
    classifier: Any = None,
    classifier_loader: ClassifierLoader | None = None,
    settings: ServerSettings | None = None,
    base_dir: Path | None = None,
) -> FastAPI:
    """Build the service for ``workflow``.

    ``store`` defaults to the workflow's store (relative SQLite paths relative to
    ``base_dir``). ``classifier`` is served as given (tests inject a small one); without it
    the registry's champion is built on first use by ``classifier_loader`` (default: the
    champion, or zero-shot when there is none) and rebuilt after a promotion or rollback.
    """
    settings = settings or ServerSettings()
    if store is None:
        store = Store(workflow.resolved_store_url(base_dir))
    secret = settings.secret_key
    if secret is None:
        env = os.environ.get("TUNEGATE_SECRET_KEY", "")
        secret = env.encode() if env else secrets.token_bytes(32)
    loader = None
    if classifier is None:
        loader = classifier_loader or _champion_loader(workflow, store)
    package = resources.files("tunegate.server")
    templates = Jinja2Templates(directory=str(package.joinpath("templates")))
    templates.env.globals["reason_codes"] = [(c.value, c.meaning) for c in ReasonCode]
    # one per rendered form: the form's idempotency key, so a resubmitted form records once
    templates.env.globals["form_nonce"] = lambda: secrets.token_urlsafe(16)
    state = AppState(
        workflow=workflow,
        store=store,
        settings=settings,
        signer=SessionSigner(secret, max_age_s=settings.session_max_age_s),
        metrics=MetricsRegistry(),
        templates=templates,
        loader=loader,
        classifier=classifier,
    )

    app = FastAPI(
        title="tunegate",
        version=tunegate.__version__,
        docs_url=None,  # served below, behind a token, when settings.docs
        redoc_url=None,
        openapi_url=None,
        description=(
            "Classify tickets, record analyst overrides, work the review queue, manage model "
            "aliases. Every endpoint except /healthz needs `Authorization: Bearer <token>` "
            "(create one with `tunegate token create`)."
        ),
    )
    app.state.tunegate = state
    app.add_middleware(ErrorIdMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(ObserveMiddleware, metrics=state.metrics)
    app.mount("/static", StaticFiles(directory=str(package.joinpath("static"))), name="static")
    app.add_exception_handler(TunegateError, _tunegate_error)
    app.add_exception_handler(RequestValidationError, _request_invalid)
    for router in ROUTERS:
        app.include_router(router)
    if settings.docs:
        _add_docs(app)
    return app


def _add_docs(app: FastAPI) -> None:
    """``/openapi.json`` and ``/docs`` for a bearer token or a logged-in session (401
    otherwise). The Swagger UI page loads its script from jsDelivr, which its own CSP allows."""
    from fastapi import HTTPException
    from fastapi.openapi.docs import get_swagger_ui_html

    from tunegate.server._auth import verify_token
    from tunegate.server._deps import page_principal

    def allowed(request: Request) -> None:
        state: AppState = request.app.state.tunegate
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and verify_token(state.store, token.strip()) is not None:
            return
        if page_principal(request) is not None:
            return
        raise HTTPException(
            401,
            "the API docs need a token ('Authorization: Bearer <token>') or a session "
            "(log in at /login)",
            headers={"WWW-Authenticate": "Bearer"},
        )

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(request: Request) -> JSONResponse:
        allowed(request)
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> Any:
        allowed(request)
        page = get_swagger_ui_html(openapi_url="/openapi.json", title="tunegate API")
        page.headers["content-security-policy"] = (
            "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: "
            "https://fastapi.tiangolo.com; object-src 'none'; frame-ancestors 'none'"
        )
        return page
