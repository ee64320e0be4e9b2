"""Hardening of the service (issue 18): no 500 for anything a client sent, no internals in
error bodies, a sanitised access log, server-side sessions, idempotent overrides, the serving
champion following the registry, API docs behind a token."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import StatementError

from _server_support import SECRET, KeywordClassifier, Service, csrf_from, login, make_service
from tunegate.config import Workflow, starter_yaml
from tunegate.documents import ApiToken, WebSession
from tunegate.errors import StoreError
from tunegate.server import ServerSettings, create_app, create_token, withdraw_token
from tunegate.server._auth import SessionSigner
from tunegate.store import Store


@pytest.fixture
def svc(workflow: Workflow, tmp_path: Path) -> Iterator[Service]:
    service = make_service(workflow, tmp_path / "svc.db")
    service.client = TestClient(service.app, raise_server_exceptions=False)
    with service.client:
        yield service
    service.store.close()


def _post(svc: Service, path: str, raw: str, **headers: str) -> Any:
    return svc.client.post(
        path,
        content=raw.encode("utf-8"),
        headers={**svc.auth(svc.analyst), "content-type": "application/json", **headers},
    )


def _deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"a": value}
    return value


# -- row 1: no 500 for anything a client sent ----------------------------------------------

BAD_CLASSIFY = [
    ('{"text": "hello \\ud800"}', "text", "unpaired surrogate"),
    ('{"text": "ok", "id": "\\udc00"}', "id", "unpaired surrogate"),
    ('{"text": "ok", "metadata": {"k\\ud800": 1}}', "metadata", "unpaired surrogate"),
    (json.dumps({"text": "ok", "metadata": _deep(300)}), "metadata", "nested more than 32"),
    ('{"text": "ok", "created_at": "0001-01-01T00:30:00+01:00"}', "created_at", "out of range"),
    ('{"text": "ok", "created_at": "9999-12-31T23:30:00-01:00"}', "created_at", "out of range"),
    ('{"text": "ok", "metadata": {"x": NaN}}', "metadata", "NaN"),
    ('{"tickets": [{"text": "ok"}, {"text": "\\ud800"}]}', "tickets.1.text", "surrogate"),
    (json.dumps({"text": "x" * 20_001}), "text", "limit of 20,000"),
]


@pytest.mark.parametrize(("raw", "field", "why"), BAD_CLASSIFY)
def test_classify_bad_input_is_a_422_naming_the_field(
    svc: Service, raw: str, field: str, why: str
) -> None:
    response = _post(svc, "/v1/classify", raw)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail.startswith(field) and why.lower() in detail.lower(), detail
    assert "\\ud800" not in response.text or "unpaired" in response.text
    assert svc.store.decisions() == []


BAD_OVERRIDES = [
    ('{"ticket_id": "\\ud800", "final_label": "vpn_issue", "reason_code": "R1"}', "ticket_id"),
    ('{"ticket_id": "t", "final_label": "\\udfff", "reason_code": "R1"}', "final_label"),
    (
        '{"ticket_id": "t", "final_label": "vpn_issue", "reason_code": "R1", "note": "\\ud800"}',
        "note",
    ),
    (
        json.dumps(
            {"ticket_id": "t", "final_label": "vpn_issue", "reason_code": "R1", "note": "n" * 2001}
        ),
        "note",
    ),
]


@pytest.mark.parametrize(("raw", "field"), BAD_OVERRIDES)
def test_override_bad_input_is_a_422_naming_the_field(svc: Service, raw: str, field: str) -> None:
    response = _post(svc, "/v1/overrides", raw)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(field)


def test_422_bodies_never_echo_the_input(svc: Service) -> None:
    secret = "s3cr3t-" + "y" * 50
    response = _post(svc, "/v1/classify", json.dumps({"text": secret, "bogus": {"n": secret}}))
    assert response.status_code == 422
    assert all(set(err) == {"loc", "msg", "type"} for err in response.json()["errors"])
    assert "y" * 50 not in response.text


class _Exploding(KeywordClassifier):
    def __init__(self, labels: Any, exc: Exception) -> None:
        super().__init__(labels)
        self.exc = exc

    def predict_proba(self, texts: Any, metadata: Any = None) -> np.ndarray:
        raise self.exc


def _exploding_service(workflow: Workflow, tmp_path: Path, exc: Exception) -> Service:
    store = Store(f"sqlite:///{tmp_path / 'x.db'}")
    analyst, _ = create_token(store, role="analyst", name="alice")
    app = create_app(
        workflow,
        store=store,
        classifier=_Exploding(workflow.label_names, exc),
        settings=ServerSettings(secret_key=SECRET),
    )
    return Service(TestClient(app, raise_server_exceptions=False), store, analyst, "", app)


def test_an_unexpected_error_is_a_500_with_an_id_and_no_internals(
    workflow: Workflow, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    svc = _exploding_service(workflow, tmp_path, RuntimeError("boom at /srv/secret/path.py"))
    with caplog.at_level(logging.ERROR, logger="tunegate.server"):
        response = svc.client.post(
            "/v1/classify", json={"text": "vpn"}, headers=svc.auth(svc.analyst)
        )
    assert response.status_code == 500
    body = response.json()
    assert body["detail"] == "internal error" and body["error_id"].startswith("err_")
    assert "/srv/secret" not in response.text and "Traceback" not in response.text
    logged = [r for r in caplog.records if body["error_id"] in r.getMessage()]
    assert logged and logged[0].exc_info is not None  # the traceback is logged with the id
    svc.store.close()


def test_store_errors_do_not_leak_the_store_url(
    workflow: Workflow, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = "postgresql://tunegate:pw@db.internal:5432/tg"
    svc = _exploding_service(workflow, tmp_path, StoreError(f"cannot reach {url} (/var/lib/x)"))
    with caplog.at_level(logging.ERROR, logger="tunegate.server"):
        response = svc.client.post(
            "/v1/classify", json={"text": "vpn"}, headers=svc.auth(svc.analyst)
        )
    assert response.status_code == 503
    body = response.json()
    assert "db.internal" not in response.text and "/var/lib" not in response.text
    assert body["error_id"].startswith("err_") and "unavailable" in body["detail"]
    assert any(body["error_id"] in r.getMessage() and url in r.getMessage() for r in caplog.records)
    svc.store.close()


# -- row 2: the access log has no query strings, and the app's own line appears -----------


def test_the_access_line_has_no_query_string_and_names_the_token_id(
    svc: Service, caplog: pytest.LogCaptureFixture
) -> None:
    token_id = next(p.id for _, p in svc.store.documents(ApiToken).items() if p.name == "alice")
    with caplog.at_level(logging.INFO, logger="tunegate.server"):
        response = svc.client.get(
            f"/v1/queue?token={svc.analyst}&x=1", headers=svc.auth(svc.analyst)
        )
    assert response.status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "tunegate.server"]
    assert any(line.startswith("GET /v1/queue 200 ") for line in lines), lines
    assert any(f"token={token_id}" in line for line in lines), lines
    assert not any(svc.analyst in line or "?" in line for line in lines), lines


def test_serve_turns_uvicorn_access_log_off_and_logs_tunegate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    from tunegate.cli import main

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw))
    config = tmp_path / "tunegate.yaml"
    config.write_text(starter_yaml())
    assert main(["serve", "--config", str(config)]) == 0
    assert seen["access_log"] is False
    assert seen["log_config"]["loggers"]["tunegate"]["handlers"] == ["default"]


# -- row 3: sessions are server-side: logout, revocation and expiry end them ---------------


def _logged_in_cookie(svc: Service, token: str) -> str:
    login(svc, token)
    cookie = svc.client.cookies.get("tg_session")
    assert cookie
    return cookie


def _queue_with(svc: Service, cookie: str) -> int:
    svc.client.cookies.clear()
    svc.client.cookies.set("tg_session", cookie)
    return int(svc.client.get("/queue", follow_redirects=False).status_code)


def test_a_cookie_replayed_after_logout_is_refused(svc: Service) -> None:
    cookie = _logged_in_cookie(svc, svc.analyst)
    assert _queue_with(svc, cookie) == 200
    page = svc.client.get("/queue")
    out = svc.client.post(
        "/logout", data={"csrf_token": csrf_from(page.text)}, follow_redirects=False
    )
    assert out.status_code == 303
    assert _queue_with(svc, cookie) == 303  # the copy kept before logout no longer works
    assert svc.store.documents(WebSession).items() == []


def test_revoking_the_token_ends_its_sessions(svc: Service) -> None:
    cookie = _logged_in_cookie(svc, svc.analyst)
    assert _queue_with(svc, cookie) == 200
    withdraw_token(svc.store, "alice", actor="test")
    assert _queue_with(svc, cookie) == 303
    assert svc.store.documents(WebSession).items() == []


def test_session_expiry_is_enforced_server_side(svc: Service) -> None:
    cookie = _logged_in_cookie(svc, svc.analyst)
    [(key, session)] = svc.store.documents(WebSession).items()
    svc.store.documents(WebSession).put(key, session.model_copy(update={"expires_at": 1.0}))
    assert _queue_with(svc, cookie) == 303  # the cookie's own expiry is hours away
    assert svc.store.documents(WebSession).items() == []


def test_a_signed_cookie_without_a_stored_session_is_refused(svc: Service) -> None:
    signer = SessionSigner(SECRET)
    assert _queue_with(svc, signer.sign_session("made-up-session-id")) == 303


# -- row 4: idempotent overrides, one open override per decision ---------------------------


def _override_body(decision: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "ticket_id": decision["ticket_id"],
        "decision_id": decision["id"],
        "final_label": "hardware",
        "reason_code": "R2",
        **extra,
    }


def test_a_retry_with_the_same_idempotency_key_stores_one_override(svc: Service) -> None:
    [d] = svc.classify("hello there")
    h = {**svc.auth(svc.analyst), "Idempotency-Key": "retry-1"}
    first = svc.client.post("/v1/overrides", json=_override_body(d), headers=h)
    again = svc.client.post("/v1/overrides", json=_override_body(d), headers=h)
    assert first.status_code == 201 and again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert first.json()["override"]["id"] == again.json()["override"]["id"]
    assert len(svc.store.overrides()) == 1 and len(svc.store.audit_log("override")) == 1
    changed = svc.client.post(
        "/v1/overrides", json=_override_body(d, final_label="vpn_issue"), headers=h
    )
    assert changed.status_code == 409 and "different request" in changed.json()["detail"]
    assert len(svc.store.overrides()) == 1


def test_a_second_open_override_needs_supersedes(svc: Service, workflow: Workflow) -> None:
    from tunegate.records import ReviewStatus
    from tunegate.serving import service_figures

    [d] = svc.classify("hello there")
    h = svc.auth(svc.analyst)
    first = svc.client.post("/v1/overrides", json=_override_body(d), headers=h)
    assert first.status_code == 201
    first_id = first.json()["override"]["id"]
    twice = svc.client.post("/v1/overrides", json=_override_body(d), headers=svc.auth(svc.admin))
    assert twice.status_code == 409 and first_id in twice.json()["detail"]
    wrong = svc.client.post(
        "/v1/overrides", json=_override_body(d, supersedes="ovr_nope"), headers=h
    )
    assert wrong.status_code == 409
    body = _override_body(d, final_label="vpn_issue", reason_code="R1", supersedes=first_id)
    second = svc.client.post("/v1/overrides", json=body, headers=h)
    assert second.status_code == 201, second.text
    status = {o.id: o.review_status for o in svc.store.overrides()}
    assert status[first_id] == ReviewStatus.SUPERSEDED
    assert status[second.json()["override"]["id"]] == ReviewStatus.PENDING
    # every figure counts the one override that stands, not every row
    [week] = service_figures(svc.store, workflow).weeks
    assert sum(week.corrections.values()) == 1 and week.corrections["R1"] == 1


def test_weekly_figures_count_one_override_per_decision() -> None:
    from tunegate.monitor import weekly_figures
    from tunegate.records import Decision, Override, ReasonCode, Route

    decision = Decision(
        ticket_id="t",
        model_version="m",
        probabilities={"a": 0.6, "b": 0.4},
        label="a",
        h_norm=0.9,
        route=Route.CLARIFY,
    )
    rows = [
        Override(
            ticket_id="t",
            decision_id=decision.id,
            model_label="a",
            final_label="b",
            reason_code=ReasonCode.R2,
        )
        for _ in range(3)
    ]  # three rows of one decision, as stored before overrides were idempotent
    [week] = weekly_figures([decision], rows)
    assert week.decisions == 1 and sum(week.corrections.values()) == 1


# -- row 5: an override and its audit row land in one transaction ---------------------------


def test_override_and_audit_row_are_one_transaction(svc: Service) -> None:
    from tunegate.records import Override, ReasonCode

    [d] = svc.classify("hello there")
    override = Override(
        ticket_id=d["ticket_id"],
        decision_id=d["id"],
        final_label="hardware",
        reason_code=ReasonCode.R2,
        analyst="alice",
    )
    with pytest.raises(StatementError):  # the audit row cannot be written (not JSON)
        svc.store.add_override_audited(override, audit={"bad": object()})
    assert svc.store.overrides() == [] and svc.store.audit_log("override") == []
    stored, created = svc.store.add_override_audited(override, audit={"override_id": override.id})
    assert created and stored == override
    assert [r["details"]["override_id"] for r in svc.store.audit_log("override")] == [override.id]
    assert svc.store.add_override_audited(override, audit={}) == (override, False)
    assert len(svc.store.audit_log("override")) == 1


# -- row 6: the serving champion follows the registry ---------------------------------------


def test_a_cli_promotion_or_rollback_is_served_at_once(workflow: Workflow, tmp_path: Path) -> None:
    from tunegate.records import ModelKind, ModelVersion
    from tunegate.registry import Registry

    store = Store(f"sqlite:///{tmp_path / 'reg.db'}")
    analyst, _ = create_token(store, role="analyst", name="alice")
    for version in ("zs-a", "zs-b"):
        store.save_model_version(
            ModelVersion(id=version, kind=ModelKind.ZERO_SHOT, config={"instructions": "x"})
        )
    loads: list[str | None] = []

    def loader() -> tuple[Any, str | None]:  # what load_champion does, without a real model
        champion = store.get_alias("champion")
        loads.append(champion)
        return KeywordClassifier(workflow.label_names), champion or "keyword-1"

    app = create_app(
        workflow,
        store=store,
        classifier_loader=loader,
        settings=ServerSettings(secret_key=SECRET, champion_check_s=0.0),
    )
    h = {"Authorization": f"Bearer {analyst}"}

    def served() -> str:
        response = client.post("/v1/classify", json={"text": "vpn"}, headers=h)
        assert response.status_code == 200, response.text
        version: str = response.json()["decisions"][0]["model_version"]
        return version

    registry = Registry(store)  # a second process would do the same: the CLI
    with TestClient(app) as client:
        assert served() == "keyword-1"
        registry.promote("zs-a", actor="cli", force=True, reason="first")
        assert served() == "zs-a"
        registry.promote("zs-b", actor="cli", force=True, reason="hotfix")
        assert served() == "zs-b"
        assert served() == "zs-b"  # unchanged: no reload
        registry.rollback(actor="cli", reason="spike")
        assert served() == "zs-a"
        models = client.get("/v1/models", headers=h).json()
        assert models["champion"] == models["serving"] == "zs-a"
    assert loads == [None, "zs-a", "zs-b", "zs-a"]
    assert [d.model_version for d in store.decisions()] == [
        "keyword-1",
        "zs-a",
        "zs-b",
        "zs-b",
        "zs-a",
    ]
    store.close()


# -- row 7: the API docs are off by default, and behind a token when on ---------------------


def test_api_docs_are_off_by_default(svc: Service) -> None:
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert svc.client.get(path).status_code == 404, path
        assert svc.client.get(path, headers=svc.auth(svc.admin)).status_code == 404, path


def test_api_docs_when_enabled_need_a_token_or_a_session(
    workflow: Workflow, tmp_path: Path
) -> None:
    on = make_service(workflow, tmp_path / "docs.db", ServerSettings(secret_key=SECRET, docs=True))
    with on.client:
        assert on.client.get("/openapi.json").status_code == 401
        assert on.client.get("/openapi.json", headers=on.auth("tg_forged")).status_code == 401
        assert on.client.get("/docs").status_code == 401
        assert (
            "/v1/classify"
            in on.client.get("/openapi.json", headers=on.auth(on.analyst)).json()["paths"]
        )
        login(on, on.analyst)  # the Swagger page fetches the spec with the session cookie
        assert on.client.get("/openapi.json").status_code == 200
        assert on.client.get("/docs").status_code == 200
    on.store.close()


# -- row 8: --secure-cookies -----------------------------------------------------------------


def test_serve_secure_cookies_flag_marks_cookies_secure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    from tunegate.cli import main

    apps: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: apps.append(app))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tunegate.yaml").write_text(starter_yaml())
    assert main(["serve", "--secure-cookies", "--docs"]) == 0
    assert main(["serve"]) == 0
    secure, plain = (app.state.tunegate.settings for app in apps)
    assert secure.secure_cookies and secure.docs
    assert not plain.secure_cookies and not plain.docs
    with TestClient(apps[0], base_url="https://testserver") as client:
        cookie = client.get("/login").headers["set-cookie"]
    assert "secure" in cookie.lower() and "httponly" in cookie.lower()
