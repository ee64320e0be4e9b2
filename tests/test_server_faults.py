"""Fault test: a burst of overrides against a real ``tunegate serve`` process that is killed
(SIGKILL) and restarted mid-burst; clients retry with the same Idempotency-Key. Afterwards
every acknowledged override is stored exactly once, with its audit row."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from _server_support import KeywordClassifier
from tunegate.config import parse_workflow, starter_yaml
from tunegate.records import Ticket, utcnow
from tunegate.server import create_token
from tunegate.serving import classify_tickets
from tunegate.store import Store

SRC = Path(__file__).resolve().parents[1] / "src"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    """``tunegate serve`` in a subprocess, killed and restarted at will."""

    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.config, self.port, self.log = config, port, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        import httpx

        env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        code = "import sys; from tunegate.cli import main; sys.exit(main(sys.argv[1:]))"
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-c", code, "serve", "--config", str(self.config),
                 "--port", str(self.port)],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError("tunegate serve did not come up:\n" + self.log.read_text())

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)


@pytest.mark.slow
def test_acknowledged_overrides_survive_kill_and_retry_exactly_once(tmp_path: Path) -> None:
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("uvicorn")
    config = tmp_path / "tunegate.yaml"
    config.write_text(starter_yaml(), encoding="utf-8")
    workflow = parse_workflow(starter_yaml())
    store = Store(workflow.resolved_store_url(tmp_path))
    token, _ = create_token(store, role="analyst", name="alice")
    now = utcnow()
    tickets = [Ticket(id=f"t{i}", text=f"unclear ticket {i}", created_at=now) for i in range(120)]
    decisions = classify_tickets(
        workflow, KeywordClassifier(workflow.label_names), tickets, store=store
    )
    store.close()

    server = _Server(config, _free_port(), tmp_path / "serve.log")
    server.start()
    url = f"http://127.0.0.1:{server.port}/v1/overrides"
    acknowledged: dict[str, str] = {}  # decision id -> override id
    lock = threading.Lock()
    failures: list[str] = []
    resend = {d.id for d in decisions[::3]}
    first_ids: dict[str, str] = {}

    def work(share: list[Any]) -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=10) as client:
            for d in share:
                body = {
                    "ticket_id": d.ticket_id,
                    "decision_id": d.id,
                    "final_label": "hardware",
                    "reason_code": "R2",
                }
                for _ in range(300):
                    try:
                        r = client.post(url, json=body, headers={"Idempotency-Key": f"k-{d.id}"})
                    except httpx.TransportError:
                        time.sleep(0.05)  # the server is down: retry with the same key
                        continue
                    if r.status_code in (200, 201):
                        with lock:
                            oid = r.json()["override"]["id"]
                            if first_ids.setdefault(d.id, oid) != oid:
                                failures.append(f"a retry of {d.id} made a second override")
                            acknowledged[d.id] = oid
                        if d.id in resend:  # a client that lost the answer sends it again
                            resend.discard(d.id)
                            continue
                        break
                    failures.append(f"{r.status_code} {r.text}")
                    break
                else:
                    failures.append(f"gave up on {d.id}")

    threads = [threading.Thread(target=work, args=(decisions[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    kills = 0
    while any(t.is_alive() for t in threads) and kills < 3:
        time.sleep(0.4)
        server.kill()
        kills += 1
        server.start()
    for t in threads:
        t.join(timeout=300)
    # a token in a query string never reaches the log
    httpx.get(f"http://127.0.0.1:{server.port}/v1/queue?token={token}", timeout=10)
    time.sleep(0.2)
    server.kill()

    assert not failures, failures[:3]
    assert kills >= 1 and len(acknowledged) == len(decisions)
    store = Store(workflow.resolved_store_url(tmp_path))
    overrides = store.overrides()
    per_decision = Counter(o.decision_id for o in overrides)
    assert set(per_decision) == set(acknowledged) and set(per_decision.values()) == {1}
    assert {o.decision_id: o.id for o in overrides} == acknowledged
    audited = Counter(row["details"]["override_id"] for row in store.audit_log("override"))
    assert audited == Counter({o.id: 1 for o in overrides})
    store.close()
    log = server.log.read_text()
    assert token not in log and "?token" not in log
    assert "POST /v1/overrides 201" in log or "POST /v1/overrides 200" in log
