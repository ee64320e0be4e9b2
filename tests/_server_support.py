"""Shared pieces of the service tests: a tiny deterministic classifier, a store, tokens."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tunegate.config import Workflow
from tunegate.server import ServerSettings, create_app, create_token
from tunegate.store import Store

SECRET = b"test-secret-key-0123456789abcdef"


class KeywordClassifier:
    """Scores each label by how many words of its name occur in the text (softmax over
    3 x count). A text with no such word gets the uniform row (routed to clarify)."""

    version = "keyword-1"

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = list(labels)
        self._words = [set(name.split("_")) for name in self.labels]

    def predict_proba(self, texts: Sequence[str], metadata: Any = None) -> np.ndarray:
        rows = []
        for text in texts:
            words = set(re.findall(r"[a-z]+", text.lower()))
            scores = np.array([3.0 * len(words & w) for w in self._words])
            e = np.exp(scores - scores.max())
            rows.append(e / e.sum())
        return np.asarray(rows, dtype=np.float64).reshape(len(texts), len(self.labels))


@dataclass
class Service:
    client: TestClient
    store: Store
    analyst: str
    admin: str
    app: Any

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def classify(self, *texts: str) -> list[dict[str, Any]]:
        body = {"tickets": [{"text": t} for t in texts]}
        response = self.client.post("/v1/classify", json=body, headers=self.auth(self.analyst))
        assert response.status_code == 200, response.text
        decisions: list[dict[str, Any]] = response.json()["decisions"]
        return decisions


def make_service(workflow: Workflow, db: Path, settings: ServerSettings | None = None) -> Service:
    store = Store(f"sqlite:///{db}")
    analyst, _ = create_token(store, role="analyst", name="alice")
    admin, _ = create_token(store, role="admin", name="root")
    app = create_app(
        workflow,
        store=store,
        classifier=KeywordClassifier(workflow.label_names),
        settings=settings or ServerSettings(secret_key=SECRET),
    )
    return Service(TestClient(app), store, analyst, admin, app)


@pytest.fixture
def service(workflow: Workflow, tmp_path: Path) -> Iterator[Service]:
    svc = make_service(workflow, tmp_path / "svc.db")
    with svc.client:
        yield svc
    svc.store.close()


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def login(svc: Service, token: str) -> None:
    page = svc.client.get("/login")
    response = svc.client.post(
        "/login",
        data={"token": token, "csrf_token": csrf_from(page.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
