"""``tunegate serve --workers N`` on PostgreSQL: the review queue's leases (a decision to one
analyst at a time), exactly-once overrides across worker processes, the champion following the
registry in every worker, sessions valid in every worker, and the refusal on SQLite.

The library-level tests run the claims on SQLite and PostgreSQL; the service tests start the
real command with two Uvicorn worker processes on a fresh PostgreSQL schema and drive it with
concurrent analysts over real connections.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests._store_fixtures import pg_schema, store, store_url  # noqa: F401

from tunegate.cli import main
from tunegate.config import Workflow, starter_yaml
from tunegate.errors import ConflictError, InputError
from tunegate.records import Decision, ModelKind, ModelVersion, ReasonCode, Route, Ticket, utcnow
from tunegate.server import create_token
from tunegate.server._workers import require_shared_store
from tunegate.serving import check_claim, claim_queue, open_queue, record_override, release_claim
from tunegate.store import Store

ROOT = Path(__file__).resolve().parents[1]


# -- the leases, in the library ---------------------------------------------------------------


def _waiting(st: Store, n: int, route: Route = Route.CLARIFY) -> list[str]:
    now = utcnow()
    st.add("tickets", [Ticket(id=f"t{i}", text=f"ticket {i}", created_at=now) for i in range(n)])
    decisions = [
        Decision(
            id=f"d{i}",
            ticket_id=f"t{i}",
            model_version="m1",
            label="vpn_issue",
            probabilities={"vpn_issue": 0.5, "hardware": 0.5},
            h_norm=0.9,
            route=route,
            latency_ms=1.0,
            created_at=now + timedelta(milliseconds=i),
        )
        for i in range(n)
    ]
    st.add("decisions", decisions)
    return [d.id for d in decisions]


def test_claims_hand_each_decision_to_one_analyst(store: Store) -> None:  # noqa: F811
    ids = _waiting(store, 5)
    alice = claim_queue(store, "alice", limit=2)
    assert [e.decision.id for e in alice.entries] == ids[:2] and alice.total == 5
    assert all(e.claim is not None and e.claim.analyst == "alice" for e in alice.entries)
    assert alice.entries[0].to_dict()["claim"]["analyst"] == "alice"
    bob = claim_queue(store, "bob", limit=2)
    assert [e.decision.id for e in bob.entries] == ids[2:4]
    assert bob.total == 3  # alice's two are not bob's to take
    # alice asks again: her live leases first (renewed), then the next free one
    again = claim_queue(store, "alice", limit=3)
    assert [e.decision.id for e in again.entries] == [ids[0], ids[1], ids[4]]
    assert claim_queue(store, "carol", limit=5).entries == []
    # the unclaimed listing still shows every waiting decision
    assert open_queue(store).total == 5


def test_an_expired_lease_frees_the_decision(store: Store) -> None:  # noqa: F811
    [first] = _waiting(store, 1)
    start = utcnow()
    [claim] = store.claim_decisions(
        "alice",
        limit=1,
        lease_s=60,
        routes=["clarify"],
        since=start - timedelta(days=1),
        overrides_since=start - timedelta(days=2),
        now=start,
    )
    assert claim.decision_id == first and claim.expires_at == start + timedelta(seconds=60)
    kwargs: dict[str, Any] = {
        "limit": 1,
        "lease_s": 60,
        "routes": ["clarify"],
        "since": start - timedelta(days=1),
        "overrides_since": start - timedelta(days=2),
    }
    assert store.claim_decisions("bob", now=start + timedelta(seconds=59), **kwargs) == []
    [taken] = store.claim_decisions("bob", now=start + timedelta(seconds=61), **kwargs)
    assert taken.analyst == "bob"
    assert store.release_claims(expired_before=start + timedelta(days=1)) == 1
    assert store.live_claims(now=start) == {}


def test_overrides_respect_the_lease_and_end_it(
    workflow: Workflow,
    store: Store,  # noqa: F811
) -> None:
    ids = _waiting(store, 2)
    claim_queue(store, "alice", limit=1)
    with pytest.raises(ConflictError, match="claimed by 'alice' until"):
        check_claim(store, ticket_id="t0", decision_id=ids[0], analyst="bob")
    with pytest.raises(ConflictError, match="claimed by 'alice'"):
        check_claim(store, ticket_id="t0", decision_id=None, analyst="bob")
    own = check_claim(store, ticket_id="t0", decision_id=ids[0], analyst="alice")
    assert own is not None and own.decision_id == ids[0]
    assert check_claim(store, ticket_id="t1", decision_id=ids[1], analyst="bob") is None
    assert release_claim(store, ids[0], "bob") is False  # not bob's lease
    assert release_claim(store, ids[0], "alice") is True
    assert check_claim(store, ticket_id="t0", decision_id=ids[0], analyst="bob") is None
    # a decided decision is never handed out again
    record_override(
        workflow,
        store,
        ticket_id="t1",
        decision_id=ids[1],
        final_label="hardware",
        reason_code=ReasonCode.R1,
        analyst="bob",
    )
    assert [e.decision.id for e in claim_queue(store, "carol", limit=5).entries] == [ids[0]]


def test_claim_arguments_are_checked(store: Store) -> None:  # noqa: F811
    with pytest.raises(InputError, match="limit must be at least 1"):
        claim_queue(store, "alice", limit=0)
    with pytest.raises(InputError, match="lease_s must be positive"):
        claim_queue(store, "alice", lease_s=0)
    with pytest.raises(InputError, match="analyst must name"):
        claim_queue(store, "")


@pytest.mark.postgres
def test_concurrent_claimers_on_postgresql_never_share_a_decision(pg_url: str) -> None:
    """Eight threads, each its own connection, claim two at a time until the queue is empty:
    every decision is handed out exactly once."""
    with pg_schema(pg_url) as url, Store(url) as st:
        ids = _waiting(st, 80)
        got: dict[str, list[str]] = {}
        errors: list[BaseException] = []
        barrier = threading.Barrier(8)

        def analyst(name: str) -> None:
            try:
                mine: list[str] = []
                barrier.wait()
                while True:
                    page = claim_queue(st, name, limit=2, lease_s=600)
                    new = [e.decision.id for e in page.entries if e.decision.id not in mine]
                    if not page.entries:
                        break
                    mine.extend(new)
                    # decided: the lease ends, the decision leaves the queue
                    st.release_claims(decision_ids=new)
                    st.add(
                        "overrides",
                        [_override(did, name) for did in new],
                    )
                got[name] = mine
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=analyst, args=(f"a{i}",)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        handed = [d for mine in got.values() for d in mine]
        assert sorted(handed) == sorted(ids), "a decision was handed out twice or never"
        assert sum(1 for mine in got.values() if mine) >= 2  # the work was shared


def _override(decision_id: str, analyst: str) -> Any:
    from tunegate.records import Override

    return Override(
        ticket_id="t" + decision_id[1:],
        decision_id=decision_id,
        model_label="vpn_issue",
        final_label="vpn_issue",
        reason_code=ReasonCode.R1,
        analyst=analyst,
    )


# -- the refusal on SQLite --------------------------------------------------------------------


def test_several_workers_are_refused_on_sqlite(tmp_path: Path) -> None:
    from tunegate._progress import console

    config = tmp_path / "tunegate.yaml"
    config.write_text(starter_yaml(), encoding="utf-8")
    with console.capture() as captured:
        code = main(["serve", "-c", str(config), "--workers", "2"])
    assert code == 2
    text = " ".join(captured.get().split())
    assert "--workers 2 needs a PostgreSQL store" in text, text
    assert "this workflow's store is sqlite" in text and "--workers 1" in text
    assert not (tmp_path / "tunegate.db").exists()  # refused before opening anything
    with pytest.raises(InputError, match="at least 1"):
        require_shared_store("postgresql+psycopg://h/db", workers=0)
    require_shared_store("sqlite:///x.db", workers=1)
    require_shared_store("postgresql+psycopg://h/db", workers=4)


# -- the real service with two worker processes ----------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rules(version_id: str, word: str) -> ModelVersion:
    rule = {"name": f"{word}-rule", "label": "vpn_issue", "any_of": [word]}
    return ModelVersion(id=version_id, kind=ModelKind.RULES, config={"rules": [rule]})


@dataclass
class Served:
    base: str
    store: Store
    tokens: dict[str, str]

    def client(self, who: str = "alice") -> httpx.Client:
        """A client with its own connection (it stays with one worker while kept alive)."""
        return httpx.Client(
            base_url=self.base,
            headers={"Authorization": f"Bearer {self.tokens[who]}"},
            timeout=60.0,
        )

    def worker_of(self, client: httpx.Client) -> str:
        return str(client.get("/healthz").json()["worker"])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    url = os.environ.get("TUNEGATE_TEST_PG_URL", "")
    if not url:
        if os.environ.get("TUNEGATE_REQUIRE_ALL") == "1":
            pytest.fail("required in CI but missing: TUNEGATE_TEST_PG_URL")
        pytest.skip("TUNEGATE_TEST_PG_URL is not set (scripts/test.sh starts PostgreSQL)")
    tmp = tmp_path_factory.mktemp("workers")
    with pg_schema(url) as schema_url:
        config = tmp / "tunegate.yaml"
        config.write_text(
            starter_yaml().replace('"sqlite:///tunegate.db"', f'"{schema_url}"'),
            encoding="utf-8",
        )
        st = Store(schema_url)
        st.save_model_version(_rules("rules-a", "tunnel"))
        st.save_model_version(_rules("rules-b", "tunnel"))
        st.set_alias("champion", "rules-a", actor="test")
        tokens = {
            name: create_token(st, role="analyst", name=name)[0]
            for name in ("alice", "bob", "carol", "dave")
        }
        tokens["root"] = create_token(st, role="admin", name="root")[0]
        port = _free_port()
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")]
            ),
            "TUNEGATE_PROGRESS": "0",
        }
        env.pop("TUNEGATE_SECRET_KEY", None)  # the command must make one key for all workers
        server = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from tunegate.cli import main; main()",
                "serve",
                "-c",
                str(config),
                "--port",
                str(port),
                "--workers",
                "2",
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                if server.poll() is not None:
                    err = server.stderr.read().decode() if server.stderr else ""
                    pytest.fail(f"tunegate serve --workers 2 exited early:\n{err}")
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "the workers did not answer in 120 s"
                time.sleep(0.2)
            yield Served(base, st, tokens)
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:  # pragma: no cover
                server.kill()
                server.wait()
            st.close()


def _both_workers(served: Served, job: Any, *, tries: int = 60) -> dict[str, list[Any]]:
    """Run ``job(client)`` on fresh connections until two workers have answered; results by
    worker id."""
    seen: dict[str, list[Any]] = {}
    for _ in range(tries):
        with served.client() as client:
            seen.setdefault(served.worker_of(client), []).append(job(client))
        if len(seen) >= 2 and all(len(v) >= 2 for v in seen.values()):
            break
    assert len(seen) == 2, f"expected two worker processes to answer, saw {sorted(seen)}"
    return seen


def _classify(client: httpx.Client, *texts: str) -> list[dict[str, Any]]:
    response = client.post("/v1/classify", json={"tickets": [{"text": t} for t in texts]})
    assert response.status_code == 200, response.text
    decisions: list[dict[str, Any]] = response.json()["decisions"]
    return decisions


@pytest.mark.postgres
@pytest.mark.slow
def test_the_champion_follows_the_registry_in_every_worker(served: Served) -> None:
    def version(client: httpx.Client) -> str:
        return str(_classify(client, "the tunnel is down")[0]["model_version"])

    before = _both_workers(served, version)
    assert {v for vs in before.values() for v in vs} == {"rules-a"}
    # promoted elsewhere (the CLI, another worker's API call): only the store knows
    served.store.set_alias("champion", "rules-b", actor="test", reason="workers test")
    time.sleep(1.5)  # > champion_check_s (1 s)
    after = _both_workers(served, version)
    assert {v for vs in after.values() for v in vs} == {"rules-b"}, after


@pytest.mark.postgres
@pytest.mark.slow
def test_a_session_from_one_worker_is_valid_in_every_worker(served: Served) -> None:
    import re

    with httpx.Client(base_url=served.base) as client:
        page = client.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf is not None
        done = client.post(
            "/login",
            data={"token": served.tokens["carol"], "csrf_token": csrf.group(1)},
            follow_redirects=False,
        )
        assert done.status_code == 303, done.text
        cookies = dict(client.cookies)

    def queue_page(client: httpx.Client) -> int:
        return client.get("/queue", cookies=cookies, follow_redirects=False).status_code

    by_worker = _both_workers(served, queue_page)
    assert {s for ss in by_worker.values() for s in ss} == {200}, by_worker


@pytest.mark.postgres
@pytest.mark.slow
def test_concurrent_analysts_never_get_the_same_decision(served: Served) -> None:
    """Four analysts, each on its own connections (so on both workers), claim and decide
    until the queue is empty: every decision is handed to exactly one of them and decided
    exactly once."""
    with served.client() as client:
        made = _classify(client, *[f"please call me back about case {i}" for i in range(60)])
    routed = {d["id"] for d in made if d["route"] in ("clarify", "escalate")}
    assert len(routed) == 60  # no rule matches: the uniform row is routed to an analyst
    handed: dict[str, list[str]] = {}
    statuses: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def analyst(name: str) -> None:
        try:
            mine: list[str] = []
            barrier.wait()
            while True:
                with served.client(name) as client:  # a new connection: either worker
                    page = client.post("/v1/queue/claim", json={"limit": 3})
                    assert page.status_code == 200, page.text
                    items = page.json()["items"]
                    if not items:
                        break
                    for item in items:
                        assert item["claim"]["analyst"] == name
                        decision = item["decision"]
                        mine.append(decision["id"])
                        response = client.post(
                            "/v1/overrides",
                            json={
                                "ticket_id": decision["ticket_id"],
                                "decision_id": decision["id"],
                                "final_label": "hardware",
                                "reason_code": "R2",
                            },
                        )
                        statuses.append(response.status_code)
            handed[name] = mine
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=analyst, args=(n,)) for n in ("alice", "bob", "carol", "dave")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert not errors, errors
    all_handed = [d for mine in handed.values() for d in mine]
    assert len(all_handed) == len(set(all_handed)), "a decision was handed out twice"
    assert routed <= set(all_handed)
    assert statuses and set(statuses) == {201}
    overrides = served.store.overrides(since=utcnow() - timedelta(hours=1))
    per_decision: dict[str | None, int] = {}
    for o in overrides:
        per_decision[o.decision_id] = per_decision.get(o.decision_id, 0) + 1
    assert all(per_decision.get(d) == 1 for d in routed)
    assert served.store.live_claims(decision_ids=sorted(routed)) == {}  # overrides end leases
    assert sum(1 for mine in handed.values() if mine) >= 2  # the work was shared


@pytest.mark.postgres
@pytest.mark.slow
def test_overrides_are_exactly_once_across_workers(served: Served) -> None:
    with served.client() as client:
        [first, second, third] = _classify(client, "one thing", "another thing", "a third")

    def race(calls: list[tuple[str, dict[str, Any], dict[str, str]]]) -> list[httpx.Response]:
        out: list[httpx.Response | None] = [None] * len(calls)
        barrier = threading.Barrier(len(calls))

        def one(i: int) -> None:
            who, body, headers = calls[i]
            with served.client(who) as client:
                barrier.wait()
                out[i] = client.post("/v1/overrides", json=body, headers=headers)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(calls))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert all(r is not None for r in out)
        return [r for r in out if r is not None]

    def body(decision: dict[str, Any], label: str) -> dict[str, Any]:
        return {
            "ticket_id": decision["ticket_id"],
            "decision_id": decision["id"],
            "final_label": label,
            "reason_code": "R2",
        }

    # four analysts correct the same decision at once: one wins, the others are told
    names = ["alice", "bob", "carol", "dave"]
    answers = race([(n, body(first, "hardware"), {}) for n in names * 2])
    codes = sorted(r.status_code for r in answers)
    assert codes == [201] + [409] * 7, [r.text for r in answers]
    # one analyst's retries with one idempotency key: stored once, replayed to the rest
    key = {"Idempotency-Key": "retry-1"}
    answers = race([("alice", body(second, "hardware"), key) for _ in range(6)])
    assert sorted(r.status_code for r in answers) == [200] * 5 + [201]
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in answers) == 5
    assert len({r.json()["override"]["id"] for r in answers}) == 1
    # a claimed decision is the claimer's: others are refused until it is released
    with served.client("bob") as bob:
        # bob takes the queue's oldest free decisions until he holds the third ticket's
        page = bob.post("/v1/queue/claim", json={"limit": 50}).json()
        assert third["id"] in {i["decision"]["id"] for i in page["items"]}
    refused = race([("carol", body(third, "hardware"), {})])
    assert refused[0].status_code == 409 and "claimed by 'bob'" in refused[0].text
    with served.client("bob") as bob:
        assert bob.delete(f"/v1/queue/claims/{third['id']}").status_code == 204
        assert bob.delete(f"/v1/queue/claims/{third['id']}").status_code == 404
    assert [r.status_code for r in race([("carol", body(third, "hardware"), {})])] == [201]
    with served.client("bob") as bob:  # bob's other leases end too
        for item in page["items"]:
            bob.delete(f"/v1/queue/claims/{item['decision']['id']}")
    stored = [
        o
        for o in served.store.overrides(since=utcnow() - timedelta(hours=1))
        if o.decision_id in {first["id"], second["id"], third["id"]}
    ]
    assert sorted(o.decision_id or "" for o in stored) == sorted(
        [first["id"], second["id"], third["id"]]
    )
    audited = [
        a
        for a in served.store.audit_log("override")
        if a["details"]["decision_id"] in {first["id"], second["id"], third["id"]}
    ]
    assert len(audited) == 3


# -- the queue page leases its cards to the analyst viewing it --------------------------------


def test_two_analysts_see_different_cards_on_the_queue_page(
    workflow: Workflow, tmp_path: Path
) -> None:
    import re

    from fastapi.testclient import TestClient
    from tests._server_support import SECRET, csrf_from, login, make_service

    from tunegate.server import ServerSettings

    settings = ServerSettings(secret_key=SECRET, queue_page_size=2, highlights="off")
    svc = make_service(workflow, tmp_path / "svc.db", settings)
    bob_token, _ = create_token(svc.store, role="analyst", name="bob")
    with svc.client, TestClient(svc.app) as bob_client:
        svc.classify(*[f"hello there number {i}" for i in range(4)])
        login(svc, svc.analyst)
        alice_page = svc.client.get("/queue").text
        bob = type(svc)(bob_client, svc.store, bob_token, svc.admin, svc.app)
        login(bob, bob_token)
        bob_page = bob.client.get("/queue").text

        def cards(html: str) -> list[str]:
            return re.findall(r'data-decision="([^"]+)"', html)

        assert len(cards(alice_page)) == 2 and len(cards(bob_page)) == 2
        assert not set(cards(alice_page)) & set(cards(bob_page))
        assert "yours alone for 10 minutes" in " ".join(alice_page.split())
        # bob cannot decide alice's card; alice can, and her next page brings no repeat
        [first, _] = cards(alice_page)
        ticket_id = next(d.ticket_id for d in svc.store.decisions() if d.id == first)
        form = {
            "ticket_id": ticket_id,
            "decision_id": first,
            "final_label": "hardware",
            "reason_code": "R2",
            "csrf_token": csrf_from(bob_page),
        }
        refused = bob.client.post("/queue/decide", data=form, follow_redirects=False)
        assert refused.status_code == 409 and "claimed by 'alice'" in refused.text
        form["csrf_token"] = csrf_from(alice_page)
        done = svc.client.post("/queue/decide", data=form, follow_redirects=False)
        assert done.status_code == 303, done.text
        assert first not in cards(svc.client.get("/queue").text)
    svc.store.close()
