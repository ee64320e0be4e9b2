"""Ingestion benchmark: 100,000 synthetic tickets into SQLite (and PostgreSQL when
TUNEGATE_TEST_PG_URL is set).

Two figures per database:

* ``ingest_file`` — end to end from a JSONL file: parse, validate (pydantic), hash, quarantine
  check, insert in transactions of 5,000 rows. This is what ``tunegate ingest`` does.
* ``add_tickets`` — the store alone: 100,000 already-built records in one transaction.

Writes bench/results/ingest.json and bench/results/ingest.md. Run: ``python bench/bench_ingest.py``.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from importlib import metadata as md
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tunegate.config import parse_workflow, starter_yaml
from tunegate.io import ingest_file
from tunegate.records import Ticket
from tunegate.store import Store

N = int(os.environ.get("BENCH_INGEST_N", "100000"))
RESULTS = Path(__file__).parent / "results"
PHRASES = [
    "VPN drops every few minutes",
    "locked out after MFA push spam",
    "printer jammed",
    "need access to the finance share",
    "Outlook says mailbox full",
    "install Visio",
]


def machine() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram_gb = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass

    def version(dist: str) -> str | None:
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            return None

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": ram_gb,
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "torch": version("torch"),
        "sqlalchemy": sa.__version__,
        "pydantic": version("pydantic"),
        "psycopg": version("psycopg"),
        "sqlite": sqlite3.sqlite_version,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_1m_at_start": os.getloadavg()[0],
    }


def synthetic(n: int) -> list[Ticket]:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    return [
        Ticket(
            id=f"bench-{i:07d}",
            text=f"{PHRASES[i % len(PHRASES)]} (#{i})",
            created_at=t0 + timedelta(seconds=17 * i),
            metadata={
                "channel": "email" if i % 3 else "chat",
                "hour": i % 24,
                "site": f"site-{i % 40}",
            },
        )
        for i in range(n)
    ]


def _timed(fn: Any) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - wall, time.process_time() - cpu


def _figures(rows: int, wall: float, cpu: float) -> dict[str, Any]:
    return {
        "rows": rows,
        "seconds": round(wall, 3),
        "rows_per_s": round(rows / wall),
        "cpu_seconds": round(cpu, 3),
        "rows_per_cpu_s": round(rows / cpu),
    }


def run_one(name: str, url: str, records: list[Ticket], path: Path, qdir: Path) -> dict[str, Any]:
    workflow = parse_workflow(starter_yaml())
    out: dict[str, Any] = {"database": name}
    with Store(url) as store:
        report, wall, cpu = _timed(
            lambda: ingest_file(store, "tickets", path, workflow=workflow, quarantine_dir=qdir)
        )
        assert report.added == len(records) and report.quarantined == 0, report
        out["ingest_file"] = _figures(report.added, wall, cpu)
        again, wall, cpu = _timed(
            lambda: ingest_file(store, "tickets", path, workflow=workflow, quarantine_dir=qdir)
        )
        assert again.added == 0 and again.existing == len(records)
        out["reingest_idempotent"] = _figures(again.existing, wall, cpu)
        with store.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM tickets"))
        result, wall, cpu = _timed(lambda: store.add_tickets(records))
        assert result.added == len(records)
        out["add_tickets"] = _figures(result.added, wall, cpu)
    out["load_average_after"] = os.getloadavg()[0]
    print(
        f"{name}: "
        + ", ".join(
            f"{k} {v['rows_per_s']:,} rows/s" for k, v in out.items() if isinstance(v, dict)
        )
    )
    return out


def main() -> int:
    records = synthetic(N)
    results: dict[str, Any] = {
        "benchmark": "ingest",
        "n_tickets": N,
        "machine": machine(),
        "runs": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tickets.jsonl"
        with path.open("w", encoding="utf-8") as fh:
            for rec in records:
                fh.write(rec.model_dump_json() + "\n")
        results["file_mb"] = round(path.stat().st_size / 1e6, 1)
        results["runs"].append(
            run_one("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}", records, path, Path(tmp))
        )
        pg_url = os.environ.get("TUNEGATE_TEST_PG_URL")
        if pg_url:
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
                results["machine"]["postgresql"] = conn.execute(
                    sa.text("SHOW server_version")
                ).scalar()
            try:
                sep = "&" if "?" in pg_url else "?"
                url = f"{pg_url}{sep}options=-csearch_path%3D{schema}"
                results["runs"].append(run_one("postgresql", url, records, path, Path(tmp)))
            finally:
                with admin.connect() as conn:
                    conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
                admin.dispose()
        else:
            print("TUNEGATE_TEST_PG_URL not set: PostgreSQL skipped (source scripts/pg.sh)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ingest.json").write_text(json.dumps(results, indent=2) + "\n")
    m = results["machine"]
    lines = [
        "# Ingestion benchmark",
        "",
        f"{N:,} synthetic tickets ({results['file_mb']} MB JSONL), {m['date']}.",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gb']} GB RAM; Python {m['python']}, "
        f"torch {m['torch']}, SQLAlchemy {m['sqlalchemy']}, SQLite {m['sqlite']}"
        + (f", PostgreSQL {m['postgresql']}" if "postgresql" in m else "")
        + ".",
        "",
        "| database | ingest_file (JSONL, end to end) | re-ingest (all existing) "
        "| add_tickets (store only) |",
        "|---|---|---|---|",
    ]
    for run in results["runs"]:
        cells = [
            f"{run[k]['rows_per_s']:,} rows/s ({run[k]['seconds']} s); "
            f"{run[k]['rows_per_cpu_s']:,} rows per CPU-s"
            for k in ("ingest_file", "reingest_idempotent", "add_tickets")
        ]
        lines.append(f"| {run['database']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Load average (1 min) at start: {m['load_average_1m_at_start']:.1f} on "
        f"{m['cores']} cores. The machine is shared: wall-clock rows/s fall when other work "
        "runs; rows per CPU-second (this process only; PostgreSQL's server time is not "
        "in it) is the load-independent figure.",
        "Target: >= 20,000 rows/s into SQLite (ingest_file).",
        "",
    ]
    (RESULTS / "ingest.md").write_text("\n".join(lines))
    print(f"wrote {RESULTS / 'ingest.json'} and {RESULTS / 'ingest.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
