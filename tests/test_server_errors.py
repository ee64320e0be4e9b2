"""Every 4xx body of the API tells the client what to do and nothing about the server
(issue 18): no exception class names, no traceback, no SQL, no store URL, no file paths.

One table of requests reaches each error path of every router; the same checks run on each
answer. A library error whose message names a path or the store is scrubbed by the handler
(``public_message``), which the last tests check directly."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from _server_support import Service, make_service
from tunegate.config import Workflow
from tunegate.errors import InputError, NotFoundError
from tunegate.server import ServerSettings
from tunegate.server._app import public_message

SECRET = b"test-secret-key-0123456789abcdef"

INTERNALS = [
    re.compile(r"\b[A-Z][A-Za-z]*(?:Error|Exception)\b"),  # class names: NotFoundError, ...
    re.compile(r"Traceback|File \"|line \d+, in "),
    re.compile(r"\b(?:SELECT|INSERT|UPDATE|DELETE)\b.*\b(?:FROM|INTO|SET|WHERE)\b"),
    re.compile(r"sqlite|postgres(?:ql)?://|psycopg", re.I),
    re.compile(r"site-packages|\.py\b|/home/|/tmp/|/usr/|/work/"),
]


def _leaks(text: str, tmp: Path) -> list[str]:
    found = [p.pattern for p in INTERNALS if p.search(text)]
    if str(tmp) in text:
        found.append("the test's directory")
    return found


@pytest.fixture
def svc(workflow: Workflow, tmp_path: Path) -> Iterator[Service]:
    service = make_service(
        workflow, tmp_path / "svc.db", ServerSettings(secret_key=SECRET, max_batch=3)
    )
    service.client = TestClient(service.app, raise_server_exceptions=False)
    with service.client:
        yield service
    service.store.close()


Call = Callable[[Service], Any]


def _json(method: str, path: str, body: Any = None, who: str = "analyst", **h: str) -> Call:
    def call(svc: Service) -> Any:
        headers = {**(svc.auth(getattr(svc, who)) if who else {}), **h}
        return svc.client.request(method, path, json=body, headers=headers)

    return call


def _raw(path: str, raw: bytes, **h: str) -> Call:
    def call(svc: Service) -> Any:
        headers = {**svc.auth(svc.analyst), "content-type": "application/json", **h}
        return svc.client.post(path, content=raw, headers=headers)

    return call


def _with_decision(then: Callable[[Service, dict[str, Any]], Any]) -> Call:
    def call(svc: Service) -> Any:
        [decision] = svc.classify("nothing matches here")
        return then(svc, decision)

    return call


def _second_override(svc: Service, d: dict[str, Any]) -> Any:
    body = {"ticket_id": d["ticket_id"], "final_label": "hardware", "reason_code": "R2"}
    assert svc.client.post("/v1/overrides", json=body, headers=svc.auth(svc.analyst)).is_success
    return svc.client.post("/v1/overrides", json=body, headers=svc.auth(svc.analyst))


def _reused_key(svc: Service) -> Any:
    h = {**svc.auth(svc.analyst), "Idempotency-Key": "k"}
    svc.client.post("/v1/classify", json={"text": "a"}, headers=h)
    return svc.client.post("/v1/classify", json={"text": "b"}, headers=h)


def _bad_csrf(svc: Service) -> Any:
    svc.client.get("/login")
    return svc.client.post("/login", data={"token": svc.analyst, "csrf_token": "forged"})


CASES: list[tuple[str, Call, int]] = [
    ("no token", _json("POST", "/v1/classify", {"text": "x"}, who=""), 401),
    ("bad token", _json("GET", "/v1/queue", Authorization="Bearer tg_nope"), 401),
    ("wrong scheme", _json("GET", "/v1/queue", who="", Authorization="Basic eDp5"), 401),
    ("analyst on admin route", _json("GET", "/v1/tokens"), 403),
    ("analyst promotes", _json("POST", "/v1/models/v1/promote", {}), 403),
    ("unknown route", _json("GET", "/v1/nothing-here"), 404),
    ("wrong method", _json("GET", "/v1/classify"), 405),
    ("unknown version", _json("POST", "/v1/models/nope/promote", {}, who="admin"), 404),
    ("unknown token", _json("POST", "/v1/tokens/tok_nope/revoke", who="admin"), 404),
    (
        "unknown ticket",
        _json(
            "POST",
            "/v1/overrides",
            {"ticket_id": "t", "final_label": "hardware", "reason_code": "R1"},
        ),
        404,
    ),
    (
        "unknown decision",
        _with_decision(
            lambda svc, d: svc.client.post(
                "/v1/overrides",
                json={
                    "ticket_id": d["ticket_id"],
                    "decision_id": "dec_nope",
                    "final_label": "hardware",
                    "reason_code": "R1",
                },
                headers=svc.auth(svc.analyst),
            )
        ),
        404,
    ),
    (
        "label not in the workflow",
        _with_decision(
            lambda svc, d: svc.client.post(
                "/v1/overrides",
                json={"ticket_id": d["ticket_id"], "final_label": "nope", "reason_code": "R1"},
                headers=svc.auth(svc.analyst),
            )
        ),
        422,
    ),
    ("second open override", _with_decision(_second_override), 409),
    ("classify key reused", _reused_key, 409),
    ("rollback without champion", _json("POST", "/v1/rollback", {}, who="admin"), 409),
    ("not JSON", _raw("/v1/classify", b"{nope"), 422),
    ("wrong JSON type", _raw("/v1/classify", b"[1, 2]"), 422),
    ("extra field", _json("POST", "/v1/classify", {"text": "x", "drop": "table"}), 422),
    ("blank text", _json("POST", "/v1/classify", {"text": "   "}), 422),
    ("batch over limit", _json("POST", "/v1/classify", {"tickets": [{"text": "x"}] * 4}), 422),
    (
        "duplicate ids in batch",
        _json("POST", "/v1/classify", {"tickets": [{"text": "x", "id": "a"}] * 2}),
        422,
    ),
    ("bad queue limit", _json("GET", "/v1/queue?limit=0"), 422),
    ("bad route filter", _json("GET", "/v1/queue?route=nowhere"), 422),
    ("bad weeks", _json("GET", "/v1/metrics?weeks=-1"), 422),
    ("body too large", _raw("/v1/classify", b'{"text": "' + b"x" * 1_100_000 + b'"}'), 413),
    ("bad content-length", _raw("/v1/classify", b"{}", **{"content-length": "abc"}), 400),
    ("bad token role", _json("POST", "/v1/tokens", {"role": "god", "name": "x"}, who="admin"), 422),
    ("login CSRF", _bad_csrf, 403),
    ("page post without session", lambda svc: svc.client.post("/queue/decide", data={}), 422),
    ("dashboard bad date", lambda svc: _dashboard(svc, "/dashboard?from=2025-13-45"), 422),
]


def _dashboard(svc: Service, url: str) -> Any:
    from _server_support import login

    login(svc, svc.analyst)
    return svc.client.get(url)


@pytest.mark.parametrize(("name", "call", "status"), CASES, ids=[c[0] for c in CASES])
def test_an_error_body_names_no_internals(
    svc: Service, tmp_path: Path, name: str, call: Call, status: int
) -> None:
    response = call(svc)
    assert response.status_code == status, (name, response.status_code, response.text)
    assert not _leaks(response.text, tmp_path), (
        name,
        _leaks(response.text, tmp_path),
        response.text,
    )
    body = response.json()
    detail = body["detail"]
    text = detail if isinstance(detail, str) else str(detail)
    assert text.strip(), f"{name}: an empty message tells the client nothing"
    if "error" in body:
        assert re.fullmatch(r"[a-z_]+", body["error"]), body["error"]


def test_a_library_message_naming_the_store_or_a_path_is_scrubbed(
    svc: Service, tmp_path: Path
) -> None:
    db = svc.store.sqlite_path
    assert db is not None
    raw = f"no ticket with id 'x' in sqlite:///{db}; see {Path.cwd() / 'notes.txt'}"
    clean = public_message(raw, svc.store)
    assert str(tmp_path) not in clean and "sqlite" not in clean and str(Path.cwd()) not in clean
    assert clean.startswith("no ticket with id 'x' in the store; see ./notes.txt")


def test_a_handler_answer_for_a_library_error_is_scrubbed(svc: Service, tmp_path: Path) -> None:
    """The route raises the library's own message (which names the store) and the client
    sees the scrubbed one."""

    def boom(*_: Any, **__: Any) -> Any:
        raise NotFoundError(f"no ticket with id 't' in {svc.store.engine.url}")

    svc.app.state.tunegate.record_override = boom
    r = svc.client.post(
        "/v1/overrides",
        json={"ticket_id": "t", "final_label": "hardware", "reason_code": "R1"},
        headers=svc.auth(svc.analyst),
    )
    assert r.status_code == 404 and r.json() == {
        "detail": "no ticket with id 't' in the store",
        "error": "not_found",
    }
    svc.app.state.tunegate.record_override = lambda *a, **k: (_ for _ in ()).throw(
        InputError(f"cannot read {tmp_path / 'x.yaml'}")
    )
    r = svc.client.post(
        "/v1/overrides",
        json={"ticket_id": "t", "final_label": "hardware", "reason_code": "R1"},
        headers=svc.auth(svc.analyst),
    )
    assert r.status_code == 422 and not _leaks(r.text, tmp_path), r.text
