"""The analyst pages: login and logout, the review queue (confirm or override), the review
of imported examples (accept, relabel, reject) and the dashboard. Sessions are signed cookies;
every POST form carries a CSRF token."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.responses import Response

from tunegate.records import ReasonCode, Route
from tunegate.report import stacked_bar_chart
from tunegate.server._auth import Role, close_session, open_session, verify_token
from tunegate.server._deps import (
    PRESESSION_COOKIE,
    SESSION_COOKIE,
    State,
    forbidden,
    login_page,
    page_principal,
    render,
    set_cookie,
)
from tunegate.serving import (
    champion_summary,
    claim_queue,
    open_example_review,
    open_queue,
    recent_overrides,
    review_example,
    service_figures,
)

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


@router.get("/")
def index() -> RedirectResponse:
    return RedirectResponse("/queue", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def get_login(request: Request) -> HTMLResponse:
    return login_page(request)


@router.post("/login", response_model=None)
def post_login(
    request: Request,
    state: State,
    token: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    pre = request.cookies.get(PRESESSION_COOKIE, "")
    if not pre or not state.signer.check_csrf("pre:" + pre, csrf_token):
        raise forbidden("the login form expired or was tampered with; reload the page")
    principal = verify_token(state.store, token.strip())
    if principal is None:
        return login_page(request, "That token is not valid (or was revoked).", 401)
    response = RedirectResponse("/queue", status_code=303)
    set_cookie(
        request,
        response,
        SESSION_COOKIE,
        open_session(state.store, state.signer, principal),
        state.settings.session_max_age_s,
    )
    response.delete_cookie(PRESESSION_COOKIE, path="/")
    return response


@router.post("/logout")
def post_logout(
    request: Request, state: State, csrf_token: Annotated[str, Form(max_length=200)] = ""
) -> RedirectResponse:
    who = page_principal(request)
    if who is not None and not state.signer.check_csrf(who[1], csrf_token):
        raise forbidden("invalid CSRF token; reload the page and try again")
    if who is not None:
        close_session(state.store, who[1])
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/queue", response_model=None)
def get_queue(request: Request, state: State) -> Response:
    who = page_principal(request)
    if who is None:
        return RedirectResponse("/login", status_code=303)
    principal, sid = who
    # the page's tickets are handed to this analyst alone (renewed on every view)
    queue = claim_queue(
        state.store,
        principal.name,
        limit=state.settings.queue_page_size,
        lease_s=state.settings.queue_lease_s,
        window_days=state.settings.queue_window_days,
    )
    items = [
        {
            "decision": e.decision,
            "ticket": e.ticket,
            "top": e.top,
            "segments": state.highlights(e.decision, e.text) if e.text else [],
        }
        for e in queue.entries
    ]
    return render(
        request,
        "queue.html",
        {
            "user": principal,
            "csrf_token": state.signer.csrf_token(sid),
            "items": items,
            "total": queue.total,
            "lease_min": max(1, round(state.settings.queue_lease_s / 60)),
            "labels": state.workflow.label_names,
            "workflow": state.workflow.name,
            "done": request.query_params.get("done", ""),
        },
    )


@router.post("/queue/decide", response_model=None)
def post_decide(
    request: Request,
    state: State,
    ticket_id: Annotated[str, Form(max_length=200)],
    final_label: Annotated[str, Form(max_length=200)],
    reason_code: Annotated[str, Form(max_length=4)] = "R1",
    decision_id: Annotated[str, Form(max_length=200)] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    form_nonce: Annotated[str, Form(max_length=64, pattern=r"^[A-Za-z0-9_-]*$")] = "",
) -> Response:
    """Record the override of one queue card. The card's ``form_nonce`` is the override's
    idempotency key: a resubmitted form (reload, back button, double click) returns the
    stored override instead of recording a second one."""
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
    done = state.record_override(
        principal,
        ticket_id=ticket_id,
        decision_id=decision_id or None,
        final_label=final_label,
        reason_code=code,
        note=note,
        idempotency_key=f"form:{form_nonce}" if form_nonce else None,
    )
    if request.headers.get("x-requested-with") == "fetch":
        return JSONResponse({"override_id": done.override.id, "correction": done.correction})
    return RedirectResponse(f"/queue?done={done.override.id}", status_code=303)


@router.get("/review", response_model=None)
def get_review(request: Request, state: State) -> Response:
    """Imported examples waiting for review, oldest first (one page)."""
    who = page_principal(request)
    if who is None:
        return RedirectResponse("/login", status_code=303)
    principal, sid = who
    review = open_example_review(state.store, limit=state.settings.queue_page_size)
    return render(
        request,
        "review.html",
        {
            "user": principal,
            "csrf_token": state.signer.csrf_token(sid),
            "examples": review.examples,
            "total": review.total,
            "labels": state.workflow.label_names,
            "workflow": state.workflow.name,
            "done": request.query_params.get("done", ""),
        },
    )


@router.post("/review/decide", response_model=None)
def post_review(
    request: Request,
    state: State,
    example_id: Annotated[str, Form(min_length=1, max_length=200)],
    verdict: Annotated[str, Form(max_length=20)],
    label: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Accept, relabel or reject one example (the reviewer is the session's token name)."""
    who = page_principal(request)
    if who is None:
        raise HTTPException(401, "log in first")
    principal, sid = who
    if not state.signer.check_csrf(sid, csrf_token):
        raise forbidden("invalid CSRF token; reload the page and try again")
    if not principal.role.allows(Role.ANALYST):
        raise forbidden("this needs the analyst role")
    done = review_example(
        state.workflow,
        state.store,
        example_id,
        verdict,
        reviewer=principal.name,
        label=label or None,
    )
    return RedirectResponse(f"/review?done={done.original_id}", status_code=303)


@router.get("/dashboard", response_model=None)
def get_dashboard(
    request: Request,
    state: State,
    start: Annotated[str, Query(alias="from", max_length=40)] = "",
    end: Annotated[str, Query(alias="to", max_length=40)] = "",
) -> Response:
    """The weekly figures of the 12 weeks that end with the newest data, or of the range
    ``?from=YYYY-MM-DD&to=YYYY-MM-DD`` (either may be left out)."""
    who = page_principal(request)
    if who is None:
        return RedirectResponse("/login", status_code=303)
    principal, sid = who
    figures = service_figures(state.store, state.workflow, weeks=12, start=start, end=end)
    weeks = [w.to_dict() for w in figures.weeks]
    names = [w["week"] for w in weeks]
    reasons = [c.value for c in ReasonCode]
    routes = [r.value for r in Route]
    context: dict[str, Any] = {
        "user": principal,
        "csrf_token": state.signer.csrf_token(sid),
        "override_chart": stacked_bar_chart(
            names, reasons, [[w["corrections_by_reason"][r] for r in reasons] for w in weeks]
        ),
        "route_chart": stacked_bar_chart(
            names, routes, [[w["routes"][r] for r in routes] for w in weeks], percent=True
        ),
        "weeks": weeks,
        "totals": figures.totals,
        "champion": champion_summary(state.store),
        "figures": figures,
        "recent": recent_overrides(state.store, days=14, limit=10, until=figures.until),
        "reason_meaning": {c.value: c.meaning for c in ReasonCode},
        "workflow": state.workflow.name,
        "queue_total": open_queue(
            state.store, limit=0, window_days=state.settings.queue_window_days
        ).total,
    }
    return render(request, "dashboard.html", context)
