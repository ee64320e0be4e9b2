"""The service: every endpoint, every role boundary, limits, CSRF, escaping, audit, CLI tokens."""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from _server_support import SECRET, Service, csrf_from, login, make_service, service
from tunegate.cli import main
from tunegate.config import Workflow, starter_yaml
from tunegate.documents import ApiToken
from tunegate.records import ModelKind, ModelVersion
from tunegate.server import ServerSettings, create_app, create_token, hash_token, verify_token
from tunegate.server._auth import SessionSigner
from tunegate.store import Store

__all__ = ["service"]

API_GETS = ["/v1/queue", "/v1/models", "/v1/metrics", "/metrics", "/v1/tokens", "/v1/audit"]
API_POSTS = [
    "/v1/classify",
    "/v1/overrides",
    "/v1/models/x/promote",
    "/v1/rollback",
    "/v1/tokens",
    "/v1/tokens/x/revoke",
]
ADMIN_ONLY = [
    ("post", "/v1/models/x/promote", {}),
    ("post", "/v1/rollback", {}),
    ("get", "/v1/tokens", None),
    ("post", "/v1/tokens", {"role": "admin", "name": "n"}),
    ("post", "/v1/tokens/x/revoke", None),
    ("get", "/v1/audit", None),
]


def _call(svc: Service, method: str, path: str, headers: dict[str, str], body: Any = None) -> Any:
    if method == "get":
        return svc.client.get(path, headers=headers)
    return svc.client.post(path, headers=headers, json=body)


# -- authentication and roles ---------------------------------------------------------------


def test_healthz_needs_no_token(service: Service) -> None:
    response = service.client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.mark.parametrize("path", API_GETS + API_POSTS)
def test_no_token_and_wrong_token_get_401(service: Service, path: str) -> None:
    method = "get" if path in API_GETS and path not in API_POSTS else "post"
    for headers in (
        {},
        {"Authorization": "Bearer tg_not-a-real-token"},
        {"Authorization": "Basic dXNlcjpwdw=="},
        {"Authorization": f"Bearer {hash_token(service.analyst)}"},
    ):
        response = _call(service, method, path, headers, {})
        assert response.status_code == 401, (path, headers, response.text)
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ONLY)
def test_analyst_gets_403_on_admin_endpoints(
    service: Service, method: str, path: str, body: Any
) -> None:
    response = _call(service, method, path, service.auth(service.analyst), body)
    assert response.status_code == 403, response.text
    assert "admin role" in response.json()["detail"]


def test_admin_may_do_what_an_analyst_may(service: Service) -> None:
    response = service.client.post(
        "/v1/classify", json={"text": "vpn issue"}, headers=service.auth(service.admin)
    )
    assert response.status_code == 200
    assert service.client.get("/v1/queue", headers=service.auth(service.admin)).status_code == 200


def test_tokens_are_stored_only_as_hashes(service: Service) -> None:
    rows = service.store.documents(ApiToken).items()
    assert len(rows) == 2
    blob = json.dumps([(key, doc.model_dump(mode="json")) for key, doc in rows])
    for token in (service.analyst, service.admin):
        assert token not in blob
        assert hash_token(token) in {key for key, _ in rows}


def test_token_api_create_list_revoke(service: Service) -> None:
    admin = service.auth(service.admin)
    created = service.client.post(
        "/v1/tokens", json={"role": "analyst", "name": "bob"}, headers=admin
    )
    assert created.status_code == 201
    token, token_id = created.json()["token"], created.json()["id"]
    assert service.client.get("/v1/queue", headers=service.auth(token)).status_code == 200
    listed = service.client.get("/v1/tokens", headers=admin).json()
    assert {t["name"] for t in listed} == {"alice", "root", "bob"}
    assert token not in json.dumps(listed)
    assert service.client.post(f"/v1/tokens/{token_id}/revoke", headers=admin).status_code == 200
    assert service.client.get("/v1/queue", headers=service.auth(token)).status_code == 401
    assert service.client.post("/v1/tokens/nope/revoke", headers=admin).status_code == 404
    actions = [e["action"] for e in service.store.audit_log()]
    assert actions.count("token_create") == 1 and actions.count("token_revoke") == 1


# -- classify, queue, overrides ---------------------------------------------------------------


