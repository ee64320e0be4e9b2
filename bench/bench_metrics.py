"""Benchmark: the paired bootstrap of issue 23 -- every metric of two models, their paired
differences, one named slice and latency, 1,000 resamples, 100,000 predictions x 10 classes
(``tunegate.metrics.paired_bootstrap``) -- against a straightforward per-resample loop with
scikit-learn, in the same run.

Paths, timed in interleaved rounds (A B C A B C ...) in one process, each round recording the
1-minute load average before it and the process CPU time it used:

- ``scatter``: the default path (packed-key gathers + compiled scatter-adds, chunks counted
  on ``_SHARD_THREADS`` threads),
- ``scatter-1-thread``: the same on one thread,
- ``gather``: the reference path of 2026-12 (gather + offsets + ``np.bincount``).

Every path must give the same intervals (checked). The scikit-learn loop is timed on fewer
resamples and extrapolated linearly to 1,000 (a loop costs the same per resample); it does
what the bootstrap does per resample for both models on the whole set and on the slice.

    python bench/bench_metrics.py [--rounds 3] [--loop-resamples 10]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from _machine import machine_info
from tunegate import metrics as M
from tunegate.metrics import _bootstrap

N, K, B = 100_000, 10, 1000
TARGET_S = 1.0
RESULTS = Path(__file__).resolve().parent / "results"
PATHS = ("scatter", "scatter-1-thread", "gather")


def machine() -> dict[str, Any]:
    return machine_info("numpy", "scipy", "sklearn", "torch", load_key="load_avg_at_start")


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(N, K)) * 2.0
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    y = np.where(rng.random(N) < 0.7, p.argmax(axis=1), rng.integers(0, K, N))
    q = np.roll(p, 1, axis=1)
    q[: N // 2] = p[: N // 2]  # a second model agreeing on half the rows
    # latency from batch timing: one value per batch of 64, as run_eval records it
    lat = np.repeat(rng.lognormal(1.0, 0.3, N // 64 + 1), 64)[:N]
    return y, p, q, lat


def the_slice() -> np.ndarray:
    return np.arange(N) % 3 == 0


def run(path: str, y: Any, p: Any, q: Any, lat: Any) -> tuple[M.BootstrapResult, float, float]:
    """One call of the issue's task on ``path``: (result, wall seconds, CPU seconds)."""
    threads = _bootstrap._SHARD_THREADS
    _bootstrap._RESAMPLE_PATH = "gather" if path == "gather" else "scatter"
    _bootstrap._SHARD_THREADS = 1 if path == "scatter-1-thread" else threads
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        res = M.paired_bootstrap(
            y,
            p,
            q,
            subsets={"slice": the_slice()},
            latency_a=lat,
            latency_b=lat * 1.05,
            n_resamples=B,
        )
        return res, time.perf_counter() - wall, time.process_time() - cpu
    finally:
        _bootstrap._RESAMPLE_PATH = "scatter"
        _bootstrap._SHARD_THREADS = threads


def sklearn_loop(y: Any, p: Any, q: Any, lat: Any, n: int) -> float:
    """The same metrics per resample with scikit-learn (ECE / selective / coverage / latency
    in plain numpy, since scikit-learn has none), for both models, on the whole set and the
    slice, plus the paired differences."""
    from sklearn import metrics as skm

    rng = np.random.default_rng(1)
    labels = list(range(K))
    mask = the_slice()

    def one(yy: Any, pp: Any, ll: Any) -> dict[str, float]:
        pred = pp.argmax(axis=1)
        out = {
            "acc": skm.accuracy_score(yy, pred),
            "f1": skm.f1_score(yy, pred, average="macro", labels=labels, zero_division=0),
            "brier": skm.brier_score_loss(yy, pp, labels=labels, scale_by_half=False),
        }
        skm.precision_recall_fscore_support(yy, pred, labels=labels, zero_division=0)
        conf = pp.max(axis=1)
        bins = np.minimum((conf * 15).astype(int), 14)
        correct = pred == yy
        ece = 0.0
        for b in range(15):
            m = bins == b
            if m.any():
                ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
        out["ece"] = ece
        auto = M.normalized_entropy(pp) <= 0.5
        out["sel"], out["cov"] = correct[auto].mean(), auto.mean()
        out["aurc"] = M.aurc_rate(yy, pp)
        np.percentile(ll, [50, 95])
        return out

    start = time.perf_counter()
    for _ in range(n):
        ix = rng.integers(0, N, N)
        yy, sl = y[ix], mask[ix]
        for proba, latency in ((p, lat), (q, lat * 1.05)):
            pp, ll = proba[ix], latency[ix]
            whole = one(yy, pp, ll)
            part = one(yy[sl], pp[sl], ll[sl])
        _ = {k: whole[k] - part[k] for k in whole}  # stands in for the paired differences
    return time.perf_counter() - start


