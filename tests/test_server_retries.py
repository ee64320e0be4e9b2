"""Writes that can be retried and logins that do not slow down (issue 18): the
``Idempotency-Key`` of ``POST /v1/classify``, the queue form's per-card nonce, and sessions
stored so that a login is one insert and one bounded purge."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from _server_support import SECRET, Service, csrf_from, login, make_service
from tunegate.config import Workflow
from tunegate.documents import ClassifyReceipt, WebSession
from tunegate.server import create_token
from tunegate.server._auth import (
    SessionSigner,
    open_session,
    purge_expired_sessions,
    session_principal,
    verify_token,
)
from tunegate.store import Store
from tunegate.store._documents import Documents


@pytest.fixture
def svc(workflow: Workflow, tmp_path: Path) -> Iterator[Service]:
    service = make_service(workflow, tmp_path / "svc.db")
    service.client = TestClient(service.app, raise_server_exceptions=False)
    with service.client:
        yield service
    service.store.close()


def _classify(svc: Service, body: dict[str, Any], key: str | None, token: str = "") -> Any:
    headers = svc.auth(token or svc.analyst)
    if key is not None:
        headers["Idempotency-Key"] = key
    return svc.client.post("/v1/classify", json=body, headers=headers)


# -- Idempotency-Key on POST /v1/classify ----------------------------------------------------

BATCH = {"tickets": [{"text": "vpn drops again"}, {"text": "laptop screen is broken"}]}


def test_a_classify_retry_with_the_same_key_writes_nothing_twice(svc: Service) -> None:
    first = _classify(svc, BATCH, "batch-1")
    again = _classify(svc, BATCH, "batch-1")
    assert first.status_code == 200 and again.status_code == 200, again.text
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["decisions"] == first.json()["decisions"]
    assert len(svc.store.tickets()) == 2 and len(svc.store.decisions()) == 2
    # a third send, one ticket alone, is a different request
    assert _classify(svc, {"text": "vpn drops again"}, "batch-1").status_code == 409


def test_the_same_key_with_another_body_is_409_and_says_why(svc: Service) -> None:
    assert _classify(svc, {"text": "vpn drops again"}, "k-2").status_code == 200
    other = _classify(svc, {"text": "printer is out of toner"}, "k-2")
    assert other.status_code == 409
    body = other.json()
    assert "already used for a different request" in body["detail"]
    assert body["error"] == "conflict"
    assert len(svc.store.decisions()) == 1


def test_classify_keys_are_scoped_per_token(svc: Service) -> None:
    other, _ = create_token(svc.store, role="analyst", name="bob")
    mine = _classify(svc, {"text": "vpn drops again"}, "shared")
    theirs = _classify(svc, {"text": "printer is out of toner"}, "shared", token=other)
    assert mine.status_code == 200 and theirs.status_code == 200, theirs.text
    assert mine.json()["decisions"][0]["id"] != theirs.json()["decisions"][0]["id"]
    assert len(svc.store.decisions()) == 2


def test_without_a_key_every_classify_is_new(svc: Service) -> None:
    _classify(svc, {"text": "vpn drops again"}, None)
    _classify(svc, {"text": "vpn drops again"}, None)
    assert len(svc.store.decisions()) == 2
    assert svc.store.documents(ClassifyReceipt).items() == []


def test_a_request_cut_off_after_its_receipt_completes_on_retry(svc: Service) -> None:
    first = _classify(svc, BATCH, "cut")
    decisions = first.json()["decisions"]
    # as if the process died after writing the receipt and tickets but before the decisions
    with svc.store.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM decisions")
    again = _classify(svc, BATCH, "cut")
    assert again.status_code == 200, again.text
    assert [d["id"] for d in again.json()["decisions"]] == [d["id"] for d in decisions]
    assert len(svc.store.decisions()) == 2 and len(svc.store.tickets()) == 2
    assert _classify(svc, BATCH, "cut").headers["Idempotent-Replayed"] == "true"


@pytest.mark.parametrize("key", ["", "has space", "x" * 201, "tab\tkey"])
def test_a_malformed_classify_key_is_a_422(svc: Service, key: str) -> None:
    response = _classify(svc, {"text": "vpn drops again"}, key)
    assert response.status_code == 422 and "idempotency-key" in response.text.lower()
    assert svc.store.decisions() == []


# -- the queue page's forms record once ------------------------------------------------------


def test_a_resubmitted_queue_form_records_one_override(svc: Service) -> None:
    svc.classify("nothing matches here")  # uniform probabilities: routed to clarify
    login(svc, svc.analyst)
    page = svc.client.get("/queue")
    form = re.search(
        r'<form method="post" action="/queue/decide" class="decide override">(.*?)</form>',
        page.text,
        re.S,
    )
    assert form is not None
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form.group(1)))
    assert fields.get("form_nonce"), "each queue form carries a nonce"
    data = {**fields, "final_label": "hardware", "reason_code": "R2", "note": ""}
    first = svc.client.post("/queue/decide", data=data, follow_redirects=False)
    again = svc.client.post("/queue/decide", data=data, follow_redirects=False)  # F5 on a POST
    assert first.status_code == 303 and again.status_code == 303, again.text
    assert first.headers["location"] == again.headers["location"]
    assert len(svc.store.overrides()) == 1 and len(svc.store.audit_log("override")) == 1


def test_two_renders_of_a_card_have_different_nonces(svc: Service) -> None:
    svc.classify("nothing matches here")
    login(svc, svc.analyst)
    pattern = r'name="form_nonce" value="([^"]+)"'
    one = re.findall(pattern, svc.client.get("/queue").text)
    two = re.findall(pattern, svc.client.get("/queue").text)
    assert len(one) == 2 and len(set(one)) == 2 and not set(one) & set(two)


# -- sessions: a login does not read every stored session ------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(f"sqlite:///{tmp_path / 's.db'}") as s:
        yield s


def test_login_reads_no_stored_session(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    token, _ = create_token(store, role="analyst", name="alice")
    principal = verify_token(store, token)
    assert principal is not None
    signer = SessionSigner(SECRET)
    for _ in range(300):
        open_session(store, signer, principal)
    loaded: list[str] = []
    keys_seen: list[int] = []
    original_load = Documents._load
    original_keys = Documents.keys

    def counting_load(self: Documents[Any], key: str, payload: Any) -> Any:
        loaded.append(key)
        return original_load(self, key, payload)

    def counting_keys(self: Documents[Any], **kwargs: Any) -> list[str]:
        found = original_keys(self, **kwargs)
        keys_seen.append(len(found))
        return found

    monkeypatch.setattr(Documents, "_load", counting_load)
    monkeypatch.setattr(Documents, "keys", counting_keys)
    cookie = open_session(store, signer, principal)
    assert loaded == []  # the 300 live sessions were not read
    assert all(n <= 16 for n in keys_seen)
    assert session_principal(store, signer, cookie) is not None
    assert len(loaded) == 2  # the one session the cookie names, and its token


def test_expired_sessions_are_purged_in_bounded_batches(store: Store) -> None:
    token, _ = create_token(store, role="analyst", name="alice")
    principal = verify_token(store, token)
    assert principal is not None
    signer = SessionSigner(SECRET)
    live = open_session(store, signer, principal)
    sessions = store.documents(WebSession)
    past = int(time.time()) - 10
    [(_, template)] = sessions.items()
    for n in range(40):
        sessions.put(f"{past - n:012d}:{n:064x}", template.model_copy(update={"expires_at": 1.0}))
    assert purge_expired_sessions(store, limit=16) == 16
    assert len(sessions.keys()) == 1 + 24
    for _ in range(2):
        open_session(store, signer, principal)  # each login drains up to 16 more
    assert len(sessions.keys()) == 1 + 2  # the live ones only
    assert session_principal(store, signer, live) is not None


def test_a_cookie_naming_a_session_id_of_the_old_shape_is_refused(svc: Service) -> None:
    signer = SessionSigner(SECRET)
    svc.client.cookies.set("tg_session", signer.sign_session("no-expiry-prefix"))
    assert svc.client.get("/queue", follow_redirects=False).status_code == 303
    page = svc.client.get("/login")
    assert csrf_from(page.text)
