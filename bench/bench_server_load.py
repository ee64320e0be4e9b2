"""Load test of the service on loopback: throughput, p95 latency, and zero lost overrides.

Starts ``tunegate serve`` (Uvicorn, the real zero-shot champion path) in a subprocess on
127.0.0.1, then drives it with N concurrent httpx async clients, each sending M requests that
alternate ``POST /v1/classify`` (one ticket) and ``POST /v1/overrides`` (for the decision it
just got). Afterwards it counts the overrides and decisions in the store: every 2xx must be
there. Bounded in count (clients x requests) and in time (--timeout).

    python bench/bench_server_load.py                 # 20 clients x 500 requests
    python bench/bench_server_load.py --clients 4 --requests 50

Writes bench/results/server_load.json and .md.
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
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=500, help="requests per client")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds for the load")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tunegate-load-") as tmp:
        config = Path(tmp) / "tunegate.yaml"
        config.write_text(starter_yaml(), encoding="utf-8")
        db = Path(tmp) / "tunegate.db"
        with Store(f"sqlite:///{db}") as store:
            token, _ = create_token(store, role="analyst", name="load-test")
        port = free_port()
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "TUNEGATE_PROGRESS": "0",
        }
        server = subprocess.Popen(
            [
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
                    raise SystemExit(f"server exited early:\n{err}")
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("server did not become healthy in 120 s")
                time.sleep(0.2)
            # warm-up: loads the encoder (the first classify pays for it)
            t0 = time.perf_counter()
            warm = httpx.post(
                f"{base}/v1/classify",
                json={"text": "warm up the model"},
                headers={"Authorization": f"Bearer {token}"},
                timeout=300,
            )
            warm.raise_for_status()
            warmup_s = time.perf_counter() - t0
            model_version = warm.json()["decisions"][0]["model_version"]
            stats = asyncio.run(drive(base, token, args.clients, args.requests, args.timeout))
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        with Store(f"sqlite:///{db}") as store:
            stored_overrides = len(store.overrides())
            stored_decisions = len(store.decisions())
            audited = len(store.audit_log("override"))

    lat = stats["latency"]
    n_done = len(lat["classify"]) + len(lat["override"])
    classify_ok = stats["status"].get("classify:200", 0)
    result = {
        "benchmark": "server_load",
        "machine": machine(),
        "setup": {
            "clients": args.clients,
            "requests_per_client": args.requests,
            "mix": "alternating classify (1 ticket) / override of that decision",
            "server": "tunegate serve (uvicorn, 1 process) on 127.0.0.1, SQLite store",
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
        "status_counts": stats["status"],
        "errors": stats["errors"][:20],
        "n_errors": len(stats["errors"]),
        "timed_out": stats["timed_out"],
        "overrides_acknowledged": stats["overrides_ok"],
        "overrides_stored": stored_overrides,
        "overrides_audited": audited,
        "lost_overrides": stats["overrides_ok"] - stored_overrides,
        "decisions_acknowledged": classify_ok + 1,
        "decisions_stored": stored_decisions,
        "lost_decisions": classify_ok + 1 - stored_decisions,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "server_load.json").write_text(json.dumps(result, indent=2) + "\n")
    lc, lo = result["latency_ms"]["classify"], result["latency_ms"]["override"]

    def ms(v: float | None) -> str:
        return f"{v:.1f}" if v is not None else "n/a"

    md = [
        "# Service load test (loopback)",
        "",
        f"- machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, "
        f"{result['machine']['ram_gb']} GB RAM, Python {result['machine']['python']}, "
        f"torch {result['machine']['torch']}, {result['machine']['date'][:10]}",
        f"- load: {args.clients} concurrent clients x {args.requests} requests, alternating "
        f"classify / override; `tunegate serve` with the zero-shot model, SQLite store",
        f"- requests: {n_done} in {result['wall_s']} s -> **{result['throughput_rps']} req/s**",
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
    ok = (
        result["lost_overrides"] == 0
        and result["lost_decisions"] == 0
        and result["n_errors"] == 0
        and not result["timed_out"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
