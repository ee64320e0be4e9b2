"""Concurrent writers lose nothing; a killed ingest leaves whole batches only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import _store_fixtures
from tunegate.config import Workflow
from tunegate.io import ingest_file
from tunegate.records import Override, ReasonCode
from tunegate.store import Store

store_url = _store_fixtures.store_url  # fixtures

WRITERS = 8
PER_WRITER = 1000
SHARED = 100  # every writer also adds these same 100 overrides: stored once, never twice
BATCH = 50
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def make_overrides(writer: int) -> list[Override]:
    return [
        Override(
            id=f"w{writer}-{i:04d}",
            ticket_id=f"t{writer}-{i}",
            final_label="vpn_issue",
            reason_code=ReasonCode.R2,
            analyst=f"a{writer}",
            created_at=T0 + timedelta(seconds=writer * PER_WRITER + i),
        )
        for i in range(PER_WRITER)
    ]


def make_shared() -> list[Override]:
    return [
        Override(
            id=f"shared-{i:03d}",
            ticket_id=f"s{i}",
            final_label="hardware",
            reason_code=ReasonCode.R1,
            created_at=T0 + timedelta(days=1, seconds=i),
        )
        for i in range(SHARED)
    ]


def write_all(store: Store, writer: int) -> tuple[int, int]:
    """One writer: its own overrides in small transactions, the shared ones interleaved."""
    mine, shared = make_overrides(writer), make_shared()
    added = existing = 0
    for start in range(0, PER_WRITER, BATCH):
        result = store.add_overrides(mine[start : start + BATCH])
        added += result.added
        existing += result.existing
        if start // BATCH == writer:
            result = store.add_overrides(shared)
            added += result.added
            existing += result.existing
    return added, existing


def check(store: Store) -> None:
    got = store.overrides()
    ids = [o.id for o in got]
    assert len(ids) == len(set(ids)), "duplicated rows"
    expected = {o.id for w in range(WRITERS) for o in make_overrides(w)} | {
        o.id for o in make_shared()
    }
    assert set(ids) == expected, f"lost {len(expected - set(ids))} rows"
    assert store.count("overrides") == WRITERS * PER_WRITER + SHARED
    by_id = {o.id: o for o in got}
    assert by_id["w3-0999"] == make_overrides(3)[-1]


def test_threads_lose_nothing(store_url: str) -> None:
    with Store(store_url) as store:
        results: list[tuple[int, int]] = []
        errors: list[BaseException] = []

        def run(w: int) -> None:
            try:
                results.append(write_all(store, w))
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(w,)) for w in range(WRITERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert sum(a for a, _ in results) == WRITERS * PER_WRITER + SHARED
        assert sum(e for _, e in results) == (WRITERS - 1) * SHARED
        check(store)


_WORKER = """
import json, sys
sys.path.insert(0, {tests!r})
from test_store_concurrency import write_all
from tunegate.store import Store
with Store({url!r}) as store:
    print(json.dumps(write_all(store, {w})))
"""


@pytest.mark.slow
def test_processes_lose_nothing(store_url: str) -> None:
    tests = str(Path(__file__).parent)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER.format(tests=tests, url=store_url, w=w)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(WRITERS)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (_out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-2000:]
    added = sum(json.loads(out)[0] for out, _ in outputs)
    assert added == WRITERS * PER_WRITER + SHARED
    with Store(store_url) as store:
        check(store)


_INGEST = """
import sys
from tunegate.config import parse_workflow, starter_yaml
from tunegate.io import ingest_file
from tunegate.store import Store
store = Store({url!r})
ingest_file(store, "tickets", {path!r}, workflow=parse_workflow(starter_yaml()),
            batch_size={batch}, quarantine_dir={qdir!r})
"""


@pytest.mark.slow
def test_killed_ingest_leaves_whole_batches(
    store_url: str, tmp_path: Path, workflow: Workflow
) -> None:
    total, batch = 60_000, 500
    path = tmp_path / "tickets.jsonl"
    with path.open("w") as fh:
        for i in range(total):
            fh.write(
                json.dumps(
                    {
                        "id": f"k{i:06d}",
                        "text": f"printer {i} jams",
                        "created_at": (T0 + timedelta(seconds=i)).isoformat(),
                    }
                )
                + "\n"
            )
    store = Store(store_url)
    code = _INGEST.format(url=store_url, path=str(path), batch=batch, qdir=str(tmp_path / "q"))
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while store.count("tickets") < 4 * batch:
            assert proc.poll() is None, f"ingest ended early: {proc.stderr.read()!r}"  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "ingest made no progress"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    landed = store.count("tickets")
    assert 0 < landed < total, "the kill must land mid-ingest"
    assert landed % batch == 0, f"{landed} rows: a partial batch was committed"
    if store.dialect == "sqlite":
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    report = ingest_file(
        store, "tickets", path, workflow=workflow, batch_size=batch, quarantine_dir=tmp_path / "q"
    )
    assert (report.added, report.existing, report.quarantined) == (total - landed, landed, 0)
    assert store.count("tickets") == total
    store.close()
