"""The FastAPI application: the JSON API, the analyst pages and the dashboard.

Build it with :func:`create_app`; ``tunegate serve`` runs it under Uvicorn. The app is thin:
classification goes through :class:`tunegate.models.Router`, records through the store,
promotion and rollback through :class:`tunegate.registry.Registry`.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

import tunegate
from tunegate.config import Workflow
from tunegate.errors import (
    InputError,
    ModelError,
    NotFoundError,
    RegistryError,
    StoreError,
    TunegateError,
)
from tunegate.records import Decision, Override, ReasonCode, Route, Ticket, new_id, utcnow
from tunegate.server._auth import (
    Principal,
    Role,
    SessionSigner,
    create_token,
    list_tokens,
    principal_for_hash,
    revoke_token,
    verify_token,
)
from tunegate.server._champion import load_champion
from tunegate.server._figures import bar_chart, is_correction, weekly_figures
from tunegate.server._highlight import Segment, attribution_segments, occlusion_highlights
from tunegate.server._middleware import BodyLimitMiddleware, ObserveMiddleware
from tunegate.server._prometheus import MetricsRegistry
from tunegate.server._schemas import (
    AliasEventOut,
    BatchIn,
    ClassifyResponse,
    ModelsResponse,
    OverrideIn,
    OverrideOut,
    PromoteIn,
    QueueItem,
    QueueResponse,
    RollbackIn,
    TicketIn,
    TokenCreateIn,
)

__all__ = ["ServerSettings", "create_app"]

log = logging.getLogger("tunegate.server")

SESSION_COOKIE = "tg_session"
PRESESSION_COOKIE = "tg_pre"
QUEUE_ROUTES = (Route.CLARIFY, Route.ESCALATE)


@dataclass(frozen=True)
class ServerSettings:
    """Knobs of the service (all have safe defaults)."""

    max_body_bytes: int = 1_048_576
    """Requests with a larger body get 413."""
    max_batch: int = 256
    """``POST /v1/classify`` with more tickets gets 422."""
    secret_key: bytes | None = None
    """Signs session cookies and CSRF tokens. Default: ``TUNEGATE_SECRET_KEY`` from the
    environment, else a random key per process (sessions then end when the server restarts)."""
    session_max_age_s: int = 8 * 3600
    """Sessions expire after this many seconds."""
    secure_cookies: bool = False
    """Mark cookies ``Secure`` (set this when serving over HTTPS, e.g. behind a proxy)."""
    queue_page_size: int = 20
    """Tickets shown per review-queue page."""
    highlights: Literal["occlusion", "attribution", "off"] = "occlusion"
    """Review-queue word highlights: ``occlusion`` (drop one word at a time, any classifier,
    one batched predict per ticket), ``attribution`` (Integrated Gradients from
    ``tunegate.diagnose``, zero-shot or LoRA models, slower; falls back to none on error),
    or ``off``."""
    highlight_max_words: int = 64
    """Words scored by occlusion per ticket (the rest are shown unweighted)."""
    queue_window_days: int = 90
    """The queue and dashboard look at decisions from this many days back."""


ClassifierLoader = Callable[[], tuple[Any, str | None]]
"""Returns ``(classifier, version id)``; the id goes into ``Decision.model_version``
(None = the classifier's own version)."""


@dataclass
class _State:
    workflow: Workflow
    store: Any
    settings: ServerSettings
    signer: SessionSigner
    metrics: MetricsRegistry
    loader: ClassifierLoader | None
    classifier: Any
    version: str | None = None
    scorer: Any = None
    highlight_cache: dict[tuple[str, str], list[Segment]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def current(self) -> tuple[Any, str | None]:
        """The serving classifier and its version id (loaded on first use)."""
        with self.lock:
            if self.classifier is None:
                if self.loader is None:
                    raise ModelError("no classifier is configured")
                self.classifier, self.version = self.loader()
            return self.classifier, self.version

    def reload(self) -> None:
        """Forget the serving classifier after a promotion or rollback (lazy reload)."""
        if self.loader is not None:
            with self.lock:
                self.classifier = None
                self.scorer = None
                self.highlight_cache.clear()


_bearer = HTTPBearer(auto_error=False, description="A token from `tunegate token create`.")


def _requires(role: Role) -> Callable[..., Principal]:
    """A dependency that authenticates the bearer token and checks its role (401 / 403)."""

    def dependency(
        request: Request,
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        state: _State = request.app.state.tunegate
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
        return principal

    return dependency


Analyst = Annotated[Principal, Depends(_requires(Role.ANALYST))]
Admin = Annotated[Principal, Depends(_requires(Role.ADMIN))]


def _decide(
    workflow: Workflow, classifier: Any, version: str | None, tickets: list[Ticket]
) -> list[Decision]:
    """Rules from the workflow first, then the classifier (``tunegate.models.Router``)."""
    from tunegate.models import Router

    decisions: list[Decision] = Router(workflow, chain=[classifier], version=version).decide(
        tickets
    )
    return decisions


def _top(decision: Decision, k: int = 3) -> list[tuple[str, float]]:
    items = sorted(decision.probabilities.items(), key=lambda kv: -kv[1])
    return [(name, float(p)) for name, p in items[:k]]


def _alias_event(event: Any) -> AliasEventOut:
    if hasattr(event, "model_dump"):
        data = event.model_dump()
    elif hasattr(event, "_asdict"):
        data = event._asdict()
    else:
        data = {
            k: getattr(event, k)
            for k in ("alias", "version_id", "previous", "actor", "reason", "at")
        }
    return AliasEventOut.model_validate(data)


def create_app(
    workflow: Workflow,
    *,
    store: Any = None,
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
        from tunegate.store import Store

        store = Store(workflow.resolved_store_url(base_dir))
    secret = settings.secret_key
    if secret is None:
        env = os.environ.get("TUNEGATE_SECRET_KEY", "")
        secret = env.encode() if env else secrets.token_bytes(32)
    loader = None
    if classifier is None:
        loader = classifier_loader or (lambda: load_champion(workflow, store))
    state = _State(
        workflow=workflow,
        store=store,
        settings=settings,
        signer=SessionSigner(secret, max_age_s=settings.session_max_age_s),
        metrics=MetricsRegistry(),
        loader=loader,
        classifier=classifier,
    )

    app = FastAPI(
        title="tunegate",
        version=tunegate.__version__,
        description=(
            "Classify tickets, record analyst overrides, work the review queue, manage model "
            "aliases. Every endpoint except /healthz needs `Authorization: Bearer <token>` "
            "(create one with `tunegate token create`)."
        ),
    )
    app.state.tunegate = state
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(ObserveMiddleware, metrics=state.metrics)

    templates = Jinja2Templates(
        directory=str(resources.files("tunegate.server").joinpath("templates"))
    )
    templates.env.globals["reason_codes"] = [(c.value, c.meaning) for c in ReasonCode]
    app.mount(
        "/static",
        StaticFiles(directory=str(resources.files("tunegate.server").joinpath("static"))),
        name="static",
    )

    # -- errors ---------------------------------------------------------------------------

    status_for: list[tuple[type[TunegateError], int]] = [
        (NotFoundError, 404),
        (InputError, 422),
        (RegistryError, 409),
        (ModelError, 503),
        (StoreError, 503),
        (TunegateError, 400),
    ]

    @app.exception_handler(TunegateError)
    async def _tunegate_error(request: Request, exc: TunegateError) -> JSONResponse:
        code = next(code for kind, code in status_for if isinstance(exc, kind))
        if code >= 500:
            log.error("%s on %s: %s", type(exc).__name__, request.url.path, exc)
        return JSONResponse({"detail": str(exc), "error": type(exc).__name__}, status_code=code)

    # -- authentication ---------------------------------------------------------------------

    # -- library-level operations shared by API and pages -----------------------------------

    def classify(tickets: list[Ticket]) -> list[Decision]:
        clf, version = state.current()
        decisions = _decide(workflow, clf, version, tickets)
        store.add_tickets(tickets)
        store.add_decisions(decisions)
        for d in decisions:
            state.metrics.decisions.inc(d.route.value)
        return decisions

    def record_override(body: OverrideIn, principal: Principal) -> tuple[Override, bool]:
        if body.final_label not in workflow.labels:
            raise InputError(
                f"final_label {body.final_label!r} is not a label of workflow "
                f"{workflow.name!r}; allowed: {workflow.label_names}"
            )
        store.get_ticket(body.ticket_id)  # NotFoundError -> 404
        decisions = [d for d in store.decisions(ticket_ids=[body.ticket_id]) if not d.shadow]
        decision: Decision | None = None
        if body.decision_id is not None:
            decision = next((d for d in decisions if d.id == body.decision_id), None)
            if decision is None:
                raise NotFoundError(
                    f"ticket {body.ticket_id!r} has no decision "
                    f"{body.decision_id!r}; GET /v1/queue lists open decisions"
                )
        elif decisions:
            decision = max(decisions, key=lambda d: d.created_at)
        override = Override(
            ticket_id=body.ticket_id,
            decision_id=decision.id if decision else None,
            model_label=decision.label if decision else None,
            final_label=body.final_label,
            reason_code=body.reason_code,
            note=body.note,
            analyst=principal.name,
        )
        store.add_overrides([override])
        correction = is_correction(override)
        store.audit(
            "override",
            principal.name,
            {
                "override_id": override.id,
                "ticket_id": override.ticket_id,
                "decision_id": override.decision_id,
                "model_label": override.model_label,
                "final_label": override.final_label,
                "reason_code": override.reason_code.value,
                "correction": correction,
                "token_id": principal.token_id,
            },
        )
        state.metrics.overrides.inc(
            override.reason_code.value, "correction" if correction else "confirmation"
        )
        return override, correction

    def open_queue() -> list[Decision]:
        since = utcnow() - timedelta(days=settings.queue_window_days)
        decisions = store.decisions(since=since, routes=QUEUE_ROUTES)
        if not decisions:
            return []
        done_decisions: set[str] = set()
        done_tickets: set[str] = set()
        for o in store.overrides(since=since - timedelta(days=1)):
            done_tickets.add(o.ticket_id)
            if o.decision_id:
                done_decisions.add(o.decision_id)
        waiting = [
            d for d in decisions if d.id not in done_decisions and d.ticket_id not in done_tickets
        ]
        return sorted(waiting, key=lambda d: d.created_at)

    def champion_summary() -> dict[str, Any]:
        champ = store.get_alias("champion")
        info: dict[str, Any] = {"id": champ, "version": None, "verdict": None, "attempt": None}
        if champ is None:
            return info
        try:
            info["version"] = store.get_model_version(champ)
        except NotFoundError:
            return info
        attempts = [a for a in store.attempts() if a.candidate_version == champ and a.verdict]
        if attempts:
            latest = max(attempts, key=lambda a: a.created_at)
            info["attempt"] = latest
            info["verdict"] = latest.verdict
        return info

    def alias_change(run: Callable[[Any], Any]) -> dict[str, Any]:
        """Promote or roll back through the registry, which records the alias history and
        the audit entry (``registry.promote`` / ``registry.rollback``, actor = token name)."""
        from tunegate.registry import Registry

        done = run(Registry(store))
        state.reload()
        result: dict[str, Any] = done.as_dict()
        result["champion"] = store.get_alias("champion")
        return result

    # -- API --------------------------------------------------------------------------------

    @app.get("/healthz", tags=["ops"], summary="Liveness (no token needed)")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": tunegate.__version__, "workflow": workflow.name}

    @app.get(
        "/metrics",
        tags=["ops"],
        response_class=PlainTextResponse,
        summary="Prometheus metrics (text exposition format 0.0.4)",
    )
    def prometheus(_: Analyst) -> PlainTextResponse:
        return PlainTextResponse(
            state.metrics.expose(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    @app.post(
        "/v1/classify",
        tags=["decisions"],
        response_model=ClassifyResponse,
        summary="Classify one ticket or a batch; decisions are stored and returned",
    )
    def api_classify(body: TicketIn | BatchIn, _: Analyst) -> ClassifyResponse:
        items = body.tickets if isinstance(body, BatchIn) else [body]
        if len(items) > settings.max_batch:
            raise HTTPException(
                422,
                f"batch of {len(items)} tickets is over the limit of "
                f"{settings.max_batch}; split it into smaller requests",
            )
        now = utcnow()
        tickets = [
            Ticket(
                id=t.id or new_id("tkt"),
                text=t.text,
                created_at=t.created_at or now,
                metadata=t.metadata,
            )
            for t in items
        ]
        ids = [t.id for t in tickets]
        if len(ids) != len(set(ids)):
            raise HTTPException(422, "ticket ids within one batch must be unique")
        return ClassifyResponse(decisions=classify(tickets))

    @app.post(
        "/v1/overrides",
        tags=["decisions"],
        response_model=OverrideOut,
        status_code=201,
        summary="Record an analyst's correction or confirmation of a decision",
    )
    def api_override(body: OverrideIn, principal: Analyst) -> OverrideOut:
        override, correction = record_override(body, principal)
        return OverrideOut(override=override, correction=correction)

    @app.get(
        "/v1/queue",
        tags=["decisions"],
        response_model=QueueResponse,
        summary="Decisions routed to clarify or escalate that have no override yet",
    )
    def api_queue(
        _: Analyst,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        route: Annotated[Route | None, Query(description="clarify or escalate")] = None,
    ) -> QueueResponse:
        waiting = open_queue()
        if route is not None:
            waiting = [d for d in waiting if d.route == route]
        page = waiting[:limit]
        texts = (
            {t.id: t.text for t in store.tickets(ids=[d.ticket_id for d in page])} if page else {}
        )
        items = [
            QueueItem(decision=d, ticket_text=texts.get(d.ticket_id, ""), top=_top(d)) for d in page
        ]
        return QueueResponse(items=items, total=len(waiting))

    @app.get(
        "/v1/models",
        tags=["models"],
        response_model=ModelsResponse,
        summary="Registered model versions, aliases and their history",
    )
    def api_models(_: Analyst) -> ModelsResponse:
        serving = None
        if state.classifier is not None:
            serving = state.version or getattr(state.classifier, "version", None)
        return ModelsResponse(
            champion=store.get_alias("champion"),
            candidate=store.get_alias("candidate"),
            versions=store.model_versions(),
            history=[_alias_event(e) for e in store.alias_history()],
            serving=serving,
        )

    @app.post(
        "/v1/models/{version_id}/promote",
        tags=["models"],
        summary="Make a version the champion (admin)",
    )
    def api_promote(
        version_id: Annotated[str, PathParam(min_length=1, max_length=200)],
        principal: Admin,
        body: PromoteIn | None = None,
    ) -> dict[str, Any]:
        body = body or PromoteIn()
        return alias_change(
            lambda reg: reg.promote(
                version_id, actor=principal.name, force=body.force, reason=body.reason
            )
        )

    @app.post("/v1/rollback", tags=["models"], summary="Roll the champion back (admin)")
    def api_rollback(principal: Admin, body: RollbackIn | None = None) -> dict[str, Any]:
        body = body or RollbackIn()
        return alias_change(lambda reg: reg.rollback(actor=principal.name, reason=body.reason))

    @app.get("/v1/metrics", tags=["monitoring"], summary="Weekly monitoring figures")
    def api_metrics(_: Analyst, weeks: Annotated[int, Query(ge=1, le=104)] = 12) -> dict[str, Any]:
        return figures(weeks)

    def figures(weeks: int) -> dict[str, Any]:
        since = utcnow() - timedelta(weeks=weeks)
        decisions = store.decisions(since=since)
        overrides = store.overrides(since=since)
        weekly = [w.as_dict() for w in weekly_figures(decisions, overrides)]
        payload: dict[str, Any] = {
            "weeks": weekly,
            "since": since.isoformat(),
            "champion": store.get_alias("champion"),
        }
        from tunegate.monitor import figures_by_period

        live = [d for d in decisions if not d.shadow]
        payload["monitor"] = [
            p.to_dict()
            for p in figures_by_period(live, overrides, workflow, period="week", breakdown=False)
        ]
        return payload

    @app.get("/v1/tokens", tags=["admin"], summary="List tokens (admin; never the secrets)")
    def api_tokens(_: Admin) -> list[dict[str, Any]]:
        return [t.as_dict() for t in list_tokens(store)]

    @app.post(
        "/v1/tokens",
        tags=["admin"],
        status_code=201,
        summary="Create a token (admin); the token is returned once",
    )
    def api_token_create(body: TokenCreateIn, principal: Admin) -> dict[str, Any]:
        token, info = create_token(store, role=body.role, name=body.name)
        store.audit(
            "token_create",
            principal.name,
            {"token_id": info.id, "name": info.name, "role": info.role.value},
        )
        return {"token": token, **info.as_dict()}

    @app.post("/v1/tokens/{token_id}/revoke", tags=["admin"], summary="Revoke a token (admin)")
    def api_token_revoke(
        token_id: Annotated[str, PathParam(min_length=1, max_length=200)], principal: Admin
    ) -> list[dict[str, Any]]:
        revoked = revoke_token(store, token_id)
        store.audit("token_revoke", principal.name, {"token_ids": [t.id for t in revoked]})
        return [t.as_dict() for t in revoked]

    @app.get("/v1/audit", tags=["admin"], summary="The audit trail (admin)")
    def api_audit(
        _: Admin, action: Annotated[str | None, Query(max_length=100)] = None
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = store.audit_log(action)
        return rows

    # -- pages ------------------------------------------------------------------------------

    def page_principal(request: Request) -> tuple[Principal, str] | None:
        raw = request.cookies.get(SESSION_COOKIE)
        session = state.signer.read_session(raw) if raw else None
        if session is None:
            return None
        principal = principal_for_hash(store, str(session.get("th", "")))
        if principal is None:
            return None
        return principal, str(session["sid"])

    def set_cookie(response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            httponly=True,
            samesite="strict",
            secure=settings.secure_cookies,
            path="/",
        )

    def render(
        request: Request, name: str, context: dict[str, Any], status_code: int = 200
    ) -> HTMLResponse:
        return templates.TemplateResponse(request, name, context, status_code=status_code)

    def login_page(request: Request, error: str = "", status_code: int = 200) -> HTMLResponse:
        pre = request.cookies.get(PRESESSION_COOKIE) or secrets.token_urlsafe(16)
        response = render(
            request,
            "login.html",
            {
                "csrf_token": state.signer.csrf_token("pre:" + pre),
                "error": error,
                "workflow": workflow.name,
                "user": None,
            },
            status_code,
        )
        set_cookie(response, PRESESSION_COOKIE, pre, 3600)
        return response

    def forbidden(message: str) -> HTTPException:
        return HTTPException(403, message)

    @app.get("/", include_in_schema=False)
    def index() -> RedirectResponse:
        return RedirectResponse("/queue", status_code=303)

    @app.get("/login", include_in_schema=False, response_class=HTMLResponse)
    def get_login(request: Request) -> HTMLResponse:
        return login_page(request)

    @app.post("/login", include_in_schema=False, response_model=None)
    def post_login(
        request: Request,
        token: Annotated[str, Form(max_length=200)] = "",
        csrf_token: Annotated[str, Form(max_length=200)] = "",
    ) -> Response:
        pre = request.cookies.get(PRESESSION_COOKIE, "")
        if not pre or not state.signer.check_csrf("pre:" + pre, csrf_token):
            raise forbidden("the login form expired or was tampered with; reload the page")
        principal = verify_token(store, token.strip())
        if principal is None:
            return login_page(request, "That token is not valid (or was revoked).", 401)
        response = RedirectResponse("/queue", status_code=303)
        set_cookie(
            response,
            SESSION_COOKIE,
            state.signer.sign_session(principal.token_hash),
            settings.session_max_age_s,
        )
        response.delete_cookie(PRESESSION_COOKIE, path="/")
        return response

    @app.post("/logout", include_in_schema=False)
    def post_logout(
        request: Request, csrf_token: Annotated[str, Form(max_length=200)] = ""
    ) -> RedirectResponse:
        who = page_principal(request)
        if who is not None and not state.signer.check_csrf(who[1], csrf_token):
            raise forbidden("invalid CSRF token; reload the page and try again")
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    def compute_highlights(decision: Decision, text: str) -> list[Segment]:
        clf, _ = state.current()
        if settings.highlights == "attribution":
            with state.lock:
                if state.scorer is None:
                    from tunegate.diagnose import scorer_for

                    state.scorer = scorer_for(clf, workflow)
                scorer = state.scorer
            from tunegate.diagnose import attribute_texts

            [attr] = attribute_texts(scorer, [text], [[decision.label]], n_steps=16)
            return attribution_segments(text, attr.words, attr.scores[decision.label])
        return occlusion_highlights(
            clf, text, decision.label, max_words=settings.highlight_max_words
        )

    def highlights(decision: Decision, text: str) -> list[Segment]:
        if settings.highlights == "off":
            return [Segment(text, 0.0)]
        key = (decision.id, decision.label)
        cached = state.highlight_cache.get(key)
        if cached is not None:
            return cached
        try:
            segments = compute_highlights(decision, text)
        except (TunegateError, ValueError, ImportError) as exc:
            log.warning("no highlights for decision %s: %s", decision.id, type(exc).__name__)
            segments = [Segment(text, 0.0)]
        if len(state.highlight_cache) > 2048:
            state.highlight_cache.clear()
        state.highlight_cache[key] = segments
        return segments

    @app.get("/queue", include_in_schema=False, response_model=None)
    def get_queue(request: Request) -> Response:
        who = page_principal(request)
        if who is None:
            return RedirectResponse("/login", status_code=303)
        principal, sid = who
        waiting = open_queue()
        page = waiting[: settings.queue_page_size]
        tickets = {t.id: t for t in store.tickets(ids=[d.ticket_id for d in page])} if page else {}
        items = []
        for d in page:
            ticket = tickets.get(d.ticket_id)
            text = ticket.text if ticket else ""
            items.append(
                {
                    "decision": d,
                    "ticket": ticket,
                    "top": _top(d),
                    "segments": highlights(d, text) if text else [],
                }
            )
        return render(
            request,
            "queue.html",
            {
                "user": principal,
                "csrf_token": state.signer.csrf_token(sid),
                "items": items,
                "total": len(waiting),
                "labels": workflow.label_names,
                "workflow": workflow.name,
                "done": request.query_params.get("done", ""),
            },
        )

    @app.post("/queue/decide", include_in_schema=False, response_model=None)
    def post_decide(
        request: Request,
        ticket_id: Annotated[str, Form(max_length=200)],
        final_label: Annotated[str, Form(max_length=200)],
        reason_code: Annotated[str, Form(max_length=4)] = "R1",
        decision_id: Annotated[str, Form(max_length=200)] = "",
        note: Annotated[str, Form(max_length=2000)] = "",
        csrf_token: Annotated[str, Form(max_length=200)] = "",
    ) -> Response:
        who = page_principal(request)
        if who is None:
            raise HTTPException(401, "log in first")
        principal, sid = who
        if not state.signer.check_csrf(sid, csrf_token):
            raise forbidden("invalid CSRF token; reload the page and try again")
        if not principal.role.allows(Role.ANALYST):
            raise forbidden("this needs the analyst role")
        try:
            code = ReasonCode(reason_code)
        except ValueError:
            raise HTTPException(
                422, f"reason_code must be one of {[c.value for c in ReasonCode]}"
            ) from None
        override, correction = record_override(
            OverrideIn(
                ticket_id=ticket_id,
                decision_id=decision_id or None,
                final_label=final_label,
                reason_code=code,
                note=note,
            ),
            principal,
        )
        if request.headers.get("x-requested-with") == "fetch":
            return JSONResponse({"override_id": override.id, "correction": correction})
        return RedirectResponse(f"/queue?done={override.id}", status_code=303)

    @app.get("/dashboard", include_in_schema=False, response_model=None)
    def get_dashboard(request: Request) -> Response:
        who = page_principal(request)
        if who is None:
            return RedirectResponse("/login", status_code=303)
        principal, sid = who
        figs = figures(12)
        weeks = figs["weeks"]
        names = [w["week"] for w in weeks]
        reasons = [c.value for c in ReasonCode]
        routes = [r.value for r in Route]
        override_chart = bar_chart(
            names, reasons, [[w["corrections_by_reason"][r] for r in reasons] for w in weeks]
        )
        route_chart = bar_chart(
            names, routes, [[w["routes"][r] for r in routes] for w in weeks], percent=True
        )
        totals = {
            "decisions": sum(w["decisions"] for w in weeks),
            "corrections": sum(w["corrections"] for w in weeks),
            "confirmations": sum(w["confirmations"] for w in weeks),
        }
        recent = sorted(
            store.overrides(since=utcnow() - timedelta(days=14)),
            key=lambda o: o.created_at,
            reverse=True,
        )[:10]
        return render(
            request,
            "dashboard.html",
            {
                "user": principal,
                "csrf_token": state.signer.csrf_token(sid),
                "override_chart": override_chart,
                "route_chart": route_chart,
                "weeks": weeks,
                "totals": totals,
                "champion": champion_summary(),
                "recent": recent,
                "reason_meaning": {c.value: c.meaning for c in ReasonCode},
                "workflow": workflow.name,
                "queue_total": len(open_queue()),
            },
        )

    return app
