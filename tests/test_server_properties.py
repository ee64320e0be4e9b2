"""Property: whatever JSON a client sends to ``/v1/classify`` and ``/v1/overrides``, the answer
is never a 5xx, its body is JSON, and nothing is stored from a refused request."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _server_support import Service, make_service
from tunegate.config import parse_workflow, starter_yaml

# every code point, lone surrogates included (json.dumps escapes them as \udXXX)
_chars = st.sampled_from(["\ud800", "\udfff", "\x00", "a", " ", "\u00e9"]) | st.characters(
    codec=None, exclude_categories=()
)
_text = st.text(_chars, max_size=40)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | _text
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=20,
)
_deep = st.integers(min_value=1, max_value=400).map(lambda n: json.loads("[" * n + "]" * n))
_deep_object = st.integers(min_value=1, max_value=400).map(
    lambda n: json.loads('{"a":' * n + "{}" + "}" * n)
)
_timestamps = (
    st.sampled_from(
        [
            "0001-01-01T00:30:00+01:00",
            "9999-12-31T23:30:00-01:00",
            "2026-02-30T00:00:00Z",
            "2026-01-01T00:00:00+23:59",
            "2026-01-01T00:00:00",
            "not a time",
            "",
        ]
    )
    | _text
)
_any = _json | _deep | _timestamps


def _ticket() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"text": _text | _any},
        optional={"id": _any, "created_at": _timestamps | _any, "metadata": _any | _deep_object},
    )


_classify_bodies = (
    _ticket() | st.fixed_dictionaries({"tickets": st.lists(_ticket(), max_size=3) | _any}) | _any
)
_override_bodies = (
    st.fixed_dictionaries(
        {
            "ticket_id": _text | _any,
            "final_label": st.sampled_from(["hardware", "vpn_issue"]) | _text,
            "reason_code": st.sampled_from(["R1", "R2", "R9"]) | _any,
        },
        optional={"decision_id": _any, "note": _text | _any, "supersedes": _any},
    )
    | _any
)


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    workflow = parse_workflow(starter_yaml())
    service = make_service(workflow, Path(tmp_path_factory.mktemp("props")) / "p.db")
    service.client = TestClient(service.app, raise_server_exceptions=False)
    with service.client:
        yield service
    service.store.close()


def _send(svc: Service, path: str, body: Any, key: str | None = None) -> Any:
    headers = {**svc.auth(svc.analyst), "content-type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    raw = json.dumps(body, ensure_ascii=True, allow_nan=True).encode()
    response = svc.client.post(path, content=raw, headers=headers)
    assert response.status_code < 500, response.text
    assert "Traceback" not in response.text
    response.json()  # always JSON
    return response


_FAST = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@_FAST
@given(body=_classify_bodies)
def test_classify_never_answers_5xx(svc: Service, body: Any) -> None:
    before = len(svc.store.decisions())
    response = _send(svc, "/v1/classify", body)
    if response.status_code != 200:
        assert len(svc.store.decisions()) == before  # a refused request stores nothing


@_FAST
@given(body=_override_bodies, key=st.none() | st.text(_chars, max_size=10))
def test_overrides_never_answer_5xx(svc: Service, body: Any, key: str | None) -> None:
    # httpx refuses a header value it cannot encode: such a request never reaches the server
    with contextlib.suppress(UnicodeEncodeError):
        _send(svc, "/v1/overrides", body, key)


@_FAST
@given(
    label=st.sampled_from(["hardware", "vpn_issue", "nope"]),
    note=_text,
    supersede=st.booleans(),
    key=st.none() | st.sampled_from(["k1", "k2"]),
)
def test_overrides_of_a_real_decision_never_answer_5xx(
    svc: Service, label: str, note: str, supersede: bool, key: str | None
) -> None:
    decisions = [d for d in svc.store.decisions() if d.ticket_id == "prop-ticket"]
    if not decisions:
        _send(svc, "/v1/classify", {"text": "hello there", "id": "prop-ticket"})
        decisions = [d for d in svc.store.decisions() if d.ticket_id == "prop-ticket"]
    body: dict[str, Any] = {"ticket_id": "prop-ticket", "final_label": label, "reason_code": "R1"}
    body["note"] = note
    if supersede:
        live = [o.id for o in svc.store.overrides() if o.review_status.value == "pending"]
        body["supersedes"] = live[-1] if live else "ovr_none"
    response = _send(svc, "/v1/overrides", body, key)
    assert response.status_code in (200, 201, 404, 409, 422), response.text
