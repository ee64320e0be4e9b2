"""Load test of the service on loopback: throughput, p95 latency, and zero lost overrides.

Starts ``tunegate serve`` (Uvicorn, the real zero-shot champion path) in a subprocess on
127.0.0.1, then drives it with N concurrent httpx async clients, each sending M requests that
alternate ``POST /v1/classify`` (one ticket) and ``POST /v1/overrides`` (for the decision it
just got). Afterwards it counts the overrides and decisions in the store: every 2xx must be
there. Bounded in count (clients x requests) and in time (--timeout).

With ``--workers-list 1,2 --store-url postgresql+psycopg://...`` it runs the same load once per
worker count (``tunegate serve --workers N``) on PostgreSQL, each in a fresh schema, and then
drains the review queue: analysts claim (``POST /v1/queue/claim``) and confirm decisions
concurrently until it is empty, counting any decision handed out twice.

    python bench/bench_server_load.py                 # 20 clients x 500 requests, SQLite
    python bench/bench_server_load.py --clients 4 --requests 50
    python bench/bench_server_load.py --workers-list 1,2 --store-url "$TUNEGATE_TEST_PG_URL"

Writes bench/results/server_load.json and .md (one run) or server_workers.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import sqlalchemy as sa

from _machine import machine_info
from tunegate.config import parse_workflow, starter_yaml
from tunegate.server import create_token
from tunegate.store import Store

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

TEXTS = [
    "I cannot connect to the VPN from home since this morning",
    "my account is locked after too many failed sign-in attempts",
    "please reset my password, it expired",
    "got a weird email asking for my credentials, clicked the link",
    "laptop screen flickers and the docking station does not charge",
    "need Visio installed on my machine",
    "requesting access to the finance shared folder",
    "Outlook says my mailbox is full and mails bounce",
    "something is wrong, please call me",
    "MFA push prompts keep coming although I did not sign in",
]
LABELS = parse_workflow(starter_yaml()).label_names


def machine() -> dict[str, Any]:
    return machine_info("torch", load_key="load_average_1m", platform_key="platform")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def client_loop(
    client: httpx.AsyncClient, n: int, seed: int, stats: dict[str, Any], deadline: float
) -> None:
    rng = random.Random(seed)
    last: dict[str, Any] | None = None
    for i in range(n):
        if time.monotonic() > deadline:
            stats["timed_out"] = True
            return
        if i % 2 == 0 or last is None:
            kind = "classify"
            body: dict[str, Any] = {"text": rng.choice(TEXTS) + f" (#{seed}-{i})"}
            url = "/v1/classify"
        else:
            kind = "override"
            body = {
                "ticket_id": last["ticket_id"],
                "decision_id": last["id"],
                "final_label": rng.choice(LABELS),
                "reason_code": rng.choice(["R1", "R2", "R3", "R4"]),
                "note": "load test",
            }
            url = "/v1/overrides"
        start = time.perf_counter()
        try:
            response = await client.post(url, json=body)
            status = response.status_code
        except httpx.HTTPError as exc:
            stats["errors"].append(f"{kind}: {type(exc).__name__}")
            continue
        stats["latency"][kind].append((time.perf_counter() - start) * 1000.0)
        stats["status"][f"{kind}:{status}"] = stats["status"].get(f"{kind}:{status}", 0) + 1
        if kind == "classify" and status == 200:
            last = response.json()["decisions"][0]
        elif kind == "override" and status == 201:
            stats["overrides_ok"] += 1
            last = None
        elif status >= 300:
            stats["errors"].append(f"{kind}: HTTP {status}")


async def drive(
    base: str, token: str, clients: int, requests: int, timeout: float
) -> dict[str, Any]:
    stats: dict[str, Any] = {
        "latency": {"classify": [], "override": []},
        "status": {},
        "errors": [],
        "overrides_ok": 0,
        "timed_out": False,
    }
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, limits=limits, timeout=60.0
    ) as client:
        deadline = time.monotonic() + timeout
        start = time.perf_counter()
        await asyncio.gather(
            *(client_loop(client, requests, seed, stats, deadline) for seed in range(clients))
        )
        stats["wall_s"] = time.perf_counter() - start
    return stats


def pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def load_1m() -> float:
    return round(os.getloadavg()[0], 2)


@contextmanager
def pg_schema(url: str) -> Iterator[str]:
    """A fresh schema in the database at ``url``; yields a URL whose search_path is it."""
    schema = f"tg_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in url else "?"
        yield f"{url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def _proc_table() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, command name, CPU seconds used so far) from /proc (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    table: dict[int, tuple[int, str, float]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            raw = stat.read_text()
        except OSError:
            continue
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        table[int(stat.parent.name)] = (
            int(fields[1]),
            name,
            (int(fields[11]) + int(fields[12])) / tick,
        )
    return table


def cpu_seconds(root: int) -> dict[str, float]:
    """CPU seconds used so far by the process tree under ``root`` (the server and its
    workers) and by every ``postgres`` process (the database server)."""
    table = _proc_table()
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _, _) in table.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    return {
        "service": sum(table[p][2] for p in tree if p in table),
        "postgres": sum(cpu for _, name, cpu in table.values() if name.startswith("postgres")),
    }


def worker_rss_mb(root: int) -> list[float]:
    """Resident memory (MiB) of each process under ``root`` that has no child of its own (the
    Uvicorn workers, or the one server process)."""
    table = _proc_table()
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _, _) in table.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    leaves = [p for p in tree if not any(table.get(q, (0,))[0] == p for q in tree)]
    out = []
    for pid in sorted(leaves):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out.append(round(int(line.split()[1]) / 1024, 1))
        except OSError:
            continue
    return out


def start_server(config: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "TUNEGATE_PROGRESS": "0",
    }
    command = [
        sys.executable,
        "-c",
        "from tunegate.cli import main; main()",
        "serve",
        "-c",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--workers",
        str(workers),
    ]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if server.poll() is not None:
            err = server.stderr.read().decode() if server.stderr else ""
            raise SystemExit(f"server exited early:\n{err}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            server.kill()
            raise SystemExit("server did not become healthy in 120 s")
        time.sleep(0.2)


def stop_server(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def warm_up(base: str, token: str, workers: int) -> tuple[float, str]:
    """Classify once in every worker (each loads its encoder on its first request); returns
    the seconds it took and the serving model version."""
    t0 = time.perf_counter()
    warm: set[str] = set()
    version = ""
    for _ in range(200):
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=300
        ) as client:
            pid = client.get("/healthz").json().get("worker", "1")
            if pid in warm:
                continue
            response = client.post("/v1/classify", json={"text": "warm up the model"})
            response.raise_for_status()
            version = response.json()["decisions"][0]["model_version"]
            warm.add(pid)
        if len(warm) >= workers:
            break
    if len(warm) < workers:
        raise SystemExit(f"only {len(warm)} of {workers} workers answered the warm-up")
    return time.perf_counter() - t0, version


def fill_queue(base: str, token: str, n: int) -> int:
    """Classify ``n`` vague tickets (50 a request) and leave them without overrides; returns
    how many the model routed to the review queue."""
    queued = 0
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=300
    ) as client:
        for start in range(0, n, 50):
            texts = [
                f"something is wrong, please call me about case {i}"
                for i in range(start, min(n, start + 50))
            ]
            response = client.post("/v1/classify", json={"tickets": [{"text": x} for x in texts]})
            response.raise_for_status()
            queued += sum(
                d["route"] in ("clarify", "escalate") for d in response.json()["decisions"]
            )
    return queued


def drain_queue(base: str, tokens: list[str], timeout: float) -> dict[str, Any]:
    """Analysts (one thread each, a new connection per claim) take 5 decisions at a time from
    the queue and confirm them until it is empty; counts decisions handed out twice."""
    handed: list[list[str]] = [[] for _ in tokens]
    statuses: dict[str, int] = {}
    errors: list[str] = []
    claim_ms: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + timeout

    def analyst(i: int) -> None:
        headers = {"Authorization": f"Bearer {tokens[i]}"}
        while time.monotonic() < deadline:
            with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
                start = time.perf_counter()
                page = client.post("/v1/queue/claim", json={"limit": 5})
                with lock:
                    claim_ms.append((time.perf_counter() - start) * 1000.0)
                if page.status_code != 200:
                    with lock:
                        errors.append(f"claim: HTTP {page.status_code}")
                    return
                items = page.json()["items"]
                if not items:
                    return
                for item in items:
                    d = item["decision"]
                    handed[i].append(d["id"])
                    done = client.post(
                        "/v1/overrides",
                        json={
                            "ticket_id": d["ticket_id"],
                            "decision_id": d["id"],
                            "final_label": d["label"],
                            "reason_code": "R1",
                            "note": "queue drain",
                        },
                    )
                    with lock:
                        key = f"override:{done.status_code}"
                        statuses[key] = statuses.get(key, 0) + 1

    start = time.perf_counter()
    threads = [threading.Thread(target=analyst, args=(i,)) for i in range(len(tokens))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - start
    every = [d for mine in handed for d in mine]
    return {
        "analysts": len(tokens),
        "decisions_handed": len(every),
        "handed_twice": len(every) - len(set(every)),
        "per_analyst": [len(m) for m in handed],
        "wall_s": round(wall, 2),
        "decisions_per_s": round(len(every) / wall, 1) if wall else None,
        "claim_ms_p50": pct(claim_ms, 50),
        "claim_ms_p95": pct(claim_ms, 95),
        "status_counts": statuses,
        "errors": errors[:20],
        "timed_out": time.monotonic() >= deadline,
    }


def run_once(
    args: argparse.Namespace, workers: int, store_url: str | None, *, analysts: int = 0
) -> dict[str, Any]:
    """One load run against ``tunegate serve --workers workers`` on ``store_url`` (None: a
    temporary SQLite file); with ``analysts`` > 0 the review queue is drained afterwards."""
    with tempfile.TemporaryDirectory(prefix="tunegate-load-") as tmp:
        config = Path(tmp) / "tunegate.yaml"
        url = store_url or f"sqlite:///{Path(tmp) / 'tunegate.db'}"
        config.write_text(
            starter_yaml().replace('"sqlite:///tunegate.db"', f'"{url}"'), encoding="utf-8"
        )
        with Store(url) as store:
            token, _ = create_token(store, role="analyst", name="load-test")
            queue_tokens = [
                create_token(store, role="analyst", name=f"analyst-{i}")[0] for i in range(analysts)
            ]
        port = free_port()
        load_before = load_1m()
        server = start_server(config, port, workers)
        base = f"http://127.0.0.1:{port}"
        try:
            warmup_s, model_version = warm_up(base, token, workers)
            rss = worker_rss_mb(server.pid)
            cpu_before = cpu_seconds(server.pid)
            stats = asyncio.run(drive(base, token, args.clients, args.requests, args.timeout))
            cpu_after = cpu_seconds(server.pid)
            load_after_load = load_1m()
            queue = None
            if analysts:
                queued = fill_queue(base, token, args.queue_tickets)
                queue = {"queued": queued, **drain_queue(base, queue_tokens, args.timeout)}
        finally:
            stop_server(server)
        with Store(url) as store:
            stored_overrides = len(store.overrides())
            stored_decisions = len(store.decisions())
            audited = len(store.audit_log("override"))
            per_decision: dict[str | None, int] = {}
            for o in store.overrides():
                per_decision[o.decision_id] = per_decision.get(o.decision_id, 0) + 1
            twice = sum(1 for n in per_decision.values() if n > 1)

    lat = stats["latency"]
    n_done = len(lat["classify"]) + len(lat["override"])
    classify_ok = stats["status"].get("classify:200", 0)
    queue_ok = queue["status_counts"].get("override:201", 0) if queue else 0
    extra = args.queue_tickets if queue else 0
    return {
        "workers": workers,
        "store": "postgresql" if url.startswith("postgresql") else "sqlite",
        "load_average_1m_before": load_before,
        "load_average_1m_after_load": load_after_load,
        "setup": {
            "clients": args.clients,
            "requests_per_client": args.requests,
            "mix": "alternating classify (1 ticket) / override of that decision",
            "server": f"tunegate serve --workers {workers} (uvicorn) on 127.0.0.1",
            "model": "zero-shot champion (no registry champion set)",
            "model_version": model_version,
            "warmup_s": round(warmup_s, 2),
        },
        "wall_s": round(stats["wall_s"], 2),
        "requests": n_done,
        "throughput_rps": round(n_done / stats["wall_s"], 1) if stats["wall_s"] else None,
        "latency_ms": {
            kind: {
                "p50": pct(v, 50),
                "p95": pct(v, 95),
                "p99": pct(v, 99),
                "max": max(v) if v else None,
                "n": len(v),
            }
            for kind, v in lat.items()
        },
        "latency_ms_all_p95": pct(lat["classify"] + lat["override"], 95),
        "worker_rss_mb": rss,
        "cpu_ms_per_request": {
            part: round((cpu_after[part] - cpu_before[part]) * 1000.0 / n_done, 2)
            if n_done
            else None
            for part in ("service", "postgres")
        },
        "status_counts": stats["status"],
        "errors": stats["errors"][:20],
        "n_errors": len(stats["errors"]),
        "timed_out": stats["timed_out"],
        "overrides_acknowledged": stats["overrides_ok"] + queue_ok,
        "overrides_stored": stored_overrides,
        "overrides_audited": audited,
        "lost_overrides": stats["overrides_ok"] + queue_ok - stored_overrides,
        "decisions_with_two_overrides": twice,
        "decisions_acknowledged": classify_ok + workers + extra,
        "decisions_stored": stored_decisions,
        "lost_decisions": classify_ok + workers + extra - stored_decisions,
        "queue_drain": queue,
    }


def ms(v: float | None) -> str:
    return f"{v:.1f}" if v is not None else "n/a"


def run_ok(run: dict[str, Any]) -> bool:
    queue = run.get("queue_drain")
    return (
        run["lost_overrides"] == 0
        and run["lost_decisions"] == 0
        and run["decisions_with_two_overrides"] == 0
        and run["n_errors"] == 0
        and not run["timed_out"]
        and (queue is None or (queue["handed_twice"] == 0 and not queue["errors"]))
    )


def single(args: argparse.Namespace) -> int:
    run = run_once(args, 1, args.store_url)
    result = {"benchmark": "server_load", "machine": machine(), **run}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "server_load.json").write_text(json.dumps(result, indent=2) + "\n")
    lc, lo = result["latency_ms"]["classify"], result["latency_ms"]["override"]
    md = [
        "# Service load test (loopback)",
        "",
        f"- machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, "
        f"{result['machine']['ram_gb']} GB RAM, Python {result['machine']['python']}, "
        f"torch {result['machine']['torch']}, {result['machine']['date'][:10]}",
        f"- load: {args.clients} concurrent clients x {args.requests} requests, alternating "
        f"classify / override; `tunegate serve` with the zero-shot model, {run['store']} store",
        f"- requests: {run['requests']} in {result['wall_s']} s -> "
        f"**{result['throughput_rps']} req/s**",
        f"- latency p50 / p95 / p99 (ms): classify {ms(lc['p50'])} / {ms(lc['p95'])} / "
        f"{ms(lc['p99'])}; override {ms(lo['p50'])} / {ms(lo['p95'])} / {ms(lo['p99'])}; "
        f"all p95 {ms(result['latency_ms_all_p95'])}",
        f"- overrides acknowledged {result['overrides_acknowledged']}, stored "
        f"{result['overrides_stored']}, audited {result['overrides_audited']}: "
        f"**lost {result['lost_overrides']}**; decisions lost {result['lost_decisions']}",
        f"- errors: {result['n_errors']}; timed out: {result['timed_out']}",
        "",
    ]
    (args.out / "server_load.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0 if run_ok(run) else 1


def compare_workers(args: argparse.Namespace) -> int:
    if not args.store_url or not args.store_url.startswith("postgresql"):
        raise SystemExit("--workers-list needs --store-url postgresql+psycopg://... (see --help)")
    counts = [int(x) for x in args.workers_list.split(",") if x.strip()]
    runs = []
    for n in counts:
        with pg_schema(args.store_url) as url:
            runs.append(run_once(args, n, url, analysts=args.analysts))
        r = runs[-1]
        print(
            f"workers={n}: {r['throughput_rps']} req/s, p95 {ms(r['latency_ms_all_p95'])} ms, "
            f"load {r['load_average_1m_before']} -> {r['load_average_1m_after_load']}"
        )
    base = runs[0]["throughput_rps"] or 0.0
    result = {
        "benchmark": "server_workers",
        "machine": machine(),
        "note": "2 cores shared by the server workers, PostgreSQL and the load generator; "
        "the load average is recorded before and after each run",
        "runs": runs,
        "speedup_vs_first": [
            round((r["throughput_rps"] or 0.0) / base, 2) if base else None for r in runs
        ],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "server_workers.json").write_text(json.dumps(result, indent=2) + "\n")
    m = result["machine"]
    md = [
        "# Service with 1 and 2 workers on PostgreSQL (loopback)",
        "",
        f"- machine: {m['cpu']}, {m['cores']} cores, {m['ram_gb']} GB RAM, Python "
        f"{m['python']}, torch {m['torch']}, {m['date'][:10]}; the workers, PostgreSQL and "
        f"the load generator share the cores",
        f"- load: {args.clients} concurrent clients x {args.requests} requests, alternating "
        f"classify (zero-shot) / override; then {args.analysts} analysts drain the review "
        f"queue (claim 5, confirm each)",
        "",
        "| workers | req/s | speed-up | classify p50 / p95 ms | override p50 / p95 ms | "
        "queue drain decisions/s | handed twice | lost overrides | CPU ms per request "
        "(service / PostgreSQL) | load 1m before -> after |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r, speed in zip(runs, result["speedup_vs_first"], strict=True):
        lc, lo, q = r["latency_ms"]["classify"], r["latency_ms"]["override"], r["queue_drain"]
        md.append(
            f"| {r['workers']} | {r['throughput_rps']} | {speed} | {ms(lc['p50'])} / "
            f"{ms(lc['p95'])} | {ms(lo['p50'])} / {ms(lo['p95'])} | "
            f"{q['decisions_per_s'] if q else 'n/a'} | {q['handed_twice'] if q else 'n/a'} | "
            f"{r['lost_overrides']} | {r['cpu_ms_per_request']['service']} / "
            f"{r['cpu_ms_per_request']['postgres']} | {r['load_average_1m_before']} -> "
            f"{r['load_average_1m_after_load']} |"
        )
    md.append("")
    (args.out / "server_workers.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0 if all(run_ok(r) for r in runs) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=500, help="requests per client")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds for the load")
    parser.add_argument(
        "--store-url", default=None, help="a PostgreSQL URL (default: a temporary SQLite file)"
    )
    parser.add_argument(
        "--workers-list",
        default="",
        help="e.g. 1,2: one run per worker count on --store-url (PostgreSQL), each in a "
        "fresh schema; writes server_workers.json",
    )
    parser.add_argument(
        "--analysts", type=int, default=4, help="analysts draining the queue (--workers-list)"
    )
    parser.add_argument(
        "--queue-tickets",
        type=int,
        default=400,
        help="vague tickets classified (not overridden) before the queue drain",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    return compare_workers(args) if args.workers_list else single(args)


if __name__ == "__main__":
    raise SystemExit(main())