def test_classify_one_and_batch_are_routed_and_stored(service: Service) -> None:
    one = service.client.post(
        "/v1/classify",
        json={"text": "my vpn has an issue", "id": "t-1"},
        headers=service.auth(service.analyst),
    )
    assert one.status_code == 200
    [decision] = one.json()["decisions"]
    assert decision["ticket_id"] == "t-1" and decision["label"] == "vpn_issue"
    assert decision["route"] == "auto" and 0.0 <= decision["h_norm"] < 0.6
    batch = service.classify("hello there", "security incident reported", "printer hardware")
    assert [d["route"] for d in batch] == ["clarify", "escalate", "auto"]
    assert batch[0]["h_norm"] == pytest.approx(1.0)
    stored = service.store.decisions()
    assert len(stored) == 4
    assert {d.id for d in stored} == {decision["id"], *(d["id"] for d in batch)}
    assert service.store.get_ticket("t-1").text == "my vpn has an issue"
    assert all(d.model_version == "keyword-1" for d in stored)


def test_classify_validation_and_batch_limit(workflow: Workflow, tmp_path: Path) -> None:
    svc = make_service(workflow, tmp_path / "s.db", ServerSettings(secret_key=SECRET, max_batch=3))
    h = svc.auth(svc.analyst)
    with svc.client:
        assert svc.client.post("/v1/classify", json={"text": "   "}, headers=h).status_code == 422
        assert svc.client.post("/v1/classify", json={"tickets": []}, headers=h).status_code == 422
        four = {"tickets": [{"text": f"vpn {i}"} for i in range(4)]}
        too_many = svc.client.post("/v1/classify", json=four, headers=h)
        assert too_many.status_code == 422 and "limit of 3" in too_many.json()["detail"]
        dup = {"tickets": [{"text": "a", "id": "x"}, {"text": "b", "id": "x"}]}
        assert svc.client.post("/v1/classify", json=dup, headers=h).status_code == 422
        assert svc.store.decisions() == []
    svc.store.close()


def test_body_size_limit_gives_413(workflow: Workflow, tmp_path: Path) -> None:
    svc = make_service(
        workflow, tmp_path / "s.db", ServerSettings(secret_key=SECRET, max_body_bytes=2000)
    )
    h = {**svc.auth(svc.analyst), "Content-Type": "application/json"}
    big = json.dumps({"text": "vpn " * 1000}).encode()
    with svc.client:
        assert svc.client.post("/v1/classify", content=big, headers=h).status_code == 413

        def chunks() -> Any:  # streamed without Content-Length
            for i in range(0, len(big), 500):
                yield big[i : i + 500]

        assert svc.client.post("/v1/classify", content=chunks(), headers=h).status_code == 413
        small = json.dumps({"text": "vpn issue"}).encode()
        assert svc.client.post("/v1/classify", content=small, headers=h).status_code == 200
    svc.store.close()


def test_queue_holds_clarify_and_escalate_until_overridden(service: Service) -> None:
    auto, clarify, escalate = service.classify("vpn issue", "hello there", "security incident")
    h = service.auth(service.analyst)
    queue = service.client.get("/v1/queue", headers=h).json()
    assert queue["total"] == 2
    assert [i["decision"]["id"] for i in queue["items"]] == [clarify["id"], escalate["id"]]
    assert queue["items"][0]["ticket_text"] == "hello there"
    assert len(queue["items"][0]["top"]) == 3
    only = service.client.get("/v1/queue?route=escalate", headers=h).json()
    assert [i["decision"]["id"] for i in only["items"]] == [escalate["id"]]
    body = {
        "ticket_id": clarify["ticket_id"],
        "decision_id": clarify["id"],
        "final_label": "email_issue",
        "reason_code": "R1",
        "note": "asked the user",
    }
    assert service.client.post("/v1/overrides", json=body, headers=h).status_code == 201
    queue = service.client.get("/v1/queue", headers=h).json()
    assert [i["decision"]["id"] for i in queue["items"]] == [escalate["id"]]
    assert auto["route"] == "auto"


