"""The analyst pages in headless Chromium: log in, work the queue, override, see the dashboard.

Screenshots go to tests/artifacts/ (gitignored).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from _browser import CHROMIUM_FLAGS
from _server_support import SECRET, KeywordClassifier
from tunegate.config import Workflow
from tunegate.server import ServerSettings, create_app, create_token
from tunegate.store import Store

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
FLAGS = CHROMIUM_FLAGS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live(workflow: Workflow, tmp_path: Path) -> Iterator[tuple[str, Store, str]]:
    uvicorn = pytest.importorskip("uvicorn")
    store = Store(f"sqlite:///{tmp_path / 'browser.db'}")
    token, _ = create_token(store, role="analyst", name="alice")
    app = create_app(
        workflow,
        store=store,
        classifier=KeywordClassifier(workflow.label_names),
        settings=ServerSettings(secret_key=SECRET),
    )
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", store, token
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        store.close()


def test_analyst_works_the_queue_and_sees_the_dashboard(
    live: tuple[str, Store, str], chromium_path: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, store, token = live
    import httpx

    tickets = [
        "hello, something is odd",
        "<b>bold</b> <script>window.pwned=1</script> hi",
        "security incident: phishing mail",
        "my vpn has an issue",
    ]
    response = httpx.post(
        f"{base}/v1/classify",
        json={"tickets": [{"text": t} for t in tickets]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=FLAGS)
        page = browser.new_page()
        page.goto(f"{base}/queue")
        expect(page).to_have_url(f"{base}/login")
        page.fill("#token", "tg_wrong")
        page.click("#login-submit")
        expect(page.locator(".error")).to_contain_text("not valid")
        page.fill("#token", token)
        page.click("#login-submit")
        expect(page).to_have_url(f"{base}/queue")
        expect(page.locator("#queue-count")).to_have_text("3")  # 2 clarify + 1 escalate
        assert page.evaluate("window.pwned") is None  # the <script> ticket did not run
        expect(page.locator("article.ticket").nth(1)).to_contain_text("<script>")
        page.screenshot(path=str(ARTIFACTS / "queue.png"), full_page=True)

        # one-click confirm of the first ticket
        first = page.locator("article.ticket").first
        first.locator(".btn-confirm").click()
        expect(page.locator("#queue-count")).to_have_text("2")
        expect(page.locator("article.ticket")).to_have_count(2)

        # override the (former) second ticket with a reason code and a note
        card = page.locator("article.ticket").first
        card.locator(".sel-label").select_option("email_issue")
        card.locator(".sel-reason").select_option("R2")
        card.locator(".note").fill("user means Outlook")
        card.locator(".btn-override").click()
        expect(page.locator("#queue-count")).to_have_text("1")
        expect(page.locator("article.ticket")).to_have_count(1)

        page.click("#nav-dashboard")
        expect(page).to_have_url(f"{base}/dashboard")
        expect(page.locator("#stat-corrections")).to_have_text("1")
        expect(page.locator("#stat-confirmations")).to_have_text("1")
        expect(page.locator("#recent-overrides")).to_contain_text("user means Outlook")
        expect(page.locator("#chart-overrides rect.s-R2")).to_have_count(1)
        expect(page.locator("#chart-routes rect.s-escalate")).to_have_count(1)
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

        page.reload()
        page.goto(f"{base}/queue")
        expect(page.locator("#queue-count")).to_have_text("1")
        browser.close()

    overrides = store.overrides()
    assert len(overrides) == 2
    corrected = [o for o in overrides if o.final_label != o.model_label]
    assert [(o.final_label, o.reason_code.value, o.analyst) for o in corrected] == [
        ("email_issue", "R2", "alice")
    ]
    assert len(store.audit_log("override")) == 2


def test_analyst_reviews_an_imported_example_and_unblocks_the_dataset(
    live: tuple[str, Store, str], workflow: Workflow, chromium_path: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    from test_server_review import BagOfWords
    from tunegate.errors import InputError
    from tunegate.records import Example, ReviewStatus
    from tunegate.train import build_dataset

    base, store, token = live
    store.add_examples(
        [
            Example(
                id="ex_ok",
                text="vpn keeps dropping",
                label="vpn_issue",
                review_status=ReviewStatus.REVIEWED,
                reviewer="ana",
            ),
            Example(id="ex_new", text="<i>my laptop</i> will not boot", label="vpn_issue"),
        ]
    )
    with pytest.raises(InputError, match="not reviewed"):
        build_dataset(store, workflow, encoder=BagOfWords(), allow_shortfall=True)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=FLAGS)
        page = browser.new_page()
        page.goto(f"{base}/login")
        page.fill("#token", token)
        page.click("#login-submit")
        page.click("#nav-review")
        expect(page).to_have_url(f"{base}/review")
        expect(page.locator("#review-count")).to_have_text("1")
        card = page.locator("article.example").first
        expect(card.locator(".text")).to_have_text("<i>my laptop</i> will not boot")  # as text
        card.locator(".sel-label").select_option("hardware")
        page.screenshot(path=str(ARTIFACTS / "review.png"), full_page=True)
        card.locator(".btn-relabel").click()
        expect(page.locator("#flash")).to_be_visible()
        expect(page.locator("#review-count")).to_have_text("0")
        expect(page.locator("#review-empty")).to_be_visible()
        browser.close()
    dataset = build_dataset(store, workflow, encoder=BagOfWords(), allow_shortfall=True)
    assert sorted((e.text, e.label) for e in dataset.examples) == [
        ("<i>my laptop</i> will not boot", "hardware"),
        ("vpn keeps dropping", "vpn_issue"),
    ]
    assert [r["actor"] for r in store.audit_log("example_review")] == ["alice"]