def _load() -> float:
    return os.getloadavg()[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--loop-resamples", type=int, default=10)
    args = parser.parse_args()
    info = machine()
    y, p, q, lat = data()
    M.paired_bootstrap(y[:1000], p[:1000], q[:1000], n_resamples=10)  # warm-up
    rounds: dict[str, list[dict[str, float]]] = {path: [] for path in PATHS}
    results: dict[str, M.BootstrapResult] = {}
    for _ in range(args.rounds):
        for path in PATHS:
            load = _load()
            res, wall, cpu = run(path, y, p, q, lat)
            rounds[path].append({"wall_s": wall, "cpu_s": cpu, "load_before": load})
            results.setdefault(path, res)
    ref = results["gather"]
    same = all((r.a, r.b, r.diff) == (ref.a, ref.b, ref.diff) for r in results.values())
    load_loop = _load()
    loop_s = sklearn_loop(y, p, q, lat, args.loop_resamples)
    per = loop_s / args.loop_resamples
    best = {path: min(r["wall_s"] for r in rounds[path]) for path in PATHS}
    result = {
        "task": (
            f"every metric of two models + paired differences, one slice and latency, "
            f"{B} bootstrap resamples, {N} predictions x {K} classes"
        ),
        "paths": {
            path: {
                "best_wall_s": best[path],
                "rounds": rounds[path],
            }
            for path in PATHS
        },
        "identical_intervals_on_every_path": same,
        "sklearn_loop": {
            "resamples_run": args.loop_resamples,
            "seconds": loop_s,
            "per_resample_s": per,
            "extrapolated_1000_s": per * B,
            "load_before": load_loop,
        },
        "speedup_vs_sklearn_loop": per * B / best["scatter"],
        "speedup_vs_gather_path": best["gather"] / best["scatter"],
        "target_s": TARGET_S,
        "meets_target": best["scatter"] <= TARGET_S,
        "load_avg_at_end": _load(),
        "sanity": {
            "accuracy_diff_b_minus_a": results["scatter"].diff["overall"]["accuracy"].to_dict()
            if results["scatter"].diff
            else None,
            "slice_macro_f1_a": results["scatter"].a["slice"]["macro_f1"].to_dict(),
        },
        "machine": info,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    loads = [r["load_before"] for path in PATHS for r in rounds[path]]
    md = [
        "# bench_metrics",
        "",
        f"{result['task']} on {info['cpu']} ({info['cores']} cores, {info['ram_gb']} GB RAM), "
        f"Python {info['python']}, numpy {info['numpy']}, scipy {info['scipy']}, "
        f"{info['date']}. Load average (1 min) {info['load_avg_at_start']:.2f} at start, "
        f"{min(loads):.1f}-{max(loads):.1f} before the rounds, {result['load_avg_at_end']:.2f} "
        f"at the end{' (busy machine: rerun when quiet)' if max(loads) > 1 else ''}.",
        "",
        f"| path | best wall s (of {args.rounds}, interleaved) | CPU s of that round |",
        "|---|---|---|",
    ]
    for path in PATHS:
        r = min(rounds[path], key=lambda x: x["wall_s"])
        md.append(f"| {path} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} |")
    md += [
        f"| scikit-learn per-resample loop, {args.loop_resamples} resamples measured | "
        f"{loop_s:.2f} | |",
        f"| scikit-learn loop extrapolated to {B} resamples | {per * B:.1f} | |",
        "",
        f"Identical intervals on every path: {same}. Speed-up over the scikit-learn loop: "
        f"{result['speedup_vs_sklearn_loop']:.0f}x; over the gather path: "
        f"{result['speedup_vs_gather_path']:.2f}x. Target <= {TARGET_S:.0f} s: "
        f"{'met' if result['meets_target'] else 'NOT met'}.",
        "",
    ]
    (RESULTS / "metrics.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