def test_override_records_analyst_and_audit(service: Service) -> None:
    [d] = service.classify("hello there")
    h = service.auth(service.analyst)
    body = {
        "ticket_id": d["ticket_id"],
        "final_label": "vpn_issue",
        "reason_code": "R2",
        "note": "mentions remote access",
    }
    response = service.client.post("/v1/overrides", json=body, headers=h)
    assert response.status_code == 201
    out = response.json()
    assert out["correction"] is True
    assert out["override"]["analyst"] == "alice"  # from the token, not the request
    assert out["override"]["decision_id"] == d["id"]
    assert out["override"]["model_label"] == d["label"]
    [stored] = service.store.overrides()
    assert stored.final_label == "vpn_issue" and stored.reason_code.value == "R2"
    [entry] = service.store.audit_log("override")
    assert entry["actor"] == "alice"
    assert entry["details"]["override_id"] == stored.id
    assert entry["details"]["final_label"] == "vpn_issue"
    confirm = {"ticket_id": d["ticket_id"], "final_label": d["label"], "reason_code": "R1"}
    assert service.client.post("/v1/overrides", json=confirm, headers=h).status_code == 409
    confirm["supersedes"] = stored.id
    assert (
        service.client.post("/v1/overrides", json=confirm, headers=h).json()["correction"] is False
    )
    assert len(service.store.audit_log("override")) == 2


@pytest.mark.parametrize(
    ("patch", "status"),
    [
        ({"final_label": "not_a_label"}, 422),
        ({"ticket_id": "missing"}, 404),
        ({"decision_id": "dec_other"}, 404),
        ({"reason_code": "R9"}, 422),
        ({"analyst": "mallory"}, 422),
    ],
)
def test_override_rejects_bad_input(service: Service, patch: dict[str, str], status: int) -> None:
    [d] = service.classify("hello there")
    body = {"ticket_id": d["ticket_id"], "final_label": "vpn_issue", "reason_code": "R2", **patch}
    response = service.client.post(
        "/v1/overrides", json=body, headers=service.auth(service.analyst)
    )
    assert response.status_code == status, response.text
    assert service.store.overrides() == []
    assert service.store.audit_log("override") == []


def test_concurrent_overrides_lose_no_write(service: Service) -> None:
    decisions = service.classify(*[f"unclear ticket number {i}" for i in range(40)])
    h = service.auth(service.analyst)

    def override(d: dict[str, Any]) -> int:
        body = {
            "ticket_id": d["ticket_id"],
            "decision_id": d["id"],
            "final_label": "hardware",
            "reason_code": "R2",
        }
        return int(service.client.post("/v1/overrides", json=body, headers=h).status_code)

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(override, decisions))
    assert codes == [201] * 40
    assert len(service.store.overrides()) == 40
    assert len(service.store.audit_log("override")) == 40
    assert service.client.get("/v1/queue", headers=h).json()["total"] == 0


# -- models, metrics, Prometheus ----------------------------------------------------------


def _register(store: Store, version_id: str) -> None:
    store.save_model_version(
        ModelVersion(
            id=version_id, kind=ModelKind.ZERO_SHOT, config={"instructions": "ticket about"}
        )
    )


def test_models_promote_and_rollback_are_audited(service: Service) -> None:
    admin = service.auth(service.admin)
    _register(service.store, "zs-a")
    _register(service.store, "zs-b")
    models = service.client.get("/v1/models", headers=service.auth(service.analyst)).json()
    assert models["champion"] is None and {v["id"] for v in models["versions"]} == {"zs-a", "zs-b"}
    first = service.client.post("/v1/models/zs-a/promote", headers=admin, json={})
    assert first.status_code == 200, first.text
    assert first.json()["champion"] == "zs-a" and first.json()["actor"] == "root"
    # no verdict of zs-b against zs-a: the registry refuses unless forced with a reason
    refused = service.client.post("/v1/models/zs-b/promote", headers=admin, json={})
    assert refused.status_code == 409 and "refusing to promote" in refused.json()["detail"]
    forced = service.client.post(
        "/v1/models/zs-b/promote", headers=admin, json={"force": True, "reason": "hotfix"}
    )
    assert forced.status_code == 200, forced.text
    assert forced.json()["champion"] == "zs-b" and forced.json()["previous"] == "zs-a"
    back = service.client.post("/v1/rollback", headers=admin, json={"reason": "override spike"})
    assert back.status_code == 200, back.text
    assert (back.json()["champion"], back.json()["previous"]) == ("zs-a", "zs-b")
    models = service.client.get("/v1/models", headers=admin).json()
    assert models["champion"] == "zs-a"
    assert [e["version_id"] for e in models["history"]] == ["zs-a", "zs-b", "zs-a"]
    promotions = service.store.audit_log("registry.promote")
    assert [(p["actor"], p["details"]["version_id"]) for p in promotions] == [
        ("root", "zs-a"),
        ("root", "zs-b"),
    ]
    [rollback] = service.store.audit_log("registry.rollback")
    assert rollback["actor"] == "root" and rollback["details"]["previous"] == "zs-b"
    assert service.client.post("/v1/models/nope/promote", headers=admin, json={}).status_code == 404


