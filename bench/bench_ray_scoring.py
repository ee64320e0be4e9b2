"""Batch scoring on one machine: the local executor vs the Ray executor (2 workers).

The same N texts (default 100,000: the 47,837 real Endava IT tickets of
``../shared/data/it_tickets``, cycled) are scored by the starter workflow's zero-shot model
(all-MiniLM-L6-v2; ONNX Runtime int8 when installed, as ``model.backend: auto``) in batches
of 64, twice:

- **local**: :class:`tunegate.execute.LocalExecutor`, one process, inference on every core;
- **ray**: :class:`tunegate.execute.RayExecutor` with 2 workers of 1 core each (Ray Data
  ``map_batches`` over 2 actors that each load the model once), on a local cluster started
  by the bench.

Recorded: throughput (texts/s, whole job and steady state after the first batch), Ray's
start-up (``ray.init``), the time to the first scored batch (actor start + model load),
serialization (pickling the batches and the results as the executor does, timed in the
driver: one side of the round trip; the workers do the other side), the share of time in the
model (the sum of per-batch ``predict_proba`` time over the wall time times the workers) and
whether the two runs gave identical probabilities. The 1/5/15-minute load averages are
recorded at start, between the runs and at the end: the machine is shared, and a load above
the core count means the figures are low.

Run: ``python bench/bench_ray_scoring.py [--n 100000] [--workers 2]``
-> bench/results/ray_scoring.json
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from _machine import machine_info

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "it_tickets" / "endava_tickets_v3.csv.gz"
RESULTS = ROOT / "bench" / "results"
BATCH = 64


def _texts(n: int) -> tuple[list[str], str]:
    if not DATA.exists():
        sys.exit(f"{DATA} is absent (see ../shared/data/README.md)")
    with gzip.open(DATA, "rt", encoding="utf-8") as handle:
        rows = [r["Document"] for r in csv.DictReader(handle) if r.get("Document")]
    return [rows[i % len(rows)] for i in range(n)], f"Endava IT tickets ({len(rows)}, cycled)"


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _score(clf: Any, batch: tuple[list[str], None]) -> tuple[np.ndarray, float]:
    texts, meta = batch
    start = time.perf_counter()
    proba = np.asarray(clf.predict_proba(texts, meta), dtype=np.float64)
    return proba, (time.perf_counter() - start) * 1000.0


def _run(executor: Any, clf: Any, batches: list[tuple[list[str], None]]) -> dict[str, Any]:
    start = time.perf_counter()
    first = None
    parts, model_ms = [], 0.0
    for i, (proba, ms) in enumerate(executor.map_batches(clf, _score, batches)):
        if i == 0:
            first = time.perf_counter() - start
        parts.append(proba)
        model_ms += ms
    wall = time.perf_counter() - start
    n = sum(len(b[0]) for b in batches)
    rest = n - len(batches[0][0])
    assert first is not None
    return {
        "proba": np.concatenate(parts),
        "wall_s": round(wall, 2),
        "texts_per_s": round(n / wall, 1),
        "first_batch_s": round(first, 2),
        "steady_texts_per_s": round(rest / (wall - first), 1) if wall > first else None,
        "model_s": round(model_ms / 1000.0, 2),
        "share_in_model": round(model_ms / 1000.0 / (wall * executor.workers), 3),
    }


def _serialization(batches: list[tuple[list[str], None]], proba: np.ndarray) -> dict[str, Any]:
    """Driver-side pickling as the Ray executor does it: batches out, results back."""
    start = time.perf_counter()
    sent = [pickle.dumps(b) for b in batches]
    out_s = time.perf_counter() - start
    results = [
        pickle.dumps((proba[i : i + BATCH], 1.0)) for i in range(0, len(proba), BATCH)
    ]  # the worker's side, timed here for its size
    start = time.perf_counter()
    for r in results:
        pickle.loads(r)
    back_s = time.perf_counter() - start
    return {
        "batches_pickled_s": round(out_s, 3),
        "results_unpickled_s": round(back_s, 3),
        "bytes_out": sum(len(s) for s in sent),
        "bytes_back": sum(len(r) for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from tunegate.config import parse_workflow, starter_yaml
    from tunegate.execute import LocalExecutor, RayExecutor, chunk
    from tunegate.models import ZeroShotClassifier

    load_start = _load()
    texts, source = _texts(args.n)
    batches = [(b, None) for b in chunk(texts, BATCH)]
    workflow = parse_workflow(starter_yaml())
    start = time.perf_counter()
    clf = ZeroShotClassifier(workflow)
    clf.predict_proba(texts[:BATCH])  # warm-up (and the ONNX export on first use)
    model_load_s = time.perf_counter() - start
    encoder = type(clf.encoder).__name__

    print(f"local: {args.n} texts ...", file=sys.stderr, flush=True)
    local = _run(LocalExecutor(), clf, batches)
    load_between = _load()

    print(f"ray: {args.n} texts on {args.workers} workers ...", file=sys.stderr, flush=True)
    ray_ex = RayExecutor(workers=args.workers, temp_dir=tempfile.mkdtemp(prefix="tgbench"))
    try:
        ray_ex.map(abs, [0])  # start the cluster, timed apart from the scoring
        startup_s = ray_ex.startup_s
        ray = _run(ray_ex, clf, batches)
    finally:
        ray_ex.close()
    load_end = _load()

    identical = bool(np.array_equal(local.pop("proba"), ray_proba := ray.pop("proba")))
    result = {
        "benchmark": "ray_scoring",
        "machine": machine_info("ray", "onnxruntime", "torch", load_key=None),
        "load_avg_1_5_15": {"start": load_start, "between": load_between, "end": load_end},
        "setup": {
            "n_texts": args.n,
            "texts": source,
            "model": "zero-shot all-MiniLM-L6-v2 (starter workflow)",
            "encoder": encoder,
            "precision": workflow.model.precision,
            "batch_size": BATCH,
            "max_length": workflow.model.max_length,
            "model_load_and_warmup_s": round(model_load_s, 2),
        },
        "local": {**local, "workers": 1, "threads": len(os.sched_getaffinity(0))},
        "ray": {
            **ray,
            "workers": args.workers,
            "threads_per_worker": 1,
            "ray_init_s": None if startup_s is None else round(startup_s, 2),
        },
        "serialization_driver_side": _serialization(batches, ray_proba),
        "identical_probabilities": identical,
        "speedup_ray_over_local": round(ray["texts_per_s"] / local["texts_per_s"], 3),
        "speedup_steady": (
            round(ray["steady_texts_per_s"] / local["steady_texts_per_s"], 3)
            if ray["steady_texts_per_s"] and local["steady_texts_per_s"]
            else None
        ),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "ray_scoring.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
