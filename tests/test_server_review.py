"""The ``/review`` page (issue 25, item 4): imported examples waiting for review, accepted,
relabelled or rejected through :func:`tunegate.serving.review_example`; CSRF-protected,
role-checked, escaped, and recorded once when a form is resubmitted."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from _server_support import Service, csrf_from, login, make_service
from tunegate.config import Workflow
from tunegate.errors import InputError, NotFoundError
from tunegate.records import Example, ReviewStatus
from tunegate.serving import ExampleVerdict, open_example_review, review_example
from tunegate.train import build_dataset


class BagOfWords:
    """Deterministic hashed bag-of-words embedder for the dataset's near-duplicate check."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % 64] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def pending(n: int = 3) -> list[Example]:
    texts = [
        "vpn keeps dropping",
        "<script>window.pwned=1</script> printer jam",
        "laptop will not boot",
    ]
    labels = ["vpn_issue", "hardware", "vpn_issue"]
    return [Example(id=f"ex_{i}", text=texts[i], label=labels[i]) for i in range(n)]


@pytest.fixture
def svc(workflow: Workflow, tmp_path: Path) -> Iterator[Service]:
    service = make_service(workflow, tmp_path / "svc.db")
    service.client = TestClient(service.app, raise_server_exceptions=False)
    service.store.add_examples(pending())
    with service.client:
        yield service
    service.store.close()


def _forms(html: str) -> dict[tuple[str, str], dict[str, str]]:
    """(example id, verdict) -> the hidden fields of that form."""
    out = {}
    for body in re.findall(
        r'<form method="post" action="/review/decide"[^>]*>(.*?)</form>', html, re.S
    ):
        fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', body))
        out[(fields["example_id"], fields["verdict"])] = fields
    return out


def test_the_page_lists_pending_examples_escaped(svc: Service) -> None:
    assert svc.client.get("/review", follow_redirects=False).status_code == 303  # log in first
    login(svc, svc.analyst)
    page = svc.client.get("/review")
    assert page.status_code == 200
    assert re.search(r'id="review-count">3<', page.text)
    assert "<script>window.pwned" not in page.text
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt; printer jam" in page.text
    assert set(_forms(page.text)) == {
        (f"ex_{i}", v) for i in range(3) for v in ("accept", "relabel", "reject")
    }
    assert 'href="/review"' in svc.client.get("/queue").text  # reachable from the nav


def test_accept_relabel_reject_through_the_page(svc: Service, workflow: Workflow) -> None:
    login(svc, svc.analyst)
    forms = _forms(svc.client.get("/review").text)
    ok = svc.client.post("/review/decide", data=forms[("ex_0", "accept")], follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"] == "/review?done=ex_0"
    relabel = {**forms[("ex_1", "relabel")], "label": "printer_issue"}
    if "printer_issue" not in workflow.labels:
        relabel["label"] = next(n for n in workflow.label_names if n != "hardware")
    assert svc.client.post("/review/decide", data=relabel).status_code == 200
    # the same relabel form sent again: recorded once
    assert svc.client.post("/review/decide", data=relabel).status_code == 200
    assert svc.client.post("/review/decide", data=forms[("ex_2", "reject")]).status_code == 200
    by_id = {e.id: e for e in svc.store.examples()}
    assert (
        by_id["ex_0"].review_status == ReviewStatus.REVIEWED and by_id["ex_0"].reviewer == "alice"
    )
    assert by_id["ex_1"].review_status == ReviewStatus.REJECTED
    assert by_id["ex_2"].review_status == ReviewStatus.REJECTED
    [copy] = [e for e in by_id.values() if e.id.startswith("ex_r")]
    assert (copy.text, copy.label, copy.review_status) == (
        by_id["ex_1"].text,
        relabel["label"],
        ReviewStatus.REVIEWED,
    )
    assert len(svc.store.examples()) == 4
    assert [r["details"]["verdict"] for r in svc.store.audit_log("example_review")] == [
        "accept",
        "relabel",
        "reject",
    ]
    page = svc.client.get("/review")
    assert 'id="review-empty"' in page.text and re.search(r'id="review-count">0<', page.text)


def test_a_review_post_needs_a_session_and_its_csrf_token(svc: Service) -> None:
    data = {"example_id": "ex_0", "verdict": "accept", "csrf_token": "x"}
    assert svc.client.post("/review/decide", data=data).status_code == 401
    login(svc, svc.analyst)
    assert svc.client.post("/review/decide", data=data).status_code == 403
    other = {**data, "csrf_token": csrf_from(svc.client.get("/review").text)}
    assert svc.client.post("/review/decide", data={**other, "verdict": "maybe"}).status_code == 422
    assert (
        svc.client.post("/review/decide", data={**other, "example_id": "ex_9"}).status_code == 404
    )
    assert all(e.review_status == ReviewStatus.PENDING for e in svc.store.examples())


def test_the_review_use_case(svc: Service, workflow: Workflow) -> None:
    store = svc.store
    review = open_example_review(store, limit=2)
    assert [e.id for e in review.examples] == ["ex_0", "ex_1"] and review.total == 3
    with pytest.raises(InputError, match="relabel needs one of the workflow's labels"):
        review_example(workflow, store, "ex_0", "relabel", reviewer="ana", label="nope")
    with pytest.raises(InputError, match="reviewer"):
        review_example(workflow, store, "ex_0", "accept", reviewer=" ")
    with pytest.raises(NotFoundError):
        review_example(workflow, store, "ex_x", "accept", reviewer="ana")
    done = review_example(workflow, store, "ex_0", ExampleVerdict.REJECT, reviewer="ana")
    assert done.example.review_status == ReviewStatus.REJECTED
    again = review_example(workflow, store, "ex_0", "reject", reviewer="ana")
    assert again.example.id == "ex_0"
    with pytest.raises(InputError, match="already rejected"):
        review_example(workflow, store, "ex_0", "accept", reviewer="ana")
    # relabelled to its own label: an accept
    same = review_example(workflow, store, "ex_2", "relabel", reviewer="ana", label="vpn_issue")
    assert same.verdict is ExampleVerdict.ACCEPT and same.example.id == "ex_2"


def test_reviewing_the_last_pending_example_unblocks_the_dataset(
    svc: Service, workflow: Workflow
) -> None:
    for example_id in ("ex_0", "ex_1"):
        review_example(workflow, svc.store, example_id, "accept", reviewer="ana")
    with pytest.raises(InputError, match=r"1 examples are not reviewed.*/review page"):
        build_dataset(svc.store, workflow, encoder=BagOfWords(), allow_shortfall=True)
    review_example(workflow, svc.store, "ex_2", "reject", reviewer="ana")
    dataset = build_dataset(svc.store, workflow, encoder=BagOfWords(), allow_shortfall=True)
    assert len(dataset.examples) == 2