def test_promotion_swaps_the_served_model(workflow: Workflow, tmp_path: Path) -> None:
    """Without an injected classifier, the loader builds the champion and rebuilds it after a
    promotion (here a fake loader that reads the alias)."""
    from _server_support import KeywordClassifier

    store = Store(f"sqlite:///{tmp_path / 'swap.db'}")
    admin, _ = create_token(store, role="admin", name="root")
    loads: list[str | None] = []

    def loader() -> tuple[Any, str | None]:
        loads.append(store.get_alias("champion"))
        return KeywordClassifier(workflow.label_names), store.get_alias("champion")

    app = create_app(
        workflow, store=store, classifier_loader=loader, settings=ServerSettings(secret_key=SECRET)
    )
    h = {"Authorization": f"Bearer {admin}"}
    _register(store, "zs-a")
    with TestClient(app) as client:
        d1 = client.post("/v1/classify", json={"text": "vpn"}, headers=h).json()["decisions"][0]
        assert client.post("/v1/models/zs-a/promote", headers=h, json={}).status_code == 200
        d2 = client.post("/v1/classify", json={"text": "vpn"}, headers=h).json()["decisions"][0]
        assert client.get("/v1/models", headers=h).json()["serving"] == "zs-a"
    assert loads == [None, "zs-a"]
    assert d1["model_version"] == "keyword-1" and d2["model_version"] == "zs-a"
    store.close()


def test_metrics_weekly_figures(service: Service) -> None:
    decisions = service.classify("vpn issue", "hello there", "security incident", "hi")
    h = service.auth(service.analyst)
    body = {"ticket_id": decisions[1]["ticket_id"], "final_label": "hardware", "reason_code": "R2"}
    service.client.post("/v1/overrides", json=body, headers=h)
    figures = service.client.get("/v1/metrics", headers=h).json()
    [week] = figures["weeks"]
    assert week["decisions"] == 4
    assert week["routes"] == {"auto": 1, "clarify": 2, "escalate": 1}
    assert week["corrections_by_reason"]["R2"] == 1
    assert week["override_rate"] == pytest.approx(0.25)


def test_prometheus_metrics(service: Service) -> None:
    service.classify("vpn issue", "hello there")
    text = service.client.get("/metrics", headers=service.auth(service.analyst)).text
    assert "# TYPE tunegate_decisions_total counter" in text
    assert 'tunegate_decisions_total{route="auto"} 1' in text
    assert 'tunegate_decisions_total{route="clarify"} 1' in text
    assert 'tunegate_http_requests_total{method="POST",route="/v1/classify",status="200"} 1' in text
    assert "tunegate_http_request_duration_seconds_bucket" in text


def test_openapi_spec_lists_the_api(workflow: Workflow, tmp_path: Path) -> None:
    service = make_service(
        workflow, tmp_path / "d.db", ServerSettings(secret_key=SECRET, docs=True)
    )
    assert service.client.get("/openapi.json").status_code == 401
    assert service.client.get("/docs").status_code == 401
    h = service.auth(service.analyst)
    assert service.client.get("/docs", headers=h).status_code == 200
    spec = service.client.get("/openapi.json", headers=h).json()
    for path in (
        "/v1/classify",
        "/v1/overrides",
        "/v1/queue",
        "/v1/models",
        "/v1/rollback",
        "/v1/metrics",
        "/healthz",
        "/metrics",
    ):
        assert path in spec["paths"], path
    assert "/queue" not in spec["paths"]  # pages are not API


def test_no_secret_in_logs(service: Service, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    service.classify("vpn issue")
    service.client.get("/v1/queue", headers=service.auth(service.admin))
    service.client.get("/v1/queue", headers={"Authorization": "Bearer tg_wrong-secret-value"})
    login(service, service.analyst)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "/v1/classify" in logged  # access lines are written...
    for secret in (
        service.analyst,
        service.admin,
        "tg_wrong-secret-value",
        hash_token(service.analyst),
    ):
        assert secret not in logged  # ...but never a token


# -- pages: login, session, CSRF, escaping ---------------------------------------------------


def test_pages_need_a_session(service: Service) -> None:
    for path in ("/queue", "/dashboard"):
        response = service.client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/login"


def test_login_sets_strict_httponly_cookie(service: Service) -> None:
    page = service.client.get("/login")
    response = service.client.post(
        "/login",
        data={"token": service.analyst, "csrf_token": csrf_from(page.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303
    cookie = next(
        v
        for k, v in response.headers.multi_items()
        if k == "set-cookie" and v.startswith("tg_session=")
    )
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert service.analyst not in cookie
    assert service.client.get("/queue").status_code == 200
    assert "content-security-policy" in response.headers


def test_login_rejects_bad_token_and_bad_csrf(service: Service) -> None:
    page = service.client.get("/login")
    bad = service.client.post(
        "/login", data={"token": "tg_nope", "csrf_token": csrf_from(page.text)}
    )
    assert bad.status_code == 401 and "not valid" in bad.text
    tampered = service.client.post(
        "/login", data={"token": service.analyst, "csrf_token": csrf_from(page.text) + "x"}
    )
    assert tampered.status_code == 403
    assert service.client.get("/queue", follow_redirects=False).status_code == 303


def test_tampered_session_cookie_is_refused(service: Service) -> None:
    login(service, service.analyst)
    value = service.client.cookies["tg_session"]
    service.client.cookies.clear()
    service.client.cookies.set("tg_session", value)
    assert service.client.get("/queue", follow_redirects=False).status_code == 200
    service.client.cookies.clear()
    service.client.cookies.set("tg_session", value[:-2] + ("AA" if value[-2:] != "AA" else "BB"))
    assert service.client.get("/queue", follow_redirects=False).status_code == 303
    other = SessionSigner(b"another-secret-key-0123456789abc")
    service.client.cookies.clear()
    service.client.cookies.set("tg_session", other.sign_session(hash_token(service.analyst)))
    assert service.client.get("/queue", follow_redirects=False).status_code == 303


def _decide_form(svc: Service, decision: dict[str, Any], csrf: str, **extra: str) -> Any:
    data = {
        "ticket_id": decision["ticket_id"],
        "decision_id": decision["id"],
        "final_label": "hardware",
        "reason_code": "R2",
        "note": "n",
        "csrf_token": csrf,
        **extra,
    }
    return svc.client.post("/queue/decide", data=data, follow_redirects=False)


def test_queue_form_needs_a_valid_csrf_token(service: Service) -> None:
    [d] = service.classify("hello there")
    login(service, service.analyst)
    csrf = csrf_from(service.client.get("/queue").text)
    assert (
        _decide_form(service, d, csrf[:-1] + ("A" if csrf[-1] != "A" else "B")).status_code == 403
    )
    assert _decide_form(service, d, "").status_code == 403
    other_session = SessionSigner(SECRET).csrf_token("some-other-session")
    assert _decide_form(service, d, other_session).status_code == 403
    assert service.store.overrides() == []
    ok = _decide_form(service, d, csrf)
    assert ok.status_code == 303 and ok.headers["location"].startswith("/queue?done=")
    [o] = service.store.overrides()
    assert (o.final_label, o.reason_code.value, o.analyst) == ("hardware", "R2", "alice")
    assert service.store.audit_log("override")[0]["actor"] == "alice"


def test_revoked_token_ends_its_sessions(service: Service) -> None:
    login(service, service.analyst)
    assert service.client.get("/queue").status_code == 200
    token_id = verify_token(service.store, service.analyst).token_id  # type: ignore[union-attr]
    service.client.post(f"/v1/tokens/{token_id}/revoke", headers=service.auth(service.admin))
    assert service.client.get("/queue", follow_redirects=False).status_code == 303


def test_ticket_text_is_escaped_everywhere(service: Service) -> None:
    evil = "<script>alert('x')</script> <img src=x onerror=alert(1)> hello"
    [d] = service.classify(evil)
    login(service, service.analyst)
    queue = service.client.get("/queue").text
    assert "<script>alert" not in queue and "<img src=x" not in queue
    assert "&lt;script&gt;" in queue
    csrf = csrf_from(queue)
    _decide_form(service, d, csrf, note="<script>alert('note')</script>")
    dashboard = service.client.get("/dashboard").text
    assert "<script>alert" not in dashboard
    assert "&lt;script&gt;alert(&#39;note&#39;)" in dashboard


def test_queue_page_shows_classes_entropy_and_highlights(service: Service) -> None:
    service.classify("security incident with my vpn", "hello there")
    login(service, service.analyst)
    html = service.client.get("/queue").text
    assert "security_incident" in html and "escalate" in html and "clarify" in html
    assert "H<sub>norm</sub>" in html
    assert 'class="hl-pos-5"' in html  # the most decisive word, by occlusion
    assert html.count('class="card ticket"') == 2


def test_dashboard_shows_trends_routes_and_champion(service: Service) -> None:
    decisions = service.classify("hello there", "security incident", "vpn issue")
    login(service, service.analyst)
    csrf = csrf_from(service.client.get("/queue").text)
    _decide_form(service, decisions[0], csrf)
    html = service.client.get("/dashboard").text
    assert 'id="chart-overrides"' in html and 'id="chart-routes"' in html
    assert 'class="s-R2"' in html
    assert 'id="stat-corrections">1<' in html and 'id="stat-decisions">3<' in html
    assert "No champion yet" in html


def test_logout_needs_csrf_and_ends_session(service: Service) -> None:
    login(service, service.analyst)
    csrf = csrf_from(service.client.get("/queue").text)
    assert service.client.post("/logout", data={"csrf_token": "x"}).status_code == 403
    response = service.client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert response.status_code == 303
    assert service.client.get("/queue", follow_redirects=False).status_code == 303


# -- CLI ------------------------------------------------------------------------------------


def test_cli_token_create_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "tunegate.yaml"
    config.write_text(starter_yaml(), encoding="utf-8")
    assert (
        main(
            ["token", "create", "--role", "analyst", "--name", "carol", "-c", str(config), "--json"]
        )
        == 0
    )
    created = json.loads(capsys.readouterr().out)
    token = created["token"]
    assert token.startswith("tg_") and created["role"] == "analyst"
    assert main(["token", "list", "-c", str(config), "--json"]) == 0
    listed = capsys.readouterr().out
    assert "carol" in listed and token not in listed
    with Store(f"sqlite:///{tmp_path / 'tunegate.db'}") as store:
        assert verify_token(store, token) is not None
    assert main(["token", "revoke", created["id"], "-c", str(config)]) == 0
    with Store(f"sqlite:///{tmp_path / 'tunegate.db'}") as store:
        assert verify_token(store, token) is None
    assert main(["token", "create", "--role", "root", "--name", "x", "-c", str(config)]) == 2
    assert main(["token", "revoke", "nobody", "-c", str(config)]) == 1


def test_attribution_segments_map_words_back_onto_the_text() -> None:
    from tunegate.server._highlight import attribution_segments

    text = "My VPN <b>drops</b>, again!"
    segments = attribution_segments(text, ["my", "vpn", "drops", "again"], [0.1, 0.6, -0.3, 0.0])
    assert "".join(s.text for s in segments) == text  # nothing lost or reordered
    weights = {s.text: s.weight for s in segments if s.weight}
    assert weights == {"My": pytest.approx(1 / 6), "VPN": 1.0, "drops": -0.5}
    assert [s.css_class for s in segments if s.text == "VPN"] == ["hl-pos-5"]


@pytest.mark.slow
@pytest.mark.parametrize("highlights", ["occlusion", "attribution"])
def test_real_zero_shot_service_with_highlights(
    workflow: Workflow, tmp_path: Path, encoder_path: str, highlights: str
) -> None:
    """No injected classifier: the service builds the zero-shot model (no champion yet) and
    the queue page highlights words with occlusion or Integrated Gradients."""
    store = Store(f"sqlite:///{tmp_path / 'real.db'}")
    token, _ = create_token(store, role="analyst", name="alice")
    settings = ServerSettings(secret_key=SECRET, highlights=highlights)  # type: ignore[arg-type]
    app = create_app(workflow, store=store, settings=settings)
    svc = Service(TestClient(app), store, token, token, app)
    with svc.client:
        texts = [
            "phishing email asked for my password and MFA code, I clicked the link",
            "help",
            "the vpn keeps disconnecting when I work from home",
        ]
        decisions = svc.classify(*texts)
        assert decisions[0]["label"] == "security_incident"
        assert decisions[0]["route"] == "escalate"
        assert decisions[2]["label"] == "vpn_issue"
        login(svc, token)
        html = svc.client.get("/queue").text
        assert "phishing" in html
        assert "hl-pos-5" in html  # some word carries the strongest support
    store.close()
